"""Pages for the commune's admin (staff accounts) and leaders (statistics)."""

from __future__ import annotations

import logging
from datetime import datetime, time

from aiohttp import web

from edge_node.roles import PERMITS, ROLES
from edge_node.ui.desk import desk_of
from protocol import lifecycle
from protocol.calendar import VN_TZ, to_ms
from protocol.errors import ValidationError
from service.accounts import USERNAME_RE
from service.ui import csrf
from service.ui.render import flash, redirect
from service.ui.session import need
from service.worklists import day_bounds

log = logging.getLogger(__name__)


async def users_page(request: web.Request, errors: dict[str, str] | None = None,
                     status: int = 200, values: dict[str, str] | None = None) -> web.Response:
    """GET /users: every staff account, with forms to add, reset, change role, disable."""
    desk = desk_of(request)
    me = need(request, PERMITS["users"], "manage staff accounts")
    return await desk.renderer.page(request, "users.html", status=status,
                                    users=await desk.accounts.users(), roles=ROLES, me=me,
                                    errors=errors or {}, values=values or {})


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
    if errors:
        return await users_page(request, errors, 422, {"username": username, "role": role})
    await desk.accounts.add_user(username, password, role)
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
        if action == "password":
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


async def stats_page(request: web.Request) -> web.Response:
    """GET /stats: dossiers by status, overdue, and this month's intake by procedure."""
    desk = desk_of(request)
    need(request, PERMITS["statistics"], "read statistics")
    now, today = desk.store.now_ms(), desk.store.today()
    month_start = to_ms(datetime.combine(today.replace(day=1), time(0), VN_TZ))
    w = desk.worklists
    by_status = await w.by_status()
    return await desk.renderer.page(
        request, "stats.html", by_status=[(s, by_status.get(s, 0)) for s in lifecycle.STATUSES],
        total=sum(by_status.values()), overdue=await w.count_overdue(now),
        month=await w.by_procedure(month_start, day_bounds(today)[1]),
        today_count=(await w.received_on(today, now, limit=1)).count,
        procedures=desk.store.catalogue.procedures, month_label=today.strftime("%m/%Y"))


def routes() -> list[web.RouteDef]:
    """Admin and leader routes."""
    return [web.get("/users", users_page), web.post("/users", add_user),
            web.post("/users/{username}/{action}", change_user), web.get("/stats", stats_page)]
