"""The desk's period report (/stats) is kept while it cannot have changed, and is right after any
write and once the clock reaches a due time (`service.stats_cache`, as the hub's)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from protocol.calendar import local, to_ms
from service import reports
from tests.harness import EdgeHandle, Net
from tests.ui.conftest import Staff
from tests.ui.seed import create, move

HOUR_MS = 3_600_000


async def totals(leader: Staff) -> dict[str, int]:
    page = await leader.get("/stats")
    assert page.status == 200
    total = page.text.split('id="report-total"')[1].split("</tr>")[0]
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', total)}


async def test_the_report_is_kept_and_counts_every_write_and_the_due_time(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff],
        monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = reports.stats_facts

    async def counted(*args: Any, **kw: Any) -> Any:
        reads.append(1)
        return await real(*args, **kw)

    monkeypatch.setattr(reports, "stats_facts", counted)
    leader = staff()
    await leader.login("leader1")
    assert (await totals(leader))["received_total"] == 0
    assert (await totals(leader))["received_total"] == 0
    assert len(reads) == 1  # asked again with nothing written: the kept facts

    first = await create(edge, 1)
    after = await totals(leader)  # a write moved the log: read again
    assert after["received_counter"] == 1 and after["in_progress_not_due"] == 1
    await move(edge, first, "processing", "resolved")
    after = await totals(leader)
    assert after["resolved_on_time"] == 1 and after["in_progress_not_due"] == 0
    assert len(reads) == 3

    second = await create(edge, 2)
    assert (await totals(leader))["in_progress_not_due"] == 1
    reads.clear()
    # nothing written, but the clock passes the second one's due time: overdue, counted again
    due_ms = to_ms(datetime.fromisoformat(second["due_at"]))
    month = local(edge.store.dossiers.now_ms()).month
    monkeypatch.setattr(edge.store.dossiers.time, "now_ms", lambda: due_ms + HOUR_MS)
    late = await totals(leader)
    assert late["in_progress_overdue"] == 1 and late["in_progress_not_due"] == 0
    if local(due_ms + HOUR_MS).month == month:  # the same period: its facts were kept
        assert reads == []
