"""What the sync indicator says for each state of the link (pure: a status in, words out)."""

from __future__ import annotations

from typing import Any

from edge_node.ui.syncview import describe
from protocol.calendar import VN_TZ, to_ms
from service.ui.i18n import Messages, load_catalogues
from tests.ui.test_i18n import UI_DIRS

TABLES = load_catalogues(*(d / "messages" for d in UI_DIRS))
VI, EN = Messages("vi", TABLES["vi"]), Messages("en", TABLES["en"])
NOW = to_ms(__import__("datetime").datetime(2026, 11, 27, 11, 0, tzinfo=VN_TZ))
TODAY_1042 = "2026-11-27T10:42:00+07:00"


def status(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"state": "online", "pending_events": 0, "pending_blobs": 0,
                            "last_success_at": TODAY_1042, "last_error": None,
                            "clock_offset_ms": 0, "clock_warning": False, "rejected": []}
    return {**base, **kw}


def test_all_sent() -> None:
    out = describe(status(), VI, NOW)
    assert out["parts"]["state"] == "Đồng bộ lúc 10:42" and out["level"] == "ok"
    assert describe(status(), EN, NOW)["parts"]["state"] == "Synced at 10:42"


def test_offline_with_changes_waiting() -> None:
    out = describe(status(state="offline", pending_events=12, last_error="refused"), VI, NOW)
    assert out["parts"]["state"].startswith("Mất kết nối — 12 thay đổi chờ gửi")
    assert "10:42" in out["parts"]["state"] and out["level"] == "danger"
    en = describe(status(state="offline", pending_events=1, last_error="x"), EN, NOW)
    assert en["parts"]["state"].startswith("Offline — 1 change waiting to be sent")


def test_never_synced_and_yesterday() -> None:
    out = describe(status(state="offline", last_success_at=None, pending_events=2), VI, NOW)
    assert out["parts"]["state"] == "Chưa đồng bộ được với tỉnh — 2 thay đổi chờ gửi"
    out = describe(status(last_success_at="2026-11-26T16:05:00+07:00"), VI, NOW)
    assert out["parts"]["state"] == "Đồng bộ lúc 26/11/2026 16:05"


def test_clock_warning_blobs_and_refusals() -> None:
    out = describe(status(clock_warning=True, clock_offset_ms=-7 * 60_000, pending_blobs=2,
                          rejected=[{"seq": 1}]), VI, NOW)
    assert "lệch khoảng 7 phút" in out["parts"]["clock"]
    assert out["parts"]["state"].endswith("2 tệp chờ chuyển")
    assert out["parts"]["rejected"].startswith("1 thay đổi bị tỉnh từ chối")
    assert out["level"] == "danger"
    assert describe(status(state="syncing"), VI, NOW)["level"] == "busy"
