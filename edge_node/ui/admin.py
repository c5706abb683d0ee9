"""Pages for the commune's admin: staff accounts (the leaders' statistics are `reports`)."""

from __future__ import annotations

import logging

from aiohttp import web

from edge_node.roles import PERMITS, ROLES
from edge_node.ui.desk import desk_of
from protocol.errors import ValidationError
from service.accounts import NAME_MAX, USERNAME_RE, check_name
from service.ui import csrf
from service.ui.render import flash, redirect
from service.ui.session import need

log = logging.getLogger(__name__)


async def users_page(request: web.Request, errors: dict[str, str] | None = None,
                     status: int = 200, values: dict[str, str] | None = None) -> web.Response:
    """GET /users: every staff account, with forms to add, reset, change role, disable."""
    desk = desk_of(request)
    me = need(request, PERMITS["users"], "manage staff accounts")
    return await desk.renderer.page(request, "users.html", status=status,
                                    users=await desk.accounts.users(), roles=ROLES, me=me,
                                    errors=errors or {}, values=values or {},
                                    name_max=NAME_MAX)


async def add_user(request: web.Request) -> web.StreamResponse:
    """POST /users: a new staff account."""
    desk = desk_of(request)
    need(request, PERMITS["users"], "manage staff accounts")
    form = await request.post()
    csrf.check(request, form)
    username = str(form.get("username", "")).strip().lower()
    role, password = str(form.get("role", "")), str(form.get("password", ""))
    errors: dict[str, str] = {}
    if not USERNAME_RE.match(username):
        errors["username"] = "users.bad_username"
    elif any(u["username"] == username for u in await desk.accounts.users()):
        errors["username"] = "users.exists"
    if role not in ROLES:
        errors["role"] = "users.bad_role"
    if len(password) < 8:
        errors["password"] = "password.short"
    full_name, position = str(form.get("full_name", "")), str(form.get("position", ""))
    for key, value in (("full_name", full_name), ("position", position)):
        try:
            check_name(value, key)
        except ValidationError:
            errors[key] = "users.bad_name"
    if errors:
        return await users_page(request, errors, 422, {"username": username, "role": role,
                                                       "full_name": full_name,
                                                       "position": position})
    await desk.accounts.add_user(username, password, role)
    await desk.accounts.set_profile(username, full_name, position)
    response = redirect("/users")
    flash(response, "users.added", username=username)
    return response


async def change_user(request: web.Request) -> web.StreamResponse:
    """POST /users/{username}/{action}: reset password, change role, disable or enable."""
    desk = desk_of(request)
    me = need(request, PERMITS["users"], "manage staff accounts")
    form = await request.post()
    csrf.check(request, form)
    username, action = request.match_info["username"], request.match_info["action"]
    response = redirect("/users")
    try:
        if action == "profile":  # the name and position forms are signed with
            await desk.accounts.set_profile(username, str(form.get("full_name", "")),
                                            str(form.get("position", "")))
        elif action == "password":
            await desk.accounts.reset_password(username, str(form.get("password", "")))
        elif action == "role":
            if username == me.username:
                raise ValidationError("you cannot change your own role", field="role")
            await desk.accounts.set_role(username, str(form.get("role", "")))
        elif action in ("disable", "enable"):
            if username == me.username:
                raise ValidationError("you cannot disable yourself", field="username")
            await desk.accounts.set_disabled(username, action == "disable")
        else:
            raise web.HTTPNotFound()
    except ValidationError as exc:
        flash(response, "users.failed", "error", detail=exc.message)
        return response
    flash(response, f"users.done_{action}", username=username)
    return response


def routes() -> list[web.RouteDef]:
    """Admin routes."""
    return [web.get("/users", users_page), web.post("/users", add_user),
            web.post("/users/{username}/{action}", change_user)]
