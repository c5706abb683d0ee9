"""`GET /metrics`: Prometheus text exposition of per-node gauges and hub counters."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

HEALTH_VALUE = {"ok": 0, "warning": 1, "critical": 2}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(nodes: list[dict[str, Any]], counters: dict[str, float], log_size: int) -> str:
    """The exposition text."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, key: str, kind: str = "gauge") -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for item in nodes:
            value = item.get(key)
            if key == "health":
                value = HEALTH_VALUE.get(str(value), 2)
            if isinstance(value, int | float):
                lines.append(f'{name}{{node="{_label(item["node"])}",'
                             f'commune="{_label(item["commune"])}"}} {value}')

    gauge("commune_sync_node_pending_events", "Events waiting at the edge.", "pending_events")
    gauge("commune_sync_node_oldest_pending_age_seconds", "Age of the oldest waiting event.",
          "oldest_pending_age_s")
    gauge("commune_sync_node_clock_offset_ms", "Edge clock minus hub clock.", "clock_offset_ms")
    gauge("commune_sync_node_conflicts_open", "Dossiers in conflict.", "conflicts_open")
    gauge("commune_sync_node_health", "0 ok, 1 warning, 2 critical.", "health")
    lines.append("# HELP commune_sync_node_last_success_timestamp_seconds Last successful sync.")
    lines.append("# TYPE commune_sync_node_last_success_timestamp_seconds gauge")
    for item in nodes:
        ts = item.get("last_success_ms")
        if isinstance(ts, int):
            lines.append(f'commune_sync_node_last_success_timestamp_seconds{{node="'
                         f'{_label(item["node"])}"}} {ts / 1000:.3f}')
    for key, help_text in (
        ("sync_requests", "Sync requests received."),
        ("sync_errors", "Sync requests refused."),
        ("events_in", "Events received from edges."),
        ("events_out", "Events sent to edges."),
        ("sync_seconds_total", "Time spent serving sync requests."),
    ):
        name = f"commune_sync_{key}" + ("" if key.endswith("_total") else "_total")
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} counter")
        lines.append(f"{name} {counters.get(key, 0)}")
    lines.append("# HELP commune_sync_hub_log_position Highest position in the hub log.")
    lines.append("# TYPE commune_sync_hub_log_position gauge")
    lines.append(f"commune_sync_hub_log_position {log_size}")
    return "\n".join(lines) + "\n"
