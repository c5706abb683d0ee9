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
    assert "7 phút chậm so với giờ của tỉnh" in out["parts"]["clock"]
    assert out["parts"]["state"].endswith("2 tệp chờ chuyển")
    assert out["parts"]["rejected"].startswith("1 thay đổi bị tỉnh từ chối")
    assert out["level"] == "danger"
    assert describe(status(state="syncing"), VI, NOW)["level"] == "busy"


def test_a_restore_warning_is_calm_and_in_the_page_language() -> None:
    restored = {"code": "hub_restored", "message": "hub holds less…", "at": NOW}
    out = describe(status(warning=restored, pending_events=3), VI, NOW)
    assert out["parts"]["warning"] == (
        "Máy chủ tỉnh đã được khôi phục từ bản sao lưu; máy này đang tự gửi lại dữ liệu. "
        "Dữ liệu không bị mất, không cần làm gì.")
    assert out["level"] == "busy"  # the link's own level: nothing for staff to do
    en = describe(status(warning=restored), EN, NOW)
    assert en["parts"]["warning"].startswith("The provincial hub was restored from a backup; "
                                             "this computer is sending its data again")
    assert en["level"] == "ok"
    reset = describe(status(warning={**restored, "code": "hub_log_reset"}), VI, NOW)
    assert "đọc lại dữ liệu của tỉnh" in reset["parts"]["warning"] and reset["level"] == "ok"
    assert describe(status(), VI, NOW)["parts"]["warning"] == ""
    assert describe(status(warning=None), EN, NOW)["parts"]["warning"] == ""


def test_a_reused_id_asks_to_call_the_province() -> None:
    reused = {"code": "hub_id_reused", "message": "hub sent 1 event(s)…", "at": NOW}
    out = describe(status(warning=reused), VI, NOW)
    assert out["parts"]["warning"].endswith("Hãy báo bộ phận công nghệ thông tin của tỉnh.")
    assert out["level"] == "warn"
    assert describe(status(warning=reused), EN, NOW)["parts"]["warning"].endswith(
        "Contact the province's IT staff.")
    # an offline link stays danger; a wrong clock too
    assert describe(status(warning=reused, state="error", last_error="x"), VI, NOW)["level"] \
        == "danger"
    assert describe(status(warning=reused, clock_warning=True), VI, NOW)["level"] == "danger"
    # a code this desk does not know (or none kept by an older version): a generic sentence
    for code in ("hub_warning", "from_the_future"):
        out = describe(status(warning={**reused, "code": code}), EN, NOW)
        assert out["parts"]["warning"] == \
            "The provincial hub reported a sync problem — tell the admin."
        assert out["level"] == "warn"


def test_an_attempt_under_way_says_what_it_does_and_a_failed_one_when_and_why() -> None:
    def attempt(phase: str, events: int = 0) -> dict[str, Any]:
        return status(state="syncing", progress={"phase": phase, "events": events})

    assert describe(attempt("connecting"), VI, NOW)["parts"]["state"] == "Đang kết nối tới tỉnh…"
    assert describe(attempt("sending", 12), VI, NOW)["parts"]["state"] == \
        "Đang gửi 12 thay đổi lên tỉnh…"
    assert describe(attempt("sending", 1), EN, NOW)["parts"]["state"] == \
        "Sending 1 change to the province…"
    assert describe(attempt("receiving"), VI, NOW)["parts"]["state"] == "Đang hỏi tỉnh có gì mới…"
    assert describe(attempt(""), VI, NOW)["parts"]["state"] == "Đang đồng bộ với tỉnh…"
    assert describe(attempt("connecting"), VI, NOW)["poll_s"] == 1  # polled closely meanwhile
    refused = status(state="offline", pending_events=3, last_error="cannot reach the hub",
                     progress={"phase": "", "problem": "refused", "ended_ms": NOW - 5000})
    out = describe(refused, VI, NOW)
    assert out["parts"]["state"] == ("Mất kết nối — 3 thay đổi chờ gửi · lần cuối đồng bộ lúc "
                                     "10:42 · thử lúc 10:59:55: máy chủ tỉnh không nhận kết nối")
    assert out["level"] == "danger" and out["poll_s"] == 5
    late = {**refused, "progress": {**refused["progress"], "problem": "timeout"}}
    assert describe(late, EN, NOW)["parts"]["state"].endswith(
        "tried at 10:59:55: the province did not answer in time")
    asked = describe({**refused, "requested": True}, VI, NOW)  # pressed, not begun yet
    assert asked["parts"]["state"].startswith("Đang bắt đầu đồng bộ… · Mất kết nối")
    assert asked["poll_s"] == 1
    assert "thử lúc" not in describe(status(progress={"problem": "", "ended_ms": NOW}), VI,
                                     NOW)["parts"]["state"]
