"""Health of a node from what it reports and what the hub observes: ok | warning | critical, with why.

Every rule that fires gives a `Reason` (a code, its level and its figures), so the dashboard can say
it in the operator's language and the API in English. The thresholds are `HealthRules`, declared
here once with their defaults and set in hub.toml's `[health]` table (`central_hub.config`); 0 turns
a rule off. What an edge reports is as old as its last
contact: a backlog that existed then has only grown older since, so its age is counted up to now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

from protocol import PROTOCOL_VERSION
from protocol.errors import ValidationError

log = logging.getLogger(__name__)

LEVELS = ("ok", "warning", "critical")


@dataclass(frozen=True, slots=True)
class HealthRules:
    """Thresholds (hub.toml `[health]`, or flat as `health_<name>`; 0 turns a rule off)."""

    warn_no_contact_s: int = 3600
    crit_no_contact_s: int = 24 * 3600
    warn_backlog_age_s: int = 30 * 60
    crit_backlog_age_s: int = 24 * 3600
    warn_clock_ms: int = 2 * 60 * 1000
    crit_clock_ms: int = 5 * 60 * 1000
    warn_disk_bytes: int = 5 * 1024**3
    crit_disk_bytes: int = 1024**3
    warn_pending_blobs: int = 200
    warn_silent_min_s: int = 5 * 60  # silent SILENT_FACTOR × its sync interval, and this long

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValidationError(f"{f.name} must be 0 (off) or more", field=f.name)


DEFAULT_RULES = HealthRules()
SILENT_FACTOR = 3  # sync intervals without a word from a node that says it syncs every one


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a node is not ok: `code` names the rule, `params` its figures (seconds, counts)."""

    code: str
    level: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The reason in English (the API's and the log's language)."""
        p = self.params
        match self.code:
            case "revoked":
                return "credential revoked"
            case "never_synced":
                return "never synced since enrollment"
            case "silent":
                return (f"not heard from for {duration(p['silent_s'])}, though it syncs every "
                        f"{duration(p['every_s'])}")
            case "no_sync":
                text = f"no successful sync for {duration(p['silent_s'])}"
                if p.get("contact_s") is not None:
                    text += f" (last contact {duration(p['contact_s'])} ago)"
                return text
            case "backlog":
                return f"{p['pending']} changes waiting, oldest {duration(p['age_s'])}"
            case "clock":
                side = "behind" if p.get("behind") else "ahead of"
                return f"clock off by {duration(p['offset_s'])} ({side} the hub's)"
            case "disk":
                return f"only {p['mb']} MB disk free"
            case "disk_floor":
                return (f"refuses new dossiers: only {p['mb']} MB disk free "
                        f"(its floor is {p['floor_mb']} MB)")
            case "blobs":
                return f"{p['n']} files waiting to move"
            case "last_error":
                return f"last error: {p['error']}"
            case "clock_ahead":
                return f"{p['n']} events stamped ahead of the hub's clock"
            case "rejected":
                return f"{p['n']} events rejected"
            case "conflicts":
                return f"{p['n']} dossiers in conflict"
            case "old_protocol":
                return f"speaks protocol {p['protocol']}, the hub {p['hub']}: update the node"
        return self.code

    def plain(self) -> dict[str, Any]:
        """JSON shape: code, level, figures and the English text."""
        return {"code": self.code, "level": self.level, "params": self.params,
                "text": self.text()}


def duration(seconds: int) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 >= 60 else f"{s // 3600} h"
    return f"{s // 86400} d {s % 86400 // 3600} h" if s % 86400 >= 3600 else f"{s // 86400} d"


def _level(value: float, warn: float, crit: float) -> str | None:
    if crit and value > crit:
        return "critical"
    if warn and value > warn:
        return "warning"
    return None


def backlog_age_s(node: dict[str, Any], now_ms: int) -> int:
    """The age of the oldest change waiting at the edge now, from its last report."""
    stats = node.get("stats") or {}
    pending = stats.get("pending_events", 0) or 0
    age = int(stats.get("oldest_pending_age_s", 0) or 0)
    seen = node.get("last_seen_at")
    if pending and seen is not None:
        age += max(0, (now_ms - seen) // 1000)
    return age


def _silent(node: dict[str, Any], now_ms: int, seen: int, rules: HealthRules) -> list[Reason]:
    """A node that reports its sync interval and has not been heard from for several of them
    should have synced: its attempts fail before they reach the hub (a cut link, a power cut,
    a certificate it refuses), so it is not shown ok even before `warn_no_contact_s`."""
    every = (node.get("stats") or {}).get("contact_every_s")
    if not rules.warn_silent_min_s or not isinstance(every, int) or every <= 0:
        return []
    silent = max(0, (now_ms - seen) // 1000)
    if silent <= max(SILENT_FACTOR * every, rules.warn_silent_min_s):
        return []
    return [Reason("silent", "warning", {"silent_s": silent, "every_s": every})]


def evaluate(node: dict[str, Any], now_ms: int, rules: HealthRules = DEFAULT_RULES
             ) -> tuple[str, list[Reason]]:
    """Return (health, reasons, worst first) for one node row from `HubStore.nodes`."""
    if node.get("revoked_at"):
        return "critical", [Reason("revoked", "critical")]
    reasons: list[Reason] = []
    stats = node.get("stats") or {}
    seen, success = node.get("last_seen_at"), node.get("last_success_at")
    if seen is None:
        reasons.append(Reason("never_synced", "critical"))
    else:
        silent = max(0, (now_ms - (success or node.get("enrolled_at") or 0)) // 1000)
        level = _level(silent, rules.warn_no_contact_s, rules.crit_no_contact_s)
        if level:
            contact = max(0, (now_ms - seen) // 1000)
            reasons.append(Reason("no_sync", level, {
                "silent_s": silent, "contact_s": contact if contact < silent else None}))
        else:
            reasons.extend(_silent(node, now_ms, seen, rules))
    pending = int(stats.get("pending_events", 0) or 0)
    if pending:
        age = backlog_age_s(node, now_ms)
        level = _level(age, rules.warn_backlog_age_s, rules.crit_backlog_age_s)
        if level:
            reasons.append(Reason("backlog", level, {"pending": pending, "age_s": age}))
    signed = int(stats.get("clock_offset_ms", 0) or 0)
    offset = abs(signed)
    level = _level(offset, rules.warn_clock_ms, rules.crit_clock_ms)
    if level:
        reasons.append(Reason("clock", level, {"offset_s": offset // 1000, "behind": signed < 0}))
    disk = stats.get("disk_free", -1)
    floor = stats.get("disk_floor", 0)
    if isinstance(disk, int) and disk >= 0:
        if isinstance(floor, int) and disk < floor:  # the node is refusing intake right now
            reasons.append(Reason("disk_floor", "critical", {"mb": disk // (1024 * 1024),
                                                             "floor_mb": floor // (1024 * 1024)}))
        elif rules.crit_disk_bytes and disk < rules.crit_disk_bytes:
            reasons.append(Reason("disk", "critical", {"mb": disk // (1024 * 1024)}))
        elif rules.warn_disk_bytes and disk < rules.warn_disk_bytes:
            reasons.append(Reason("disk", "warning", {"mb": disk // (1024 * 1024)}))
    blobs = int(stats.get("pending_blobs", 0) or 0)
    if rules.warn_pending_blobs and blobs > rules.warn_pending_blobs:
        reasons.append(Reason("blobs", "warning", {"n": blobs}))
    protocol = node.get("protocol")
    if isinstance(protocol, int) and 0 < protocol < PROTOCOL_VERSION:
        reasons.append(Reason("old_protocol", "warning",
                              {"protocol": protocol, "hub": PROTOCOL_VERSION}))
    error = node.get("last_error")  # the hub's own finding; an edge's report may be stale
    if error:
        reasons.append(Reason("last_error", "warning", {"error": str(error)[:300]}))
    for code, key in (("clock_ahead", "clock_ahead_events"), ("rejected", "rejected_events"),
                      ("conflicts", "conflicts_open")):
        if node.get(key):
            reasons.append(Reason(code, "warning", {"n": int(node[key])}))
    if any(r.level == "critical" for r in reasons):
        reasons.sort(key=lambda r: r.level != "critical")
        return "critical", reasons
    return ("warning", reasons) if reasons else ("ok", [])


def assess(node: dict[str, Any], now_ms: int, rules: HealthRules = DEFAULT_RULES
           ) -> tuple[str, list[str]]:
    """Return (health, reasons in English) for one node row from `HubStore.nodes`."""
    health, reasons = evaluate(node, now_ms, rules)
    return health, [r.text() for r in reasons]
