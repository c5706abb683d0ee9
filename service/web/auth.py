"""Who is asking: bearer tokens and session cookies, the login routes, and role checks."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from aiohttp import web

from protocol.errors import AuthError, Forbidden
from service.accounts import Accounts, User
from service.api import answers, bodies
from service.api.spec import operation
from service.web.errors import json_response
from service.web.middleware import Handler

log = logging.getLogger(__name__)

USER_KEY = web.RequestKey("user", User)
COOKIE = "session"


def token_of(request: web.Request) -> str | None:
    """The bearer token or session cookie of a request."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def current_user(request: web.Request) -> User:
    """The authenticated user (the auth middleware ran)."""
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise AuthError("not logged in")
    return user


def require_role(user: User, allowed: Collection[str], action: str) -> User:
    """Raise Forbidden unless `user` has one of the `allowed` roles for `action`."""
    if user.role not in allowed:
        raise Forbidden(f"your role ({user.role}) may not {action}: it needs "
                        f"{' or '.join(sorted(allowed))}", role=user.role,
                        needs=tuple(sorted(allowed)), action=action)
    return user


PUBLIC = ("/api/login", "/api/openapi.json")


def is_public_api(path: str, public: tuple[str, ...]) -> bool:
    """True iff `path` is one of `public`, or under one of them that ends with `/`."""
    return path in public or any(p.endswith("/") and path.startswith(p) for p in public)


def auth_middleware(accounts: Accounts, public: tuple[str, ...] = PUBLIC) -> Any:
    """Refuse /api/* without a valid staff token, except `public` paths (an entry ending with
    `/` covers the paths under it): those check their own callers, if any."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and not is_public_api(request.path, public):
            token = token_of(request)
            if not token:
                raise AuthError("log in first: POST /api/login")
            request[USER_KEY] = await accounts.check(token)
        return await handler(request)

    return middleware


def account_routes(accounts: Accounts) -> list[web.RouteDef]:
    """POST /api/login, /api/logout, /api/password; GET /api/me."""

    @operation("Log in", tag="auth", body=bodies.Login, answer=answers.Token, errors=(401,),
               public=True)
    async def login(request: web.Request, body: bodies.Login) -> web.Response:
        """Send the token as `Authorization: Bearer TOKEN` (it is also set as the `session`
        cookie). A username is locked for a while after several wrong passwords (401)."""
        token = await accounts.login(body.username, body.password)
        resp = json_response({"token": token})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
        return resp

    @operation("Log out (end this token)", tag="auth", answer=answers.Ok)
    async def logout(request: web.Request) -> web.Response:
        token = token_of(request)
        if token:
            await accounts.logout(token)
        resp = json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    @operation("Who is logged in", tag="auth", answer=answers.Me)
    async def me(request: web.Request) -> web.Response:
        user = current_user(request)
        return json_response({"username": user.username, "role": user.role})

    @operation("Change your password", tag="auth", body=bodies.PasswordChange, answer=answers.Ok)
    async def password(request: web.Request, body: bodies.PasswordChange) -> web.Response:
        """The old password must be right; the new one must meet the length rule (422)."""
        await accounts.change_password(current_user(request).username, body.old, body.new)
        return json_response({"ok": True})

    return [web.post("/api/login", login), web.post("/api/logout", logout),
            web.get("/api/me", me), web.post("/api/password", password)]
