"""One node's page: health and why, every figure it reports and the hub observes, charts of its
history (backlog, exchanges ok and failed, bytes), its latest exchanges and health changes."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from central_hub.dashboard import charts
from central_hub.dashboard.common import Hub, duration, hub_of, size
from central_hub.nodes import fleet, history
from central_hub.nodes.fleet import DAY_MS, HOUR_MS
from protocol.calendar import local
from protocol.errors import NotFound, ValidationError
from service.api import answers, bodies
from service.api.spec import operation
from service.ui.i18n import Messages
from service.web import json_response

log = logging.getLogger(__name__)

# window -> (length, bucket)
WINDOWS: dict[str, tuple[int, int]] = {
    "24h": (DAY_MS, HOUR_MS // 2),
    "7d": (7 * DAY_MS, 3 * HOUR_MS),
    "30d": (30 * DAY_MS, DAY_MS),
    "1y": (365 * DAY_MS, 7 * DAY_MS),
}


def windows(hub: Hub) -> list[str]:
    """The windows the configured retention can fill."""
    keep = hub.config.history_days * DAY_MS
    return [w for w, (length, _) in WINDOWS.items() if length <= max(keep, DAY_MS)]


async def _item(hub: Hub, node: str) -> dict[str, Any]:
    items = await fleet.node_items(hub.store, hub.config.health, hub.metrics.links, node)
    if not items:
        raise NotFound(f"no node {node}")
    return items[0]


def _window(hub: Hub, raw: str | None) -> str:
    allowed = windows(hub)
    if raw is None or raw == "":
        return "24h"
    if raw not in allowed:
        raise ValidationError(f"window must be one of {', '.join(allowed)}", field="window")
    return raw


async def window_series(hub: Hub, node: str, window: str) -> tuple[int, int, int, list[dict[str, Any]]]:
    """(start, end, bucket, buckets) of a node's history for a window ending now."""
    length, bucket = WINDOWS[window]
    now = hub.store.now_ms()
    end = fleet.local_day_start(now) + DAY_MS if bucket >= DAY_MS else (now // bucket + 1) * bucket
    start = end - length
    return start, end, bucket, await history.series(hub.store, node, start, end, bucket)


def build_charts(t: Messages, start: int, end: int, bucket: int,
                 buckets: list[dict[str, Any]]) -> dict[str, charts.Chart]:
    """The node page's three charts."""
    fmt = "%H:%M" if end - start <= DAY_MS else "%d/%m"

    def label(ms: int) -> str:
        return local(ms).strftime(fmt)

    def when(b: dict[str, Any]) -> str:
        return local(b["t"]).strftime("%d/%m %H:%M")

    return {
        "backlog": charts.backlog(
            buckets, start, end, bucket, label,
            lambda b: t("node.tip_backlog", when=when(b), n=b["pending"])),
        "sessions": charts.stacked(
            buckets, start, end, bucket, (("ok", "bar-ok"), ("failed", "bar-failed")), label,
            lambda b: t("node.tip_sessions", when=when(b), ok=b["ok"], failed=b["failed"])),
        "bytes": charts.stacked(
            buckets, start, end, bucket, (("bytes_in", "bar-in"), ("bytes_out", "bar-out")),
            label, lambda b: t("node.tip_bytes", when=when(b), up=size(b["bytes_in"]),
                               down=size(b["bytes_out"])), size),
    }


async def node_page(request: web.Request) -> web.Response:
    """GET /nodes/{node}."""
    hub = hub_of(request)
    node = request.match_info["node"]
    item = await _item(hub, node)
    window = _window(hub, request.query.get("window"))
    start, end, bucket, buckets = await window_series(hub, node, window)
    t = hub.renderer.t(request)
    now = hub.store.now_ms()
    day = await history.node_window(hub.store, node, now - DAY_MS)
    states = await fleet.health_states(hub.store)
    state = states.get(node)
    return await hub.renderer.page(
        request, "node.html", item=item, window=window, windows=windows(hub),
        charts=build_charts(t, start, end, bucket, buckets), day=day,
        sessions=await history.recent_sessions(hub.store, node, 20),
        changes=await fleet.alert_log(hub.store, 10, node=node), state=state,
        not_ok_since=(state.not_ok_since if state else None),
        backlog_s=duration(t, item["oldest_pending_age_s"]) if item["pending_events"] else "")


@operation("A node's sync history, for its charts", tag="fleet", query=bodies.HistoryQuery,
           answer=answers.NodeHistory)
async def history_json(request: web.Request, query: bodies.HistoryQuery) -> web.Response:
    """GET /api/nodes/{node}/history?window=24h|7d|30d|1y: chart data."""
    hub = hub_of(request)
    node = request.match_info["node"]
    await _item(hub, node)
    window = _window(hub, query.window)
    start, end, bucket, buckets = await window_series(hub, node, window)
    return json_response({"node": node, "window": window, "start": start, "end": end,
                          "bucket_ms": bucket, "buckets": buckets,
                          "last_24h": await history.node_window(hub.store, node,
                                                              hub.store.now_ms() - DAY_MS)})


def routes() -> list[web.RouteDef]:
    """The node page's routes."""
    return [web.get("/nodes/{node}", node_page),
            web.get("/api/nodes/{node}/history", history_json)]
