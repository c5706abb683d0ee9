// Shared staff UI behaviour (no inline scripts: CSP). Works without it; it only adds comfort.
(function () {
  "use strict";

  // Styles that need this script to work (the file boxes' own button) key off this class.
  document.documentElement.classList.add("js");

  // A file box drawn in the page's language shows the chosen file's name next to its button.
  document.addEventListener("change", function (ev) {
    var input = ev.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") { return; }
    var name = input.parentElement && input.parentElement.querySelector(".file-name");
    if (!name) { return; }
    name.textContent = Array.prototype.map.call(input.files || [], function (f) {
      return f.name;
    }).join(", ") || name.dataset.none || "";
  });

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // Alt+<letter> shortcuts: the element marked data-key="<letter>" is clicked (links, buttons)
  // or focused (inputs). The physical key is used, so a Vietnamese input method does not matter.
  document.addEventListener("keydown", function (ev) {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey || !/^Key[A-Z]$/.test(ev.code || "")) {
      return;
    }
    var el = document.querySelector('[data-key="' + ev.code.slice(3).toLowerCase() + '"]');
    if (!el || el.disabled) { return; }
    ev.preventDefault();
    if (typing(el)) { el.focus(); if (el.select) { el.select(); } } else { el.click(); }
  });

  // "/" jumps to the search box, like many tools.
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && !ev.ctrlKey && !ev.altKey && !ev.metaKey && !typing(ev.target)) {
      var box = document.querySelector("[data-search]");
      if (box) { ev.preventDefault(); box.focus(); box.select(); }
    }
  });

  document.addEventListener("click", function (ev) {
    var target = ev.target instanceof Element ? ev.target.closest("[data-print]") : null;
    if (target) { ev.preventDefault(); window.print(); }
  });

  // Buttons that change something for good ask first.
  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter;
    if (btn && btn.dataset && btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  // After a failed submit the server marks fields invalid: put the cursor on the first one.
  document.addEventListener("DOMContentLoaded", function () {
    var bad = document.querySelector("main [aria-invalid='true']");
    if (bad) { bad.focus(); }
  });

  // A live status line (e.g. the sync indicator) refreshes itself from a small JSON endpoint.
  function poll(el) {
    var url = el.dataset.pollUrl;
    var every = parseInt(el.dataset.pollEvery || "5", 10) * 1000;
    function once() {
      // X-Background: this request is not someone at the desk and keeps no session alive
      fetch(url, { credentials: "same-origin",
                   headers: { "Accept": "application/json", "X-Background": "1" } })
        .then(function (r) {
          if (r.status === 401) {
            // the session ended (idle logout, account disabled): leave the page, personal data
            // and all, for the login form
            window.location.assign("/login?next=" +
              encodeURIComponent(window.location.pathname + window.location.search));
            return null;
          }
          return r.ok ? r.json() : null;
        })
        .then(function (data) {
          if (!data) { return; }
          // the endpoint may ask to be asked more often while something is under way
          if (data.poll_s > 0) { every = data.poll_s * 1000; }
          Array.prototype.forEach.call(el.querySelectorAll("[data-poll-part]"), function (part) {
            var value = (data.parts || {})[part.dataset.pollPart] || "";
            if (part.textContent !== value) { part.textContent = value; }
            part.hidden = !value;
          });
          el.dataset.level = data.level;
          el.className = el.className.replace(/\blevel-\w+/g, "") + " level-" + data.level;
        })
        .catch(function () { /* the page server itself is local; try again later */ })
        .then(function () { window.setTimeout(once, every); });
    }
    window.setTimeout(once, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll-url]"), poll);
  });
})();
