"""The commune's reports, offline: the register (sổ theo dõi hồ sơ, form 06) and the period report
(received, resolved early / on time / late, in progress, refused, apologies), each as a page, a
printable sheet and CSV — counted by `protocol.stats` from the facts `service.reports` reads, as
the hub counts them, from this node's own database."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from edge_node.roles import PERMITS
from edge_node.ui.desk import Desk, desk_of, signers, status_label
from protocol import lifecycle, register, stats
from protocol.errors import ValidationError
from protocol.stats import Period
from service import reports, stats_cache
from service.ui.i18n import Messages
from service.ui.session import need

log = logging.getLogger(__name__)

TAIL = ("withdrawn", "returned", "refused", "apologies")


def _names(desk: Desk, lang: str) -> dict[str, str]:
    return {p.code: (p.name_vi if lang == "vi" else p.name_en)
            for p in desk.store.catalogue.procedures}


def _period(desk: Desk, request: web.Request, default_first: date | None
            ) -> tuple[Period | None, str | None, dict[str, str]]:
    """The period asked for, or the error; with the values to show in the form."""
    try:
        period = reports.parse_period(request.query, desk.store.today(),
                                      default_first=default_first, t=desk.renderer.t(request))
    except ValidationError as exc:
        return None, exc.message, {k: request.query.get(k, "") for k in ("from", "to")}
    return period, None, {"from": period.first.strftime("%d/%m/%Y"),
                          "to": period.last.strftime("%d/%m/%Y")}


def _presets(today: date, path: str) -> list[tuple[str, str]]:
    month1 = today.replace(day=1)
    prev_last = month1 - timedelta(days=1)
    return [(key, f"{path}?" + urlencode({"from": a.isoformat(), "to": b.isoformat()}))
            for key, a, b in (("reports.today", today, today), ("reports.this_month", month1, today),
                              ("reports.last_month", prev_last.replace(day=1), prev_last),
                              ("reports.this_year", today.replace(month=1, day=1), today))]


def _dated(today: date) -> dict[str, str]:
    return {"day": f"{today:%d}", "month": f"{today:%m}", "year": f"{today:%Y}"}


# -- the register (form 06) -----------------------------------------------------------------------

async def _register(desk: Desk, period: Period, lang: str) -> list[dict[str, Any]]:
    views = await reports.register_views(desk.store, period.start_ms, period.end_ms)
    return register.rows(views, _names(desk, lang))


def register_headers(t: Messages) -> dict[str, str]:
    """The register's column titles in the language."""
    return {c: t(f"register.col.{c}") for c in register.COLUMNS}


async def register_page(request: web.Request) -> web.Response:
    """GET /register[?from=&to=]: the register of the dossiers received (today by default)."""
    desk = desk_of(request)
    need(request, PERMITS["register"], "read the register")
    today = desk.store.today()
    period, error, values = _period(desk, request, today)
    rows = await _register(desk, period, desk.renderer.t(request).lang) if period else []
    return await desk.renderer.page(
        request, "register.html", status=422 if error else 200, rows=rows, error=error,
        values=values, query=_query(period), presets=_presets(today, "/register"))


def _query(period: Period | None) -> str:
    if period is None:
        return ""
    return urlencode({"from": period.first.isoformat(), "to": period.last.isoformat()})


def _range(period: Period) -> str:
    return f"{period.first:%Y%m%d}-{period.last:%Y%m%d}"


async def register_csv(request: web.Request) -> web.Response:
    """GET /register.csv: the same rows as CSV (UTF-8 with BOM)."""
    desk = desk_of(request)
    need(request, PERMITS["register"], "read the register")
    t = desk.renderer.t(request)
    period = reports.parse_period(request.query, desk.store.today(),
                                  default_first=desk.store.today())
    rows = [{**r, "status": status_label(r["status"], t.lang),
             "timeliness": t(f"register.{r['timeliness']}") if r["timeliness"] else None}
            for r in await _register(desk, period, t.lang)]
    return _csv(stats.csv_text(register.COLUMNS, rows, register_headers(t)),
                f"so-theo-doi-{desk.config.commune}-{_range(period)}.csv")


async def register_print(request: web.Request) -> web.Response:
    """GET /register/print: the register on A4 landscape, in Vietnamese."""
    desk = desk_of(request)
    need(request, PERMITS["register"], "read the register")
    today = desk.store.today()
    period = reports.parse_period(request.query, today, default_first=today)
    return await desk.renderer.page(
        request, "print_register.html", rows=await _register(desk, period, "vi"),
        period=period, back=f"/register?{_query(period)}", **await _sheet(desk, today),
        status_vi=lambda s: status_label(s, "vi"))


async def _sheet(desk: Desk, today: date) -> dict[str, Any]:
    return {"tv": desk.renderer.messages["vi"], "agency": desk.agency_name(),
            "commune_name": desk.place_name(), "dated": _dated(today), "copies": ("",),
            "print_hint": "print.hint_one", "conflicts": [], "signer": await signers(desk)}


def _csv(text: str, name: str) -> web.Response:
    return web.Response(body=text.encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- statistics ------------------------------------------------------------------------------------

async def _report(desk: Desk, period: Period, lang: str) -> dict[str, Any]:
    """The period report, kept while it cannot have changed (`service.stats_cache`, as the hub's:
    any write moves the log, and the clock reaching a due time or the period's end is foreseen)."""
    async def make(facts: list[stats.Facts], periods: list[Period], now: int) -> dict[str, Any]:
        return stats.report(facts, periods, now,
                            commune_names={desk.config.commune: desk.config.commune_name},
                            procedure_names=_names(desk, lang))

    return await stats_cache.of(desk.store).report(desk.store, period, None, "none", lang, make)


def stats_headers(t: Messages) -> dict[str, str]:
    """The report's column titles in the language."""
    return {c: t(f"report.col.{c}") for c in stats.COLUMNS}


async def stats_page(request: web.Request) -> web.Response:
    """GET /stats[?from=&to=]: the period report (this month by default), and dossiers by
    status now."""
    desk = desk_of(request)
    need(request, PERMITS["statistics"], "read statistics")
    t = desk.renderer.t(request)
    today, now = desk.store.today(), desk.store.now_ms()
    period, error, values = _period(desk, request, None)
    w = desk.worklists
    by_status = await w.by_status()
    return await desk.renderer.page(
        request, "stats.html", status=422 if error else 200, error=error, values=values,
        data=await _report(desk, period, t.lang) if period else None, query=_query(period),
        presets=_presets(today, "/stats"), counts=stats.COUNTS, tail=TAIL,
        by_status=[(s, by_status.get(s, 0)) for s in lifecycle.STATUSES],
        total=sum(by_status.values()), overdue=await w.count_overdue(now),
        today_count=(await w.received_on(today, now, limit=1)).count)


async def stats_csv(request: web.Request) -> web.Response:
    """GET /stats.csv: the period report as CSV, one row per procedure and the total."""
    desk = desk_of(request)
    need(request, PERMITS["statistics"], "read statistics")
    t = desk.renderer.t(request)
    period = reports.parse_period(request.query, desk.store.today())
    return _csv(stats.to_csv(await _report(desk, period, t.lang), stats_headers(t)),
                f"thong-ke-{desk.config.commune}-{_range(period)}.csv")


async def stats_print(request: web.Request) -> web.Response:
    """GET /stats/print: the period report on A4 landscape, in Vietnamese, to sign."""
    desk = desk_of(request)
    user = need(request, PERMITS["statistics"], "read statistics")
    today = desk.store.today()
    period = reports.parse_period(request.query, today)
    return await desk.renderer.page(
        request, "print_report.html", data=await _report(desk, period, "vi"), period=period,
        counts=stats.COUNTS, tail=TAIL, back=f"/stats?{_query(period)}", maker=user.username,
        **await _sheet(desk, today))


def routes() -> list[web.RouteDef]:
    """Register and statistics routes."""
    return [web.get("/register", register_page), web.get("/register.csv", register_csv),
            web.get("/register/print", register_print), web.get("/stats", stats_page),
            web.get("/stats.csv", stats_csv), web.get("/stats/print", stats_print)]
