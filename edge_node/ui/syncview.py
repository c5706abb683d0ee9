"""The sync indicator in every page's header: tells the truth about the link to the province.

"Mất kết nối — 12 thay đổi chờ gửi" when the hub cannot be reached (with when the last attempt
ended and why: refused, no answer in time), "Đồng bộ lúc 10:42" when all is sent, what an attempt
under way is doing ("Đang kết nối tới tỉnh…", "Đang gửi 12 thay đổi lên tỉnh…"), a clock warning
when this PC's clock is off, how many changes the hub refused, and what the
hub's answers warned of (a restore from a backup: calm, nothing to do; an id it reused: call the
province). The page polls `GET /sync/status` to keep it current (every `POLL_S`, every
`BUSY_POLL_S` while an attempt is asked for or under way); `POST /sync/now` asks for a session at
once.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.ui.clockcheck import error_text
from edge_node.ui.desk import Desk, desk_of
from protocol.calendar import local
from service.ui import csrf, formats
from service.ui.i18n import Messages
from service.ui.render import flash, redirect, safe_next

log = logging.getLogger(__name__)

LEVELS = ("ok", "busy", "warn", "danger")
POLL_S, BUSY_POLL_S = 5, 1
# Warning codes (edge_node.store) that end by themselves and ask nothing of staff: they leave the
# level to the link's state. Any other (a reused id, an unknown code) turns the bar "warn".
CALM = frozenset({"hub_restored", "hub_log_reset"})


def _when(iso: str | None, now_ms: int) -> str:
    moment = formats.moment(iso)
    if moment is None:
        return ""
    if moment.date() == local(now_ms).date():
        return moment.strftime("%H:%M")
    return moment.strftime("%d/%m/%Y %H:%M")


def warning_text(warning: dict[str, Any] | None, t: Messages) -> str:
    """The sentence for a kept sync warning ({"code", …}) in the page's language ("" if none)."""
    if not warning:
        return ""
    key = f"sync.warning.{warning.get('code')}"
    return t(key) if t.has(key) else t("sync.warning.hub_warning")


def _attempt(progress: dict[str, Any], t: Messages) -> str:
    """What the attempt under way does ("" if none, or one we know nothing of)."""
    phase = progress.get("phase")
    if phase == "connecting":
        return t("sync.connecting")
    if phase == "sending":
        return t("sync.sending", n=int(progress.get("events") or 0))
    if phase == "receiving":
        return t("sync.receiving")
    return ""


def _tried(progress: dict[str, Any], t: Messages) -> str:
    """How the last (failed) attempt failed and when (a fault of the link if nothing more is
    known; "" if no attempt ended in this process)."""
    problem, ended = progress.get("problem") or "network", progress.get("ended_ms")
    if not problem or not isinstance(ended, int):
        return ""
    return t("sync.tried", at=local(ended).strftime("%H:%M:%S"), why=t(f"sync.problem.{problem}"))


def describe(status: dict[str, Any], t: Messages, now_ms: int) -> dict[str, Any]:
    """The indicator's level and lines for a `GET /api/sync` status (with `requested`: a
    session was asked for and has not begun)."""
    n = int(status.get("pending_events") or 0)
    pending = t("sync.pending", n=n) if n else t("sync.nothing_pending")
    when = _when(status.get("last_success_at"), now_ms)
    state = status.get("state")
    progress = status.get("progress") or {}
    busy = state == "syncing" or bool(status.get("requested"))
    if state == "syncing":
        level, text = "busy", _attempt(progress, t) or t("sync.syncing")
    elif state == "error":
        level, text = "danger", t("sync.error", error=status.get("last_error") or "?")
    elif state == "online":
        level = "ok" if n == 0 else "busy"
        text = t("sync.online", when=when) if n == 0 else \
            t("sync.online_pending", when=when, pending=pending)
    elif not when:
        level = "warn" if status.get("last_error") else "busy"
        text = t("sync.never", pending=pending)
    elif status.get("last_error"):
        level = "danger" if n else "warn"
        text = t("sync.offline_since", pending=pending, when=when)
    else:  # restarted, not tried yet
        level = "busy" if n else "ok"
        text = t("sync.last", when=when, pending=pending)
    if state == "offline" and (tried := _tried(progress, t)):
        text = f"{text} · {tried}"
    if status.get("requested") and state != "syncing":
        text = f"{t('sync.requested')} · {text}"
    blobs = int(status.get("pending_blobs") or 0)
    if blobs:
        text = f"{text} · {t('sync.blobs', n=blobs)}"
    clock = ""
    if status.get("clock_warning"):
        clock = t("sync.clock", offset=error_text(int(status.get("clock_offset_ms") or 0), t.lang))
    n_checks = int(status.get("clock_checks") or 0)
    checks = t("sync.clock_checks", n=n_checks) if n_checks else ""
    rejected = len(status.get("rejected") or [])
    warning = status.get("warning")
    if clock:
        level = "danger"
    elif checks:
        level = max(level, "warn", key=LEVELS.index)
    elif warning and warning.get("code") not in CALM:
        level = max(level, "warn", key=LEVELS.index)
    return {"level": level, "poll_s": BUSY_POLL_S if busy else POLL_S, "parts": {
        "state": text, "clock": clock, "checks": checks, "warning": warning_text(warning, t),
        "rejected": t("sync.rejected", n=rejected) if rejected else ""}}


async def indicator(desk: Desk, t: Messages) -> dict[str, Any]:
    """The indicator now."""
    status = {**await desk.sync_status(), "requested": desk.loop.requested()}
    return describe(status, t, desk.store.now_ms())


async def status_json(request: web.Request) -> web.Response:
    """GET /sync/status: the indicator for the page to refresh itself."""
    desk = desk_of(request)
    return web.json_response(await indicator(desk, desk.renderer.t(request)),
                             headers={"Cache-Control": "no-store"})


async def sync_now(request: web.Request) -> web.StreamResponse:
    """POST /sync/now: kick the background sync, then go back."""
    form = await request.post()
    csrf.check(request, form)
    desk = desk_of(request)
    desk.loop.kick()
    response = redirect(safe_next(str(form.get("next", "")), "/"))
    flash(response, "sync.kicked")
    return response


def routes() -> list[web.RouteDef]:
    """The indicator's routes."""
    return [web.get("/sync/status", status_json), web.post("/sync/now", sync_now)]
