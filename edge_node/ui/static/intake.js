// Intake and edit forms: check each field as the clerk leaves it and before sending, with the same
// rules and messages as the server (which checks again, and keeps chosen scans if it refuses);
// add document rows. A scan's type is read from its first bytes, as the server does.
(function () {
  "use strict";
  var MAX_FILE = 20 * 1024 * 1024;
  var MAX_NAME = 200;
  var MAGIC = [[0x25, 0x50, 0x44, 0x46, 0x2d], [0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]];

  function sniff(el) {
    // remembers on the input whether its file is a PDF, JPEG or PNG: "ok", "bad", or "" (none)
    var file = el.files && el.files[0];
    el.dataset.sniffed = file ? "" : "none";
    if (!file) { return Promise.resolve(); }
    return file.slice(0, 8).arrayBuffer().then(function (buf) {
      var head = new Uint8Array(buf);
      var ok = MAGIC.some(function (m) { return m.every(function (b, i) { return head[i] === b; }); });
      el.dataset.sniffed = ok ? "ok" : "bad";
    });
  }

  function msg(form, key) { return form.dataset["msg" + key] || ""; }

  function parseDay(text) {
    var parts = text.trim().replace(/[.\-]/g, "/").split("/");
    if (parts.length !== 3 || !parts.every(function (p) { return /^\d+$/.test(p); })) { return null; }
    var y, m, d;
    if (parts[0].length === 4) { y = parts[0]; m = parts[1]; d = parts[2]; }
    else { d = parts[0]; m = parts[1]; y = parts[2]; }
    if (y.length !== 4) { return null; }
    var date = new Date(Date.UTC(+y, +m - 1, +d));
    if (date.getUTCFullYear() !== +y || date.getUTCMonth() !== +m - 1 || date.getUTCDate() !== +d) {
      return null;
    }
    return date.toISOString().slice(0, 10);
  }

  function checkCitizenId(value, thisYear) {
    if (!/^\d{12}$/.test(value)) { return "CidDigits"; }
    var province = parseInt(value.slice(0, 3), 10);
    if (province < 1 || province > 96) { return "CidProvince"; }
    var year = 1900 + 100 * Math.floor(parseInt(value[3], 10) / 2) + parseInt(value.slice(4, 6), 10);
    if (year > thisYear) { return "CidCentury"; }
    return "";
  }

  function problem(form, el) {
    var today = form.dataset.today;
    var thisYear = parseInt(today.slice(0, 4), 10);
    if (el.type === "file") {
      var file = el.files && el.files[0];
      if (!file) { return ""; }
      if (el.dataset.sniffed === "bad") { return "FileType"; }
      return file.size > MAX_FILE ? "FileSize" : "";
    }
    var value = el.value.trim();
    var refusing = form.dataset.refusing === "1";
    if (el.dataset.check === "reasons") { return refusing && !value ? "Required" : ""; }
    // a refusal (form 03) needs only the applicant's name; what was typed must still be valid
    if (!value) { return el.required && (!refusing || el.name === "applicant.full_name") ? "Required" : ""; }
    switch (el.dataset.check) {
      case "docname": return value.replace(/\s+/g, " ").length > MAX_NAME ? "TooLong" : "";
      case "count": return /^\d{1,2}$/.test(value) && +value >= 1 ? "" : "DocCount";
      case "cid": return checkCitizenId(value.replace(/\s/g, ""), thisYear);
      case "phone": return /^(\+84|0)\d{9,10}$/.test(value.replace(/[\s.\-()]/g, "")) ? "" : "Phone";
      case "date":
        var iso = parseDay(value);
        if (!iso) { return "Date"; }
        return iso > today ? "DateFuture" : "";
      case "year":
        return /^\d{4}$/.test(value) && +value >= 1900 && +value <= thisYear ? "" : "Year";
      case "int": return /^\d{1,6}$/.test(value) ? "" : "Int";
      default: return "";
    }
  }

  function show(form, el) {
    var key = problem(form, el);
    var slot = document.getElementById(el.getAttribute("aria-describedby").split(" ")[0]);
    if (key) { el.setAttribute("aria-invalid", "true"); }
    else { el.removeAttribute("aria-invalid"); }
    if (slot) { slot.textContent = key ? msg(form, key) : ""; }
    return !key;
  }

  function fields(form) {
    return Array.prototype.filter.call(form.querySelectorAll("input, select, textarea"), function (el) {
      return el.type !== "hidden" && el.getAttribute("aria-describedby");
    });
  }

  function setup(form) {
    fields(form).forEach(function (el) {
      el.addEventListener("blur", function () { if (el.value || el.dataset.touched) { show(form, el); } });
      el.addEventListener("input", function () {
        el.dataset.touched = "1";
        if (el.getAttribute("aria-invalid")) { show(form, el); }
      });
      el.addEventListener("change", function () {
        if (el.type === "file") { sniff(el).then(function () { show(form, el); }); }
      });
    });
    form.addEventListener("submit", function (ev) {
      var submitter = ev.submitter || null;
      form.dataset.refusing = submitter && submitter.value === "refuse" ? "1" : "";
      var unread = fields(form).filter(function (el) {
        return el.type === "file" && el.files && el.files[0] && !el.dataset.sniffed;
      });
      if (unread.length) {  // a file picked a moment ago: read its first bytes, then try again
        ev.preventDefault();
        Promise.all(unread.map(sniff)).then(function () { form.requestSubmit(submitter); });
        return;
      }
      var bad = fields(form).filter(function (el) { return !show(form, el); });
      var summary = document.getElementById("error-summary");
      if (bad.length) {
        ev.preventDefault();
        if (summary) { summary.textContent = msg(form, "Summary"); summary.hidden = false; }
        bad[0].focus();
      }
    });
    var add = document.getElementById("add-doc");
    var rows = document.getElementById("doc-rows");
    if (add && rows) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var all = rows.querySelectorAll(".doc-row");
        var max = parseInt(rows.dataset.max || "10", 10);
        if (all.length >= max) { add.disabled = true; return; }
        var i = all.length;
        var row = all[all.length - 1].cloneNode(true);
        row.querySelector(".num").textContent = String(i + 1);
        Array.prototype.forEach.call(row.querySelectorAll("[id], [name], [for], [aria-describedby]"), function (el) {
          ["id", "name", "for", "aria-describedby"].forEach(function (attr) {
            var v = el.getAttribute(attr);
            if (v) { el.setAttribute(attr, v.replace(/_\d+/, "_" + i)); }
          });
          if (el.tagName === "INPUT") {
            el.value = el.dataset.check === "count" ? "1" : "";
            el.removeAttribute("aria-invalid");
            delete el.dataset.sniffed;
          }
          if (el.tagName === "SELECT") { el.selectedIndex = 0; }
          if (el.classList.contains("error")) { el.textContent = ""; }
        });
        Array.prototype.forEach.call(row.querySelectorAll(".kept"), function (kept) { kept.remove(); });
        var described = row.querySelector("input[type=file]");
        described.setAttribute("aria-describedby", described.getAttribute("aria-describedby").split(" ")[0]);
        Array.prototype.forEach.call(row.querySelectorAll("label.sr-only"), function (label) {
          label.textContent = label.textContent.replace(/\d+$/, String(i + 1));
        });
        Array.prototype.forEach.call(row.querySelectorAll(".file-name"), function (span) {
          span.textContent = span.dataset.none || "";
        });
        rows.appendChild(row);
        Array.prototype.forEach.call(row.querySelectorAll("input"), function (el) {
          el.addEventListener("input", function () { if (el.getAttribute("aria-invalid")) { show(form, el); } });
          el.addEventListener("blur", function () { if (el.value) { show(form, el); } });
        });
        var file = row.querySelector("input[type=file]");
        file.addEventListener("change", function () { sniff(file).then(function () { show(form, file); }); });
        row.querySelector("input").focus();
        if (i + 1 >= max) { add.disabled = true; }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-msg-required]");
    if (form) { setup(form); }
  });
})();
