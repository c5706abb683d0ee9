"""Who is at the keyboard: the session cookie on UI pages, role checks, and friendly error pages.

A page without a valid session redirects to the login form; an error of ours becomes a page in the
user's language with its HTTP status (403 for a role that may not, 404 for an unknown dossier).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

from aiohttp import web

from protocol.errors import AuthError, Forbidden, NotFound, SyncError
from service.accounts import Accounts, SessionIdle, User
from service.ui.csrf import CsrfError
from service.ui.i18n import Messages
from service.ui.render import Renderer, flash, redirect
from service.ui.security import is_ui_path
from service.web import COOKIE, USER_KEY, Handler, require_role, status_of

log = logging.getLogger(__name__)

# sent by ui.js on its polling requests: they show a status, they are not someone at the desk,
# so they must not keep an abandoned session from its idle logout
BACKGROUND_HEADER = "X-Background"
PUBLIC_PATHS = frozenset({"/login", "/lang", "/healthz", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
ERROR_KEYS = {400: "error.bad_request", 401: "error.login", 403: "error.forbidden",
              404: "error.not_found", 409: "error.conflict", 413: "error.too_large",
              422: "error.invalid", 507: "error.disk_full"}


def is_public(path: str, extra: Collection[str] = ()) -> bool:
    """Pages anyone may see (the login form, the language switch, static files, and the app's
    own `extra` paths)."""
    return path in PUBLIC_PATHS or path in extra or path.startswith(PUBLIC_PREFIXES)


def page_user(request: web.Request) -> User:
    """The logged-in user of a UI page (the middleware made sure there is one)."""
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise AuthError("not logged in")
    return user


def need(request: web.Request, allowed: Collection[str], action: str) -> User:
    """The page's user if their role is one of `allowed`; Forbidden otherwise."""
    return require_role(page_user(request), allowed, action)


def forbidden_detail(exc: Forbidden, t: Messages) -> str:
    """Why a role may not, in the page's language: its role, what it tried, who may."""
    if exc.role is None:
        return exc.message
    needs = t("error.or").join(t(f"role.{r}") for r in exc.needs)
    key = "action." + re.sub(r"[^a-z0-9]+", "_", (exc.action or "").lower()).strip("_")
    if t.has(key):
        return t("error.forbidden_action", role=t(f"role.{exc.role}"), action=t(key),
                 needs=needs)
    return t("error.forbidden_role", role=t(f"role.{exc.role}"), needs=needs)


def middleware(accounts: Accounts, renderer: Renderer, public: Collection[str] = ()) -> Any:
    """Resolve the session cookie on UI paths, send strangers to /login (except on `public`
    paths), render errors as pages."""
    public = frozenset(public)

    async def error_page(request: web.Request, exc: SyncError) -> web.Response:
        status = status_of(exc)
        t = renderer.t(request)
        key = "error.csrf" if isinstance(exc, CsrfError) else ERROR_KEYS.get(status, "error.other")
        detail = forbidden_detail(exc, t) if isinstance(exc, Forbidden) else exc.message
        return await renderer.page(request, "error.html", status=status, title=t(key),
                                   detail=detail)

    @web.middleware
    async def ui_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_ui_path(request.path):
            return await handler(request)
        token = request.cookies.get(COOKIE)
        background = request.headers.get(BACKGROUND_HEADER) == "1"
        idle = False
        if token:
            try:
                request[USER_KEY] = await accounts.check(token, touch=not background)
            except SessionIdle:
                idle = True
            except AuthError:
                pass
        if USER_KEY not in request and not is_public(request.path, public):
            target = request.path_qs if request.method == "GET" else "/"
            response: web.Response = redirect("/login" + (
                f"?next={quote(target, safe='')}" if target != "/" else ""))
            if background:  # ui.js goes to the login form itself (a fetch would eat the flash)
                response = web.json_response({"login": "/login"}, status=401)
            if idle:
                response.del_cookie(COOKIE, path="/")
                flash(response, "login.idle", "warn", minutes=round(accounts.idle_s / 60))
            return response
        try:
            return await handler(request)
        except web.HTTPNotFound as exc:
            if request.path.startswith(PUBLIC_PREFIXES) or USER_KEY not in request:
                raise
            return await error_page(request, NotFound(exc.text or "not found"))
        except Forbidden as exc:
            return await error_page(request, exc)
        except AuthError as exc:
            if USER_KEY in request:
                return await error_page(request, exc)
            raise web.HTTPSeeOther(location="/login") from exc
        except SyncError as exc:
            return await error_page(request, exc)

    return ui_middleware
