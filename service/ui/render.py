"""Pages: one Jinja environment per app (autoescaped, strict), the request's language and messages,
flash notices that survive one redirect, and safe redirects."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from service.ui import csrf, formats
from service.ui.i18n import Messages, lang_of, load_catalogues
from service.ui.static import StaticFiles
from service.web import USER_KEY

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
FLASH_COOKIE = "flash"
ContextHook = Callable[[web.Request], Awaitable[dict[str, Any]]]


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything pointing elsewhere becomes `default`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(location: str) -> web.Response:
    """A 303 to a local path (POST → redirect → GET), as a response to return (not raise)."""
    return web.Response(status=303, headers={"Location": safe_next(location)})


def flash(response: web.StreamResponse, key: str, level: str = "ok", **params: Any) -> None:
    """Show the message `key` on the next page (params must not carry personal data)."""
    raw = json.dumps({"key": key, "level": level, "params": params}, ensure_ascii=False)
    response.set_cookie(FLASH_COOKIE, base64.urlsafe_b64encode(raw.encode()).decode(),
                        httponly=True, samesite="Strict", path="/", max_age=120)


def _read_flash(request: web.Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        return None
    return data


class Renderer:
    """Templates and messages for one app; `page()` answers a request with a rendered template."""

    def __init__(self, template_dirs: list[Path], message_dirs: list[Path],
                 static: StaticFiles, app_title_key: str) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*map(str, template_dirs), str(HERE / "templates")]),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.env.globals["static"] = static.url
        self.env.filters.update(dt=formats.dt, day=formats.day, hm=formats.hm,
                                isoday=formats.iso_day)
        tables = load_catalogues(HERE / "messages", *message_dirs)
        self.messages = {lang: Messages(lang, table) for lang, table in tables.items()}
        self.static = static
        self.app_title_key = app_title_key
        self.hooks: list[ContextHook] = []

    def t(self, request: web.Request) -> Messages:
        """The messages in the request's language."""
        return self.messages[lang_of(request)]

    def render(self, template: str, **ctx: Any) -> str:
        """Render a template to text."""
        return self.env.get_template(template).render(**ctx)

    async def page(self, request: web.Request, template: str, *, status: int = 200,
                   **ctx: Any) -> web.Response:
        """Render `template` for this request: language, user, CSRF token, flash and hooks."""
        t = self.t(request)
        user = request.get(USER_KEY)
        base: dict[str, Any] = {
            "t": t, "lang": t.lang, "user": user, "csrf": csrf.token(request),
            "csrf_field": csrf.FIELD, "path": request.path_qs, "app_title": t(self.app_title_key),
            "flash": None, "nav": [],
        }
        notice = _read_flash(request)
        if notice is not None:
            base["flash"] = {"text": t(notice["key"], **notice.get("params", {})),
                             "level": notice.get("level", "ok")}
        if user is not None:
            for hook in self.hooks:
                base.update(await hook(request))
        base.update(ctx)
        response = web.Response(text=self.render(template, **base), status=status,
                                content_type="text/html", charset="utf-8")
        if notice is not None:
            response.del_cookie(FLASH_COOKIE, path="/")
        csrf.remember_anon(request, response)
        return response
