"""Commune mergers without I/O: resolution (old code → successor), the list a merger publishes,
scope checks that map an old code, the wire's units, and the edge's calm re-scope."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest

from protocol.communes import DEFAULT_COMMUNES, Mergers, merge_into, parse_communes
from protocol.errors import RemoteProtocolError, ValidationError
from protocol.messages import (
    SyncRequest,
    SyncResponse,
    Unit,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from protocol.scope import check_writes
from protocol.session import EdgeSession
from tests.protocol.test_session import NODE, START_MS, Chain, chain

JULY = date(2025, 7, 1)
M = Mergers.of([("02227", "02245", JULY), ("02230", "02227", date(2025, 1, 1)),
                ("02221", "02248", None)])


def test_a_code_resolves_to_its_successor_through_chains_of_mergers() -> None:
    assert M.unit_of("02227") == "02245" and M.unit_of("02230") == "02245"
    assert M.unit_of("02245") == "02245" and M.unit_of("09999") == "09999"
    assert M.units_of("02245") == ("02245", "02227", "02230")
    assert M.units_of("02227") == ("02245", "02227", "02230")  # an old code: its unit's
    assert M.units_of("02254") == ("02254",) and Mergers().units_of("02245") == ("02245",)
    assert Mergers.of([("02227", "02245", None), ("02245", "02227", None)]).unit_of("02227") in \
        ("02227", "02245")  # a circle (never published: parse_communes refuses it) ends


def test_statistics_count_under_the_new_unit_from_the_effective_day() -> None:
    assert M.unit_on("02227", date(2025, 6, 30)) == "02227"  # before: the old unit stays
    assert M.unit_on("02227", JULY) == "02245"
    assert M.unit_on("02230", date(2025, 3, 1)) == "02227"  # one step effective, not the next
    assert M.unit_on("02221", date(2000, 1, 1)) == "02248"  # no date: always


def test_the_published_list_says_who_merged_into_whom() -> None:
    base = parse_communes({"communes": [{"code": "02245", "name": "Xã Côn Lôn"},
                                        {"code": "02227", "name": "Xã Sinh Long"},
                                        {"code": "02230", "name": "Xã Thượng Lâm"}]})
    after = merge_into(base, "02299", "Xã  Côn Lôn Mới", ["02245", "02227"], JULY)
    assert after.name_of("02299") == "Xã Côn Lôn Mới"
    assert after.resolve("02227", JULY) == "02299" and after.resolve("02230", JULY) == "02230"
    assert {c.code for c in after.current(JULY)} == {"02299", "02230"}
    again = merge_into(after, "02299", "Xã Côn Lôn Mới", ["02245", "02227"], date(2026, 1, 1))
    assert again == after  # idempotent: the first merger's day is kept
    assert merge_into(DEFAULT_COMMUNES, "02245", "Xã Côn Lôn", ["02227"], JULY).sample


@pytest.mark.parametrize(("into", "merged", "words"), [
    ("2245", ["02227"], "--into"),
    ("02245", [], "--from names no commune"),
    ("02245", ["02245"], "another commune"),
    ("02245", ["09999"], "not in the province's commune list"),
    ("02227", ["02221"], "was itself merged into 02245"),
])
def test_bad_input_is_one_clear_error(into: str, merged: list[str], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        merge_into(DEFAULT_COMMUNES, into, "Xã X", merged, JULY)
    with pytest.raises(ValidationError, match="already merged into 02248"):
        merge_into(merge_into(DEFAULT_COMMUNES, "02248", "Xã Yên Hoa", ["02221"], JULY),
                   "02245", "Xã Côn Lôn", ["02221"], JULY)
    with pytest.raises(ValidationError, match="--name"):
        merge_into(DEFAULT_COMMUNES, "02245", "  ", ["02221"], JULY)


def test_an_event_queued_under_an_old_code_is_the_new_units() -> None:
    sinh_long = Chain(NODE, random.Random(7))
    queued = sinh_long.create(START_MS, "02227")  # before the node heard of the merger
    merged = Mergers.of([("02227", "02245", JULY)])
    ok, rejected = check_writes("02245", [queued], {}, merged.unit_of)
    assert ok == [queued] and rejected == []
    ok, rejected = check_writes("02227", [queued], {}, merged.unit_of)  # a stale node record
    assert ok == [queued] and rejected == []
    c = chain(2)  # an edit of a dossier the hub holds under the old code
    assert check_writes("02245", c.events[1:], {c.events[0].dossier: "02227"},
                        merged.unit_of) == (c.events[1:], [])
    # without the merger the same batch is a violation (what this rule changes)
    assert check_writes("02245", [queued], {})[1][0].code == "scope"
    ok, rejected = check_writes("02221", [queued], {}, merged.unit_of)  # another unit: still not
    assert ok == [] and rejected[0].code == "scope"


def test_units_and_unit_cross_the_wire_and_are_optional() -> None:
    req = SyncRequest(NODE, [], 5, 1024, START_MS, units=("02245", "02227"))
    assert decode_request(encode_request(req)).units == ("02245", "02227")
    assert decode_request(encode_request(SyncRequest(NODE, [], 5, 1024, START_MS))).units == ()
    unit = Unit("02245", "Xã Côn Lôn", ("02245", "02227"))
    resp = SyncResponse(0, [], 0, False, START_MS, unit=unit)
    assert decode_response(encode_response(resp)).unit == unit
    assert decode_response(encode_response(SyncResponse(0, [], 0, False, START_MS))).unit is None
    bad = SyncResponse(0, [], 0, False, START_MS, unit=Unit("02245", "X", ("02227",)))
    with pytest.raises(RemoteProtocolError, match="start with its code"):
        decode_response(encode_response(bad))
    with pytest.raises(RemoteProtocolError, match="units"):
        decode_request(encode_request(SyncRequest(NODE, [], 5, 1024, START_MS, units=("x",))))


def test_a_re_scope_moves_the_cursor_back_and_warns_of_nothing() -> None:
    s = EdgeSession(ack=5, cursor=40, epoch="e1")
    unit = Unit("02245", "Xã Côn Lôn", ("02245", "02227"))
    plan = s.answer(SyncResponse(5, [], 12, True, START_MS, epoch="e1", unit=unit), node=NODE,
                    own_seq=5, sent_after=5, held={})
    assert (plan.after.cursor, plan.after.ack, plan.notices, plan.rewound) == (12, 5, [], False)
    assert plan.after.reread is None  # not a restored hub's re-read
    stale = s.answer(SyncResponse(5, [], 12, True, START_MS, epoch="e1"), node=NODE,
                     own_seq=5, sent_after=5, held={})
    assert stale.after.cursor == 40  # without a unit a lower cursor is an older answer


def test_a_report_counts_a_merged_commune_under_the_new_unit_from_the_effective_day() -> None:
    from protocol.calendar import VN_TZ, to_ms
    from protocol.stats import Facts, Period, report, split

    def received(day: date) -> Facts:
        ms = to_ms(datetime(day.year, day.month, day.day, 9, tzinfo=VN_TZ))
        return Facts("02227", "1.001193", "counter", ms, ms + 86_400_000, {"accepted": ms})

    facts = [received(date(2025, 6, 10)), received(date(2025, 7, 10))]
    periods = split(Period(date(2025, 6, 1), date(2025, 7, 31)), "month")
    merged = Mergers.of([("02227", "02245", JULY)])
    data = report(facts, periods, 1 << 62, commune_names={}, procedure_names={},
                  unit_on=merged.unit_on)
    by_period = {(r["period"], r["commune"]) for r in data["rows"] if r["received_total"]}
    assert len(by_period) == 2
    june, july = sorted(by_period)
    assert june[1] == "02227" and july[1] == "02245"  # before: the old unit; from July: the new
    plain = report(facts, periods, 1 << 62, commune_names={}, procedure_names={})
    assert {r["commune"] for r in plain["rows"]} == {"02227"}
