"""Pages every staff UI has: log in, log out, change password, switch language."""

from __future__ import annotations

import logging

from aiohttp import web

from protocol.errors import AuthError, ValidationError
from service.accounts import Accounts, LoginThrottled
from service.ui import csrf
from service.ui.i18n import LANG_COOKIE, LANGS
from service.ui.render import Renderer, flash, redirect, safe_next
from service.ui.session import page_user
from service.web import COOKIE, USER_KEY

log = logging.getLogger(__name__)

YEAR_S = 365 * 24 * 3600


def auth_routes(accounts: Accounts, renderer: Renderer) -> list[web.RouteDef]:
    """GET/POST /login, POST /logout, GET/POST /password, POST /lang."""

    async def login_form(request: web.Request) -> web.StreamResponse:
        if USER_KEY in request:
            return redirect(safe_next(request.query.get("next")))
        return await renderer.page(request, "login.html", next=safe_next(request.query.get("next")),
                                   username="", error=None)

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        csrf.check(request, form)
        username = str(form.get("username", "")).strip().lower()
        target = safe_next(str(form.get("next", "")))
        try:
            token = await accounts.login(username, str(form.get("password", "")))
        except LoginThrottled:
            error = "login.throttled"
        except AuthError:
            error = "login.wrong"
        else:
            response = redirect(target)
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            response.del_cookie(csrf.ANON_COOKIE, path="/")
            return response
        return await renderer.page(request, "login.html", status=401, next=target,
                                   username=username, error=error)

    async def logout(request: web.Request) -> web.StreamResponse:
        csrf.check(request, await request.post())
        token = request.cookies.get(COOKIE)
        if token:
            await accounts.logout(token)
        response = redirect("/login")
        response.del_cookie(COOKIE, path="/")
        flash(response, "login.bye")
        return response

    async def password_form(request: web.Request) -> web.StreamResponse:
        page_user(request)
        return await renderer.page(request, "password.html", errors={})

    async def password(request: web.Request) -> web.StreamResponse:
        user = page_user(request)
        form = await request.post()
        csrf.check(request, form)
        old, new = str(form.get("old", "")), str(form.get("new", ""))
        errors: dict[str, str] = {}
        if new != str(form.get("confirm", "")):
            errors["confirm"] = "password.mismatch"
        elif len(new) < 8:
            errors["new"] = "password.short"
        else:
            try:
                await accounts.change_password(user.username, old, new)
            except AuthError:
                errors["old"] = "password.wrong"
            except ValidationError:
                errors["new"] = "password.short"
        if errors:
            return await renderer.page(request, "password.html", status=422, errors=errors)
        response = redirect("/login")  # changing the password ended every session
        response.del_cookie(COOKIE, path="/")
        flash(response, "password.changed")
        return response

    async def switch_lang(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        csrf.check(request, form)
        lang = str(form.get("lang", ""))
        response = redirect(safe_next(str(form.get("next", "")), "/"))
        if lang in LANGS:
            response.set_cookie(LANG_COOKIE, lang, max_age=YEAR_S, samesite="Strict", path="/",
                                httponly=True)
        return response

    return [web.get("/login", login_form), web.post("/login", login),
            web.post("/logout", logout), web.get("/password", password_form),
            web.post("/password", password), web.post("/lang", switch_lang)]
