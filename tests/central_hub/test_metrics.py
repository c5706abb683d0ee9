"""`GET /metrics` scraped and parsed with prometheus_client's own parser: per-node gauges, request
counters by route, the sync duration histogram, refusals by kind; and JSON log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from central_hub.logs import JsonFormatter, use_json
from central_hub.metrics import (
    HEALTH_VALUE,
    LAST_SUCCESS,
    NODE_GAUGES,
    HubMetrics,
    node_exposition,
)
from tests.harness import Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL


async def scrape(net: Net) -> dict[str, Any]:
    assert net.hub is not None
    status, text = await net.hub.api.get("/metrics", token="")
    assert status == 200 and isinstance(text, str)
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(family: Any, name: str | None = None, **labels: str) -> list[Any]:
    return [s for s in family.samples if (name is None or s.name == name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


async def test_metrics_scrape_cleanly_with_node_gauges_counters_and_histograms(net: Net) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    quiet = await net.add_edge("02227", "Xã Thượng Lâm")
    for i in range(3):
        await edge.api.post("/api/dossiers", birth(f"Nguyễn Văn {i}"))
    await edge.sync()
    async with aiohttp.ClientSession() as http, http.post(
            net.hub.url + "/v1/sync", data=b"not zstd",
            headers={"Authorization": f"Bearer {edge.config.credential}"}) as resp:
        assert resp.status == 400
    families = await scrape(net)
    node = edge.config.node
    ts = samples(families["commune_sync_node_last_success_timestamp_seconds"], node=node)
    assert len(ts) == 1 and ts[0].value > 1.7e9
    assert not samples(families["commune_sync_node_last_success_timestamp_seconds"],
                       node=quiet.config.node)
    [pending] = samples(families["commune_sync_node_pending_events"], node=node,
                        commune="02245")
    assert pending.value == 0  # the exchange delivered what the edge reported waiting
    for name in ("commune_sync_node_oldest_pending_age_seconds",
                 "commune_sync_node_clock_offset_seconds", "commune_sync_node_health"):
        assert samples(families[name], node=quiet.config.node), name
    [health] = samples(families["commune_sync_node_health"], node=quiet.config.node)
    assert health.value == 2  # never synced
    assert families["commune_sync_node_pending_events"].type == "gauge"

    requests = families["commune_sync_http_requests"]
    assert requests.type == "counter"
    [synced] = samples(requests, "commune_sync_http_requests_total", route="/v1/sync",
                       method="POST", status="200")
    assert synced.value >= 1
    assert samples(requests, route="/api/dossiers", method="GET") == []  # routes, not paths
    assert samples(requests, route="/api/login", status="200")

    refused = samples(families["commune_sync_sync_errors"], "commune_sync_sync_errors_total")
    assert refused and sum(s.value for s in refused) == 1
    histogram = families["commune_sync_sync_duration_seconds"]
    assert histogram.type == "histogram"
    [count] = samples(histogram, "commune_sync_sync_duration_seconds_count", outcome="ok")
    assert count.value >= 1
    buckets = samples(histogram, "commune_sync_sync_duration_seconds_bucket", outcome="ok")
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count.value
    assert families["commune_sync_sync_requests"].samples[0].value >= 2
    assert families["commune_sync_hub_log_position"].samples[0].value >= 3


def test_the_clock_offset_is_exported_in_seconds() -> None:
    """Prometheus base units: the node item's milliseconds become seconds in the gauge."""
    metrics = HubMetrics()
    text = metrics.render([{"node": "02245.01", "commune": "02245", "clock_offset_ms": -2500,
                            "health": "warning"}], 0).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "commune_sync_node_clock_offset_ms" not in families
    [offset] = samples(families["commune_sync_node_clock_offset_seconds"], node="02245.01")
    assert offset.value == -2.5
    assert "clock" in families["commune_sync_node_clock_offset_seconds"].documentation.lower()


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("central_hub.nodes.monitor", logging.WARNING, __file__, 1,
                               "node %s health %s", ("02245.01", "critical"), None)
    record.node = "02245.01"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "node 02245.01 health critical"
    assert line["level"] == "warning" and line["logger"] == "central_hub.nodes.monitor"
    assert line["node"] == "02245.01" and "ValueError: boom" in line["exc"]
    assert line["ts"].endswith("+00:00")
    root = logging.getLogger()
    saved = [(h, h.formatter) for h in root.handlers]
    try:
        use_json()
        assert all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    finally:
        for handler, formatter in saved:
            handler.setFormatter(formatter)


class _Reference(Collector):
    """The per-node gauges as prometheus_client writes them (what node_exposition replaced)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def collect(self) -> Iterator[Metric]:
        for name, help_text, key, factor in NODE_GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["node", "commune"])
            for item in self.items:
                value = item.get(key)
                if key == "health":
                    value = HEALTH_VALUE.get(str(value), 2)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    family.add_metric([item["node"], item["commune"]], float(value) * factor)
            yield family
        name, help_text = LAST_SUCCESS
        last = GaugeMetricFamily(name, help_text, labels=["node", "commune"])
        for item in self.items:
            if isinstance(item.get("last_success_ms"), int):
                last.add_metric([item["node"], item["commune"]], item["last_success_ms"] / 1000)
        yield last


def test_the_node_gauges_are_written_exactly_as_prometheus_client_writes_them() -> None:
    items: list[dict[str, Any]] = [
        {"node": "02245.01", "commune": "02245", "pending_events": 12, "pending_blobs": 0,
         "oldest_pending_age_s": 3_000_000, "clock_offset_ms": -2500, "conflicts_open": 1,
         "disk_free": 412_316_860_416, "health": "warning", "last_success_ms": 1_790_000_000_123},
        {"node": 'we"ird\\no\nde', "commune": "0", "pending_events": None, "pending_blobs": True,
         "oldest_pending_age_s": 0.5, "clock_offset_ms": 10**17, "conflicts_open": 0,
         "disk_free": None, "health": "??", "last_success_ms": None},
        {"node": "02227.01", "commune": "02227", "health": "critical"},
    ]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Reference(items))
    assert node_exposition(items) == generate_latest(registry).decode("utf-8")
    metrics, line = HubMetrics(), b'pending_events{commune="02245",node="02245.01"} 12.0\n'
    assert metrics.render(items, 7).startswith(node_exposition(items).encode())
    items[0] = {**items[0], "pending_events": 13}  # never done to a snapshot's list: shows
    assert line in metrics.render(items, 7)  # that the text is kept for the same list
    assert line.replace(b"12.0", b"13.0") in metrics.render(list(items), 7)  # a new list
