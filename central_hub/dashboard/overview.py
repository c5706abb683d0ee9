"""The fleet overview at `/` and the alerts page: counts by health, which communes have not synced
today and why, and a table of every node, filtered and sorted on the server (works without
JavaScript, one link per sort)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from central_hub.dashboard.common import PAGE, SEVERITY, hub_of, node_matches, paginate
from central_hub.nodes import fleet
from central_hub.nodes.fleet import fast_iso, local_day_start
from protocol.calendar import iso
from protocol.text import search_key
from service.api import answers
from service.api.spec import operation
from service.web import json_response

log = logging.getLogger(__name__)

TODAY_LIST = 12
HEALTH_FILTERS = ("", "not_ok", "critical", "warning", "ok", "revoked")
SORTS = ("health", "commune", "node", "last_success", "pending", "backlog", "conflicts", "clock")
NEVER = -1


def _sort_key(sort: str) -> Any:
    def key(item: dict[str, Any]) -> Any:
        if sort == "health":
            return (SEVERITY[item["health"]] if not item["revoked"] else -1,
                    -(item["last_success_ms"] or NEVER))
        if sort == "commune":
            return (search_key(item["commune_name"] or ""), item["commune"])
        if sort == "node":
            return item["node"]
        if sort == "last_success":
            return item["last_success_ms"] or NEVER
        if sort == "pending":
            return item["pending_events"] or 0
        if sort == "backlog":
            return item["backlog_s"]
        if sort == "conflicts":
            return item["conflicts_open"] or 0
        return abs(item["clock_offset_ms"] or 0)
    return key


def _matches(item: dict[str, Any], q: str, health: str, today_only: bool,
             today_start: int) -> bool:
    if health == "revoked":
        if not item["revoked"]:
            return False
    elif item["revoked"]:
        return False
    elif health == "not_ok" and item["health"] == "ok":
        return False
    elif health in ("ok", "warning", "critical") and item["health"] != health:
        return False
    if today_only and (item["last_success_ms"] or 0) >= today_start:
        return False
    return node_matches(item, q)


async def overview(request: web.Request) -> web.Response:
    """GET /: the fleet at a glance."""
    hub = hub_of(request)
    items = await hub.nodes.items()
    now = hub.store.now_ms()
    today_start = local_day_start(now)
    counts = {"ok": 0, "warning": 0, "critical": 0, "revoked": 0, "total": 0}
    not_today: list[dict[str, Any]] = []
    for item in items:
        if item["revoked"]:
            counts["revoked"] += 1
            continue
        counts["total"] += 1
        counts[item["health"]] += 1
        if (item["last_success_ms"] or 0) < today_start:
            not_today.append(item)
    not_today.sort(key=_sort_key("health"), reverse=True)

    query = request.query
    q = query.get("q", "").strip()
    health = query.get("health", "")
    health = health if health in HEALTH_FILTERS else ""
    today_only = query.get("today") == "1"
    sort = query.get("sort", "health")
    sort = sort if sort in SORTS else "health"
    desc = query.get("dir", "desc" if sort in ("health", "pending", "backlog", "conflicts",
                                                "clock") else "asc") == "desc"
    rows = [i for i in items if _matches(i, q, health, today_only, today_start)]
    rows.sort(key=_sort_key(sort), reverse=desc)
    page, pages = paginate(query, len(rows), PAGE)
    params = {"q": q, "health": health, "today": "1" if today_only else "", "sort": sort,
              "dir": "desc" if desc else "asc"}

    def link(**change: Any) -> str:
        merged = {**params, **{k: str(v) for k, v in change.items()}}
        return "/?" + urlencode({k: v for k, v in merged.items() if v})

    def sort_link(column: str) -> str:
        flip = "asc" if desc else "desc"
        return link(sort=column, dir=flip if column == sort else "desc", page="")

    return await hub.renderer.page(
        request, "overview.html", counts=counts, not_today=not_today[:TODAY_LIST],
        not_today_count=len(not_today), rows=rows[(page - 1) * PAGE:page * PAGE],
        matched=len(rows), page=page, pages=pages, params=params, link=link,
        sort_link=sort_link, sort=sort, desc=desc, health_filters=HEALTH_FILTERS,
        today_start=today_start, now_ms=now, generated_at=iso(now))


async def alerts(request: web.Request) -> web.Response:
    """GET /alerts: nodes not ok now with since-when and why (`PAGE` a page: a country has
    hundreds), and the latest changes."""
    hub = hub_of(request)
    active = await _active(request)
    page, pages = paginate(request.query, len(active), PAGE)
    return await hub.renderer.page(
        request, "alerts.html", active=active[(page - 1) * PAGE:page * PAGE],
        active_count=len(active), page=page, pages=pages,
        link=lambda **kw: f"/alerts?page={kw['page']}",
        changes=await fleet.alert_log(hub.store, 100),
        webhook=bool(hub.config.alert_webhook_url), check_s=hub.config.health_check_s)


async def _active(request: web.Request) -> list[dict[str, Any]]:
    hub = hub_of(request)
    items = {i["node"]: i for i in await hub.nodes.items()}
    out = []
    for node, (health, since, not_ok_since) in (await fleet.not_ok_states(hub.store)).items():
        item = items.get(node)
        if item is None or item["revoked"]:
            continue
        start = not_ok_since or since
        out.append({**item, "since": fast_iso(start), "since_ms": start,
                    "level_since": fast_iso(since), "recorded": health})
    out.sort(key=lambda a: (-SEVERITY[a["recorded"]], a["since_ms"]))
    return out


@operation("Active alerts and the latest health changes", tag="fleet", answer=answers.Alerts)
async def alerts_json(request: web.Request) -> web.Response:
    """GET /api/alerts: active alerts and the latest changes."""
    hub = hub_of(request)
    active = [{"node": a["node"], "commune": a["commune"], "commune_name": a["commune_name"],
               "health": a["recorded"], "since": a["since"], "level_since": a["level_since"],
               "reasons": a["why"]} for a in await _active(request)]
    return json_response({"active": active, "changes": await fleet.alert_log(hub.store, 100)})


def routes() -> list[web.RouteDef]:
    """The overview's and the alerts' routes."""
    return [web.get("/", overview), web.get("/alerts", alerts),
            web.get("/api/alerts", alerts_json)]
