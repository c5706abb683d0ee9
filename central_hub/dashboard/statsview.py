"""Statistics in three shapes from one computation: the page `/stats`, its CSV download
`/stats.csv`, and `GET /api/stats?from=&to=&commune=&by=` (JSON)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from central_hub.dashboard.common import PAGE, Hub, hub_of, paginate
from central_hub.nodes import fleet
from protocol import stats
from protocol.calendar import local
from protocol.errors import ValidationError
from protocol.stats import Period
from service import reports, stats_cache
from service.api import answers, bodies
from service.api.spec import operation
from service.ui.formats import day
from service.ui.i18n import Messages
from service.web import json_response

log = logging.getLogger(__name__)

# what the date boxes take (the browser checks it, `parse_day` decides): dd/mm/yyyy as shown, or
# the ISO date of a link; text boxes, because Chromium shows type="date" as mm/dd/yyyy
DAY_PATTERN = r"\d{1,2}\/\d{1,2}\/\d{4}|\d{4}-\d{2}-\d{2}"


def parse_query(hub: Hub, query: Any,
                t: Messages | None = None) -> tuple[Period, str | None, str]:
    """(period, commune or None, grouping) from `from`, `to`, `commune`, `by`; this month to
    today by default. Dates as dd/mm/yyyy (what the page shows) or YYYY-MM-DD (the API's).
    Errors in English, or in `t`'s language for the page (`service.reports.parse_period`)."""
    period = reports.parse_period(query, local(hub.store.now_ms()).date(), t=t)
    commune = (query.get("commune") or "").strip() or None
    if commune is not None and not (commune.isdigit() and len(commune) == 5):
        raise ValidationError("commune must be a 5-digit code", field="commune")
    by = query.get("by") or "none"
    if by not in stats.GROUPINGS:
        raise ValidationError(f"by must be one of {', '.join(stats.GROUPINGS)}", field="by")
    return period, commune, by


async def compute(hub: Hub, period: Period, commune: str | None, by: str,
                  lang: str = "vi") -> dict[str, Any]:
    """The report for a period, split by `by`, kept while it cannot have changed
    (`service.stats_cache`; never to be changed by the caller)."""
    async def make(facts: list[stats.Facts], periods: list[Period], now: int) -> dict[str, Any]:
        names = {p.code: (p.name_vi if lang == "vi" else p.name_en)
                 for p in hub.store.dossiers.catalogue.procedures}
        data = stats.report(facts, periods, now,
                            commune_names=await fleet.commune_names(hub.store),
                            procedure_names=names, unit_on=hub.store.log.mergers.unit_on)
        data.update(commune=commune, by=by)
        return data

    # the unit's codes (a merged commune's too); the mergers are part of what the report says
    return await stats_cache.of(hub.store).report(
        hub.store, period, hub.store.dossiers.units(commune), by,
        (lang, hub.store.log.mergers), make)


def headers(t: Messages) -> dict[str, str]:
    """Column titles in the language."""
    return {c: t(f"stats.col.{c}") for c in stats.COLUMNS}


async def page(request: web.Request) -> web.Response:
    """GET /stats."""
    hub = hub_of(request)
    t = hub.renderer.t(request)
    error, bad = None, None
    data: dict[str, Any] | None = None
    try:
        period, commune, by = parse_query(hub, request.query, t)
        data = await compute(hub, period, commune, by, t.lang)
        values = {"from": period.first.isoformat(), "to": period.last.isoformat(),
                  "commune": commune or "", "by": by}
        shown = {**values, "from": day(period.first), "to": day(period.last)}
    except ValidationError as exc:
        error, bad = exc.message, exc.field
        values = {k: request.query.get(k, "") for k in ("from", "to", "commune", "by")}
        shown = values
    today = local(hub.store.now_ms()).date()
    month1 = today.replace(day=1)
    prev_last = month1 - timedelta(days=1)
    quarter1 = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    presets = [("stats.this_month", month1, today),
               ("stats.last_month", prev_last.replace(day=1), prev_last),
               ("stats.this_quarter", quarter1, today),
               ("stats.this_year", today.replace(month=1, day=1), today)]
    query = urlencode({k: v for k, v in values.items() if v})
    # a country has 3,321 communes: the table shows PAGE rows a page, every period's total
    # counts them all (the CSV has every row)
    rows = data["rows"] if data else []
    page_no, pages = paginate(request.query, len(rows), PAGE)
    on_page = rows[(page_no - 1) * PAGE:page_no * PAGE]
    periods = {r["period"] for r in on_page}
    totals = [x for x in data["totals"] if not on_page or x["period"] in periods] if data else []
    return await hub.renderer.page(
        request, "stats.html", status=422 if error else 200, data=data, error=error,
        rows=on_page, totals=totals, page=page_no, pages=pages,
        link=lambda **kw: f"/stats?{query}&page={kw['page']}" if query else
        f"/stats?page={kw['page']}",
        bad=bad, values=shown, query=query, day_pattern=DAY_PATTERN, groupings=stats.GROUPINGS,
        counts=stats.COUNTS,
        presets=[(key, f"/stats?from={a.isoformat()}&to={b.isoformat()}")
                 for key, a, b in presets],
        communes=await fleet.commune_names(hub.store))


async def csv_download(request: web.Request) -> web.Response:
    """GET /stats.csv: the same table as a CSV file (UTF-8 with BOM)."""
    hub = hub_of(request)
    t = hub.renderer.t(request)
    period, commune, by = parse_query(hub, request.query)
    data = await compute(hub, period, commune, by, t.lang)
    name = f"thong-ke-{period.first.isoformat()}-{period.last.isoformat()}" + \
        (f"-{commune}" if commune else "") + ".csv"
    return web.Response(body=stats.to_csv(data, headers(t)).encode("utf-8"),
                        content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@operation("Statistics for a period (the /stats report)", tag="statistics",
           query=bodies.StatsQuery, answer=answers.Stats)
async def api(request: web.Request, query: bodies.StatsQuery) -> web.Response:
    """GET /api/stats: the report as JSON (procedure names in Vietnamese)."""
    hub = hub_of(request)
    period, commune, by = parse_query(hub, bodies.as_dict(query))
    return json_response(await compute(hub, period, commune, by))


def routes() -> list[web.RouteDef]:
    """Statistics routes."""
    return [web.get("/stats", page), web.get("/stats.csv", csv_download),
            web.get("/api/stats", api)]
