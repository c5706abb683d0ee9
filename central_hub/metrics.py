"""`GET /metrics`: Prometheus exposition (prometheus_client) of per-node gauges, request counters and
sync durations, one registry per hub app; and the link meter that estimates each node's upload rate.

Per-node gauges are read at scrape time from the same node items as `GET /api/nodes`, so a scrape
and the dashboard never disagree. At national scale they are 26,000 samples: `node_exposition`
writes them straight as text (prometheus_client's own formatting took ~300 ms of CPU for them) and
the text is kept for as long as the node items are the same list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # an edge's install (no `hub` extra) running `central-hub`: one line, not
    # a traceback, since the CLI imports this module before it can catch anything
    raise SystemExit("central-hub: error: the hub needs prometheus_client, which the `hub` extra "
                     "installs: pip install 'commune-sync[hub]' (docs/deployment.md)") from exc

log = logging.getLogger(__name__)

HEALTH_VALUE = {"ok": 0, "warning": 1, "critical": 2}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MIN_METERED_BYTES = 16 * 1024  # smaller bodies measure the round trip, not the link
# (name, help, node item key, factor to the metric's unit): Prometheus wants base units, so the
# items' milliseconds are exported as seconds.
NODE_GAUGES = (
    ("commune_sync_node_pending_events", "Events waiting at the edge (its last report).",
     "pending_events", 1),
    ("commune_sync_node_pending_blobs", "Attachment files waiting to move.", "pending_blobs", 1),
    ("commune_sync_node_oldest_pending_age_seconds", "Age of the oldest waiting event.",
     "oldest_pending_age_s", 1),
    ("commune_sync_node_clock_offset_seconds", "Edge clock minus hub clock.", "clock_offset_ms",
     1e-3),
    ("commune_sync_node_conflicts_open", "Dossiers in conflict.", "conflicts_open", 1),
    ("commune_sync_node_disk_free_bytes", "Free disk space at the edge.", "disk_free", 1),
    ("commune_sync_node_health", "0 ok, 1 warning, 2 critical.", "health", 1),
)


_number = cast(Callable[[float], str], floatToGoString)  # the library's own number format
LAST_SUCCESS = ("commune_sync_node_last_success_timestamp_seconds",
                "Last successful sync (Unix time).")


def _label(value: str) -> str:
    """A label value escaped as the text format wants it."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def node_exposition(items: Sequence[dict[str, Any]]) -> str:
    """The per-node gauge families in the text format, exactly as prometheus_client would write
    them (a test compares the two), in a fraction of its time."""
    labels = [f'{{commune="{_label(str(i["commune"]))}",node="{_label(str(i["node"]))}"}} '
              for i in items]
    out: list[str] = []
    for name, help_text, key, factor in NODE_GAUGES:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
        for item, label in zip(items, labels, strict=True):
            value = item.get(key)
            if key == "health":
                value = HEALTH_VALUE.get(str(value), 2)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append(f"{name}{label}{_number(float(value) * factor)}\n")
    name, help_text = LAST_SUCCESS
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
    for item, label in zip(items, labels, strict=True):
        ts = item.get("last_success_ms")
        if isinstance(ts, int):
            out.append(f"{name}{label}{_number(ts / 1000)}\n")
    return "".join(out)


class HubMetrics:
    """The hub's metrics: a registry of its own (several apps may live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.http_requests = Counter("commune_sync_http_requests", "HTTP requests answered.",
                                     ["route", "method", "status"], registry=r)
        self.sync_requests = Counter("commune_sync_sync_requests", "Sync requests received.",
                                     registry=r)
        self.sync_errors = Counter("commune_sync_sync_errors", "Sync requests refused, by kind.",
                                   ["kind"], registry=r)
        self.events_in = Counter("commune_sync_events_in", "Events received from edges.",
                                 registry=r)
        self.events_out = Counter("commune_sync_events_out", "Events sent to edges.", registry=r)
        self.sync_seconds = Counter("commune_sync_sync_seconds",
                                    "Time spent serving sync requests.", registry=r)
        self.sync_duration = Histogram("commune_sync_sync_duration_seconds",
                                       "One sync request, from its first byte to the answer.",
                                       ["outcome"], buckets=SYNC_BUCKETS, registry=r)
        self.webhook = Counter("commune_sync_alert_webhook", "Alert webhook deliveries.",
                               ["outcome"], registry=r)
        self.log_position = 0
        self.links: dict[str, float] = {}
        self._nodes_for: Sequence[dict[str, Any]] | None = None
        self._nodes_text = b""

    def render(self, items: Sequence[dict[str, Any]], log_position: int) -> bytes:
        """The exposition text for the current node items (the per-node part is reused while
        `items` is the same list: a snapshot replaces its list, it never changes one)."""
        if items is not self._nodes_for:
            self._nodes_text = node_exposition(items).encode("utf-8")
            self._nodes_for = items
        self.log_position = log_position
        return self._nodes_text + generate_latest(self.registry)

    def meter(self, node: str, nbytes: int, seconds: float) -> None:
        """Count one upload into the node's link rate estimate (bytes/s, smoothed)."""
        if nbytes < MIN_METERED_BYTES or seconds <= 0:
            return
        rate = nbytes / seconds
        old = self.links.get(node)
        self.links[node] = rate if old is None else 0.7 * old + 0.3 * rate


class LogPosition(Collector):
    """The highest position in the hub log, read at scrape time."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Yield the gauge."""
        yield GaugeMetricFamily("commune_sync_hub_log_position",
                                "Highest position in the hub log.",
                                value=self.metrics.log_position)


def hub_metrics() -> HubMetrics:
    """A new set of metrics for one hub app."""
    metrics = HubMetrics()
    metrics.registry.register(LogPosition(metrics))
    return metrics
