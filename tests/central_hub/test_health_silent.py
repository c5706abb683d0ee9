"""A node that says how often it syncs and goes silent for several intervals is not shown ok."""

from __future__ import annotations

from typing import Any

from central_hub.nodes.health import HealthRules, evaluate

NOW = 1_800_000_000_000


def node(silent_s: int, **stats: Any) -> dict[str, Any]:
    at = NOW - silent_s * 1000
    return {"node": "02245.01", "last_seen_at": at, "last_success_at": at, "enrolled_at": 0,
            "stats": stats}


def test_silent_for_several_intervals_is_a_warning() -> None:
    rules = HealthRules(warn_silent_min_s=60)
    assert evaluate(node(50, contact_every_s=30), NOW, rules) == ("ok", [])
    health, reasons = evaluate(node(100, contact_every_s=30), NOW, rules)
    assert health == "warning" and reasons[0].code == "silent"
    assert reasons[0].text() == "not heard from for 1 min, though it syncs every 30 s"
    # an edge that does not say its interval (older), or the rule off: the hour-long rule only
    assert evaluate(node(100), NOW, rules) == ("ok", [])
    assert evaluate(node(100, contact_every_s=30), NOW, HealthRules(warn_silent_min_s=0))[0] == "ok"
    # past the no-contact threshold that rule speaks instead
    _, reasons = evaluate(node(7200, contact_every_s=30), NOW, rules)
    assert [r.code for r in reasons] == ["no_sync"]


def test_the_clock_reason_says_which_way() -> None:
    _, reasons = evaluate(node(0, clock_offset_ms=-30 * 86_400_000), NOW)
    assert reasons[0].text() == "clock off by 30 d (behind the hub's)"
