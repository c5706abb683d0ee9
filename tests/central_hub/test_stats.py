"""Statistics against a hand-computed fixture: dossiers written at the communes with their clocks
set to known times (received, moved, resolved), synced to the hub, then counted per commune ×
procedure × period as JSON, CSV and HTML.

March 2026, two communes. M = 1.004873 (3 working days), C = 2.000815 (same day; after 15:00 the
next working day). Due dates are at 17:00.
  A1 M counter  Mon 02 09:00, due Thu 05 · resolved Wed 04 (early) · returned Thu 05
  A2 M online   Tue 03 09:00, due Fri 06 · resolved Fri 06 16:00 (on time)
  A3 M post     Wed 04 09:00, due Mon 09 · resolved Tue 10 (late)
  A4 C counter  Mon 02 16:00, due Tue 03 · withdrawn Tue 03 08:00
  A5 M online   Mon 30 09:00, due Thu 02 Apr · in progress, not yet due on 31 Mar
  A6 M counter  Mon 16 09:00, due Thu 19 · processing: in progress, overdue
  A7 M counter  Thu 26 Feb, due Tue 03 · resolved Mon 02 (carried over; early)
  A8 M counter  Mon 23 Feb, resolved Wed 25 Feb: closed before March, not counted
  A9 M counter  Wed 01 Apr: after the period
  B1 C counter  Tue 10 10:00, due Tue 10 · resolved 16:00 (on time: same day is never early)
  B2 C online   Wed 11 10:00, due Wed 11 · resolved Thu 12 (late)
  B3 M counter  Mon 09 09:00, due Thu 12 · supplement Tue 10 → back Thu 12 (2 working days
                paused: due Mon 16) · resolved Mon 16 10:00 (on time; late without the pause)
  B4 M counter  Mon 23 09:00, due Thu 26 · supplement Tue 24, still awaited on 31 Mar: paused,
                so in progress and not overdue
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest

from central_hub.dashboard import statsview
from protocol.calendar import VN_TZ, iso, to_ms
from protocol.stats import COUNTS, Facts, Period, report, steady_until
from tests.central_hub.operator import operator
from tests.harness import EdgeHandle, Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

M, C = "1.004873", "2.000815"
FIELDS = {M: {"purpose": "Đăng ký kết hôn", "marital_status": "Chưa kết hôn"},
          C: {"document_name": "Giấy khai sinh", "copies": 2}}


def at(month: int, day: int, hour: int, minute: int = 0) -> int:
    return to_ms(datetime(2026, month, day, hour, minute, tzinfo=VN_TZ))


# (time, commune, key, action, argument): run in time order, so every clock only moves forward.
PLAN: list[tuple[int, str, str, str, Any]] = sorted([
    (at(2, 23, 9), "A", "A8", "create", (M, "counter")),
    (at(2, 23, 10), "A", "A8", "move", "processing"),
    (at(2, 25, 10), "A", "A8", "move", "resolved"),
    (at(2, 26, 9), "A", "A7", "create", (M, "counter")),
    (at(2, 26, 10), "A", "A7", "move", "processing"),
    (at(3, 2, 9), "A", "A1", "create", (M, "counter")),
    (at(3, 2, 10), "A", "A1", "move", "processing"),
    (at(3, 2, 11), "A", "A7", "move", "resolved"),
    (at(3, 2, 16), "A", "A4", "create", (C, "counter")),
    (at(3, 3, 8), "A", "A4", "move", "withdrawn"),
    (at(3, 3, 9), "A", "A2", "create", (M, "online")),
    (at(3, 3, 10), "A", "A2", "move", "processing"),
    (at(3, 4, 9), "A", "A3", "create", (M, "post")),
    (at(3, 4, 9, 30), "A", "A3", "move", "processing"),
    (at(3, 4, 10), "A", "A1", "move", "resolved"),
    (at(3, 5, 9), "A", "A1", "move", "returned"),
    (at(3, 6, 16), "A", "A2", "move", "resolved"),
    (at(3, 10, 9), "A", "A3", "move", "resolved"),
    (at(3, 16, 9), "A", "A6", "create", (M, "counter")),
    (at(3, 16, 10), "A", "A6", "move", "processing"),
    (at(3, 30, 9), "A", "A5", "create", (M, "online")),
    (at(4, 1, 9), "A", "A9", "create", (M, "counter")),
    (at(3, 9, 9), "B", "B3", "create", (M, "counter")),
    (at(3, 9, 10), "B", "B3", "move", "processing"),
    (at(3, 10, 9), "B", "B3", "move", "supplement_requested"),
    (at(3, 10, 10), "B", "B1", "create", (C, "counter")),
    (at(3, 10, 11), "B", "B1", "move", "processing"),
    (at(3, 10, 16), "B", "B1", "move", "resolved"),
    (at(3, 11, 10), "B", "B2", "create", (C, "online")),
    (at(3, 11, 11), "B", "B2", "move", "processing"),
    (at(3, 12, 9), "B", "B3", "move", "processing"),
    (at(3, 12, 9, 30), "B", "B2", "move", "resolved"),
    (at(3, 16, 10), "B", "B3", "move", "resolved"),
    (at(3, 23, 9), "B", "B4", "create", (M, "counter")),
    (at(3, 23, 10), "B", "B4", "move", "processing"),
    (at(3, 24, 9), "B", "B4", "move", "supplement_requested"),
], key=lambda step: step[0])

DUE = {"A1": at(3, 5, 17), "A2": at(3, 6, 17), "A3": at(3, 9, 17), "A4": at(3, 3, 17),
       "A5": at(4, 2, 17), "A6": at(3, 19, 17), "A7": at(3, 3, 17), "B1": at(3, 10, 17),
       "B2": at(3, 11, 17), "B3": at(3, 16, 17), "B4": at(3, 26, 17)}


def row(**counts: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    out.update(counts)
    return out


EXPECTED = {
    ("02245", M): row(received_online=2, received_counter=2, received_post=1, carried_over=1,
                      received_total=5, resolved_early=2, resolved_on_time=1, resolved_late=1,
                      resolved_total=4, in_progress_not_due=1, in_progress_overdue=1,
                      returned=1, pct_on_time=75.0, pct_online=40.0),
    ("02245", C): row(received_counter=1, received_total=1, withdrawn=1, pct_on_time=None,
                      pct_online=0.0),
    ("02227", C): row(received_online=1, received_counter=1, received_total=2,
                      resolved_on_time=1, resolved_late=1, resolved_total=2, pct_on_time=50.0,
                      pct_online=50.0),
    ("02227", M): row(received_counter=2, received_total=2, resolved_on_time=1,
                      resolved_total=1, in_progress_not_due=1, pct_on_time=100.0,
                      pct_online=0.0),
}
TOTAL = row(received_online=3, received_counter=6, received_post=1, carried_over=1,
            received_total=10, resolved_early=2, resolved_on_time=3, resolved_late=2,
            resolved_total=7, in_progress_not_due=2, in_progress_overdue=1, withdrawn=1,
            returned=1, pct_on_time=71.4, pct_online=30.0)


async def play(edges: dict[str, EdgeHandle]) -> dict[str, dict[str, Any]]:
    """Write the plan at the communes with their clocks set to each step's time."""
    clock = [0]
    for edge in edges.values():
        edge.store.wall = lambda: clock[0]
    views: dict[str, dict[str, Any]] = {}
    for when, commune, key, action, arg in PLAN:
        clock[0] = when
        store = edges[commune].store
        if action == "create":
            procedure, channel = arg
            views[key] = await store.create({
                "procedure_code": procedure, "channel": channel, "fields": FIELDS[procedure],
                "applicant": {"full_name": f"Người nộp {key}", "citizen_id": "008090001234",
                              "phone": "0912345678", "address": "Thôn Nà Khá"}}, "clerk1")
        else:
            views[key] = await store.transition(
                views[key]["id"], {"to": arg, "base": views[key]["version"]}, "clerk1")
    for edge in edges.values():
        await edge.sync()
    return views


def pick(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["commune"], r["procedure"]): {k: r[k] for k in (*COUNTS, "pct_on_time",
                                                               "pct_online")} for r in items}


async def test_statistics_match_the_hand_computed_fixture(net: Net) -> None:
    assert net.hub is not None
    edges = {"A": await net.add_edge("02245", "Xã Côn Lôn"),
             "B": await net.add_edge("02227", "Xã Thượng Lâm")}
    views = await play(edges)
    for key, due in DUE.items():
        assert views[key]["due_at"] == iso(due), key  # the fixture's due dates are right

    status, body = await net.hub.api.get("/api/stats?from=2026-03-01&to=2026-03-31")
    assert status == 200, body
    assert pick(body["rows"]) == EXPECTED
    [total] = body["totals"]
    assert {k: total[k] for k in TOTAL} == TOTAL
    names = {r["procedure"]: r["procedure_name"] for r in body["rows"]}
    assert names[M] == "Xác nhận tình trạng hôn nhân"

    status, one = await net.hub.api.get(
        "/api/stats?from=2026-02-01&to=2026-03-31&commune=02245&by=month")
    assert status == 200, one
    feb, mar = one["totals"]
    assert (feb["period"], mar["period"]) == ("2026-02-01/2026-02-28", "2026-03-01/2026-03-31")
    # February: A7 and A8 received at the counter, A8 resolved early, A7 still running
    assert {k: feb[k] for k in ("received_counter", "resolved_early", "in_progress_not_due",
                                "carried_over")} == {"received_counter": 2, "resolved_early": 1,
                                                     "in_progress_not_due": 1, "carried_over": 0}
    assert mar["received_total"] == 6 and mar["carried_over"] == 1
    assert {r["commune"] for r in one["rows"]} == {"02245"}

    for query, field in (("from=2026-03-31&to=2026-03-01", "to"), ("from=31-31-2026", "from"),
                         ("commune=abc", "commune"), ("by=week", "by")):
        status, err = await net.hub.api.get(f"/api/stats?{query}")
        assert status == 422 and err["field"] == field, (query, err)

    op = operator(net.hub.url)
    try:
        await op.login()
        page = await op.get("/stats?from=2026-03-01&to=2026-03-31")
        assert page.status == 200 and "Xác nhận tình trạng hôn nhân" in page.text
        assert 'href="/stats.csv?from=2026-03-01&amp;to=2026-03-31' in page.text
        async with op.http.get(op.base + "/stats.csv?from=2026-03-01&to=2026-03-31") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in resp.headers["Content-Disposition"]
            text = (await resp.read()).decode("utf-8")
        assert text.startswith("\ufeff")
        table = list(csv.reader(io.StringIO(text[1:])))
        assert table[0][:3] == ["Kỳ", "Mã xã", "Xã"]
        last = dict(zip(table[0], table[-1], strict=True))
        assert last["Tiếp nhận trong kỳ"] == "10" and last["% đúng hạn"] == "71.4"
        assert len(table) == 1 + len(EXPECTED) + 1
    finally:
        await op.close()


async def test_a_report_asked_again_counts_what_arrived_in_between(net: Net) -> None:
    """The facts of a period are kept while the hub log stays where it was, and no longer."""
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    counts = []
    for i in range(3):
        if i:
            await edge.api.post("/api/dossiers", birth(citizen_id=f"00809000{i:04d}"))
            await edge.sync()
        for _ in range(2):  # the second answer comes from the kept facts
            status, body = await net.hub.api.get("/api/stats")
            assert status == 200, body
            counts.append(body["totals"][0]["received_total"])
    assert counts == [0, 0, 1, 1, 2, 2]


def test_a_report_stays_the_same_until_the_next_moment_that_counts() -> None:
    day = datetime(2026, 3, 10, tzinfo=VN_TZ).date()
    received = to_ms(datetime(2026, 3, 10, 8, 0, tzinfo=VN_TZ))
    hour = 3_600_000
    facts = [Facts("02245", M, "counter", received, received + 2 * hour, {}),
             Facts("02245", M, "counter", received, received + 5 * hour,
                   {"resolved": received + 4 * hour}, ((received + 4 * hour, "resolved"),))]
    periods = [Period(day, day)]

    def counts(now: int) -> dict[str, Any]:
        return report(facts, periods, now, commune_names={}, procedure_names={})["totals"][0]

    now = received + hour
    until = steady_until(facts, periods, now)
    assert until == received + 2 * hour  # the first one falls due then
    assert counts(until - 1) == counts(now) and counts(now)["in_progress_not_due"] == 2
    assert counts(until + 1)["in_progress_overdue"] == 1  # past it, the report reads otherwise
    later = steady_until(facts, periods, until + 1)
    assert later == received + 4 * hour and counts(later + 1)["resolved_on_time"] == 1
    assert steady_until(facts, periods, periods[0].end_ms + 1) is None  # a closed period: for good


async def test_the_statistics_table_is_paged_and_each_page_totals_everything(
        net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    assert net.hub is not None
    monkeypatch.setattr(statsview, "PAGE", 2)  # 200 a page: a country has 3,321 communes
    for i, (code, name) in enumerate((("02245", "Xã Côn Lôn"), ("02227", "Xã Thượng Lâm"),
                                      ("02233", "Xã Lăng Can"))):
        edge = await net.add_edge(code, name)
        await edge.api.post("/api/dossiers", birth(citizen_id=f"00809000{i:04d}"))
        await edge.sync()
    op = operator(net.hub.url)
    try:
        await op.login()
        first, second = (await op.get("/stats")).text, (await op.get("/stats?page=2")).text
    finally:
        await op.close()
    assert [p.count('<span class="muted">022') for p in (first, second)] == [2, 1]
    for page in (first, second):  # the total line counts all three communes on both
        total = page[page.index('<tr class="total">'):]
        assert '<td class="num">3</td>' in total[:total.index("</tr>")]
    assert '&amp;by=none&amp;page=2" rel="next"' in first and "Bảng có 3 dòng" in first
