"""Health of a node from what it reports and what the hub observes: ok | warning | critical, with why."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthRules:
    """Thresholds (configurable in hub.toml)."""

    warn_no_contact_s: int = 3600
    crit_no_contact_s: int = 24 * 3600
    warn_backlog_age_s: int = 30 * 60
    warn_clock_ms: int = 2 * 60 * 1000
    crit_clock_ms: int = 5 * 60 * 1000
    crit_disk_bytes: int = 1024**3


def assess(node: dict[str, Any], now_ms: int, rules: HealthRules = HealthRules()
           ) -> tuple[str, list[str]]:
    """Return (health, reasons) for one node row from `HubStore.nodes`."""
    crit: list[str] = []
    warn: list[str] = []
    stats = node.get("stats") or {}
    if node.get("revoked_at"):
        return "critical", ["credential revoked"]
    seen = node.get("last_seen_at")
    success = node.get("last_success_at")
    if seen is None:
        crit.append("never synced since enrollment")
    else:
        silent = (now_ms - (success or 0)) // 1000
        if silent > rules.crit_no_contact_s:
            crit.append(f"no successful sync for {silent // 3600} h")
        elif silent > rules.warn_no_contact_s:
            warn.append(f"no successful sync for {silent // 60} min")
    age = stats.get("oldest_pending_age_s", 0)
    if age > rules.warn_backlog_age_s:
        warn.append(f"{stats.get('pending_events', 0)} changes waiting, oldest {age // 60} min")
    offset = abs(stats.get("clock_offset_ms", 0))
    if offset > rules.crit_clock_ms:
        crit.append(f"clock off by {offset // 1000} s")
    elif offset > rules.warn_clock_ms:
        warn.append(f"clock off by {offset // 1000} s")
    disk = stats.get("disk_free", -1)
    if 0 <= disk < rules.crit_disk_bytes:
        crit.append(f"only {disk // (1024 * 1024)} MB disk free")
    if node.get("last_error"):
        warn.append(f"last error: {node['last_error']}")
    if node.get("clock_ahead_events"):
        warn.append(f"{node['clock_ahead_events']} events stamped ahead of the hub's clock")
    if node.get("rejected_events"):
        warn.append(f"{node['rejected_events']} events rejected")
    if node.get("conflicts_open"):
        warn.append(f"{node['conflicts_open']} dossiers in conflict")
    if crit:
        return "critical", crit + warn
    if warn:
        return "warning", warn
    return "ok", []
