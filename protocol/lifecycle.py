"""The dossier lifecycle: one table of allowed transitions (DOMAIN.md), checked where a change is written.

A dossier received at the counter starts `accepted`. Overdue is computed from the due time and is
never a status. Final statuses have no way out.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# API name -> (national portal code, Vietnamese label, English label)
STATUSES: dict[str, tuple[int, str, str]] = {
    "submitted": (1, "Mới đăng ký", "Submitted"),
    "accepted": (2, "Được tiếp nhận", "Accepted"),
    "refused": (3, "Không được tiếp nhận", "Refused"),
    "processing": (4, "Đang xử lý", "Processing"),
    "supplement_requested": (5, "Yêu cầu bổ sung giấy tờ", "Supplement requested"),
    "fee_requested": (6, "Yêu cầu thực hiện nghĩa vụ tài chính", "Fee requested"),
    "withdrawn": (7, "Công dân yêu cầu rút hồ sơ", "Withdrawn"),
    "stopped": (8, "Dừng xử lý", "Stopped"),
    "resolved": (9, "Đã xử lý xong", "Resolved"),
    "returned": (10, "Đã trả kết quả", "Returned"),
}

TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"accepted", "refused", "supplement_requested", "withdrawn"}),
    "accepted": frozenset({"processing", "supplement_requested", "withdrawn"}),
    "processing": frozenset(
        {"supplement_requested", "fee_requested", "stopped", "resolved", "withdrawn"}
    ),
    "supplement_requested": frozenset({"processing", "withdrawn", "stopped"}),
    "fee_requested": frozenset({"processing", "withdrawn", "stopped"}),
    "resolved": frozenset({"returned"}),
    "refused": frozenset(),
    "withdrawn": frozenset(),
    "stopped": frozenset(),
    "returned": frozenset(),
}

FINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
INITIAL_AT_COUNTER = "accepted"
# While one of these holds, the legal clock is paused (DOMAIN.md: supplement awaited; unverified).
CLOCK_PAUSED = frozenset({"supplement_requested"})
# A dossier without a due time (filed online) gets one, counted from then by the writer's calendar,
# when it is accepted or, after a supplement asked for before acceptance, when processing starts.
TIME_LIMIT_STARTS = frozenset({"accepted", "processing"})


def allowed(current: str, target: str) -> bool:
    """True iff the lifecycle allows `current -> target`."""
    return target in TRANSITIONS.get(current, frozenset())


def next_statuses(current: str) -> list[str]:
    """The statuses reachable in one step from `current`, in table order."""
    return [s for s in STATUSES if s in TRANSITIONS.get(current, frozenset())]


def portal_code(status: str) -> int:
    """The national portal's numeric code of a status."""
    return STATUSES[status][0]
