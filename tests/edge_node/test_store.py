"""The edge store on a real SQLite file: receipt codes, the own hash chain, sync state, rebuild."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_node.store import EdgeStore
from protocol import HUB_ORIGIN, codec, hlc
from protocol.calendar import local
from protocol.errors import RemoteProtocolError, StoreError
from protocol.events import Event
from protocol.merge import DossierState
from protocol.messages import Rejection, SyncResponse
from service.hubtime import wall_clock_ms
from tests.harness import birth

NODE, COMMUNE, AGENCY = "02245.01", "02245", "02245.01"
DAY_MS = 24 * 3600 * 1000


async def open_store(path: Path) -> EdgeStore:
    return await EdgeStore.open(path, NODE, COMMUNE, AGENCY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    s = await open_store(tmp_path / "edge.db")
    try:
        yield s
    finally:
        await s.close()


async def own_events(store: EdgeStore) -> list[tuple[Event, bytes]]:
    async with store.conn.execute(
            "SELECT body, hash FROM events WHERE origin=? ORDER BY seq", (store.origin,)) as cur:
        return [(codec.decode_stored(r[0]), bytes(r[1])) for r in await cur.fetchall()]


async def dossier_and_hub_edit(store: EdgeStore
                               ) -> tuple[dict[str, Any], int, DossierState, Event]:
    """A dossier filed here, the time, its state, and a hub edit of it (hub:1), not applied."""
    d = await store.dossiers.create(birth(), "clerk")
    now = store.now_ms()
    state = await store.dossiers.load_state(d["id"])
    assert state is not None
    return d, now, state, hub_event(1, d["id"], dict(state.vv), b"", now)


async def apply(store: EdgeStore, resp: SyncResponse) -> int:
    """Apply a hub response received just now over an instant link."""
    return await store.sync.apply_response(resp, 0.0, time.monotonic())


async def count(store: EdgeStore, sql: str, *args: Any) -> int:
    async with store.conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def hub_event(seq: int, dossier: str, deps: dict[str, int], prev: bytes, now_ms: int,
              kind: str = "set", payload: dict[str, Any] | None = None) -> Event:
    return Event(HUB_ORIGIN, seq, hlc.pack(now_ms, seq), dossier, "op", kind,
                 payload if payload is not None else {"set": {"fields.child_home_town": "Na Hang"}},
                 deps, prev)


async def test_codes_count_up_per_day_and_are_never_reused_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    store = await open_store(path)
    day = local(store.now_ms()).strftime("%y%m%d")
    first = await store.dossiers.create(birth(), "clerk")
    second = await store.dossiers.create(birth("Trần Thị Hoa"), "clerk")
    assert first["code"] == f"{AGENCY}-{day}-0001"
    assert second["code"] == f"{AGENCY}-{day}-0002"
    await store.close()

    store = await open_store(path)
    try:
        third = await store.dossiers.create(birth("Lý Thị Mai"), "clerk")
        assert third["code"] == f"{AGENCY}-{day}-0003"
        # a refused request between restarts uses no number
        with pytest.raises(Exception):  # noqa: B017 - a ValidationError
            await store.dossiers.create({**birth(), "procedure_code": "9.999999"}, "clerk")
    finally:
        await store.close()

    store = await open_store(path)
    try:
        fourth = await store.dossiers.create(birth("Đặng Văn Tú"), "clerk")
        assert fourth["code"] == f"{AGENCY}-{day}-0004"
        assert len({first["code"], second["code"], third["code"], fourth["code"]}) == 4
    finally:
        await store.close()


async def test_each_day_has_its_own_sequence(store: EdgeStore) -> None:
    today = await store.dossiers.create(birth(), "clerk")
    store.time.wall = lambda: wall_clock_ms() + DAY_MS  # the machine's clock moves to tomorrow
    tomorrow_day = local(store.now_ms()).strftime("%y%m%d")
    tomorrow = [await store.dossiers.create(birth(f"Người {i}"), "clerk") for i in range(2)]
    assert [d["code"] for d in tomorrow] == [f"{AGENCY}-{tomorrow_day}-0001",
                                              f"{AGENCY}-{tomorrow_day}-0002"]
    assert today["code"].endswith("-0001") and today["code"] != tomorrow[0]["code"]
    store.time.wall = wall_clock_ms
    again = await store.dossiers.create(birth("Người Nữa"), "clerk")
    assert again["code"].endswith("-0002")
    assert again["code"].rsplit("-", 1)[0] == today["code"].rsplit("-", 1)[0]


async def test_own_chain_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    store = await open_store(path)
    d = await store.dossiers.create(birth(), "clerk")
    await store.dossiers.edit(d["id"], {"set": {"applicant.address": "Thôn A"}, "base": d["version"]},
                     "clerk")
    before = await own_events(store)
    await store.close()

    store = await open_store(path)
    try:
        assert store.log.own_seq == 2
        await store.dossiers.transition(d["id"], {"to": "processing"}, "clerk")
        await store.dossiers.create(birth("Trần Thị Hoa"), "clerk")
        chain = await own_events(store)
    finally:
        await store.close()
    assert [e.seq for e, _ in chain] == [1, 2, 3, 4]
    assert chain[:2] == before
    assert chain[0][0].prev == b""
    for (prev_event, prev_hash), (event, stored_hash) in itertools.pairwise(chain):
        assert stored_hash == codec.event_hash(event)
        assert prev_hash == codec.event_hash(prev_event)
        assert event.prev == prev_hash, f"seq {event.seq} does not chain to seq {prev_event.seq}"
    # hlc never goes backwards across the restart
    hlcs = [e.hlc for e, _ in chain]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == 4


async def test_apply_response_commits_ack_events_and_cursor_together(store: EdgeStore) -> None:
    d = await store.dossiers.create(birth(), "clerk")
    await store.dossiers.create(birth("Trần Thị Hoa"), "clerk")
    assert (await store.sync.pending_stats())[0] == 2
    now = store.now_ms()
    state = await store.dossiers.load_state(d["id"])
    assert state is not None
    event = hub_event(1, d["id"], dict(state.vv), b"", now)
    resp = SyncResponse(ack=1, events=[event], cursor=7, more=False, hub_time_ms=now + 5000,
                        rejections=[Rejection(2, "scope", "test rejection")])
    applied = await apply(store, resp)
    assert applied == 1
    assert await store.sync.ack() == 1
    assert await store.sync.cursor() == 7
    assert (await store.sync.pending_stats())[0] == 1
    assert await count(store, "SELECT count(*) FROM events WHERE origin=?", HUB_ORIGIN) == 1
    view = await store.dossiers.view(d["id"])
    assert view["fields"]["child_home_town"] == "Na Hang"
    assert view["history"][-1]["where"] == "hub"
    assert await store.sync.rejections() == [{"seq": 2, "code": "scope", "reason": "test rejection",
                                         "at": now + 5000}]
    assert abs(store.now_ms() - (now + 5000)) < 2000  # corrected time follows the hub
    assert await store.log.get_meta("last_success_at") == now + 5000

    # the same response again (a replay) changes nothing
    await apply(store, resp)
    assert await count(store, "SELECT count(*) FROM events WHERE origin=?", HUB_ORIGIN) == 1
    assert await store.sync.ack() == 1 and await store.sync.cursor() == 7
    # an answer older than the ack the request was built on moves nothing back
    older = SyncResponse(ack=0, events=[], cursor=3, more=False, hub_time_ms=now)
    await store.sync.apply_response(older, 0.0, time.monotonic(), sent_after=0)
    assert await store.sync.ack() == 1 and await store.sync.cursor() == 7
    assert await store.sync.warning() is None
    # a hub that acknowledges more than this node ever wrote is a fork alarm (an old backup of
    # this database, or a hub that kept an event this node rolled back): refused, nothing applied
    beyond = SyncResponse(ack=99, events=[], cursor=8, more=False, hub_time_ms=now)
    with pytest.raises(RemoteProtocolError, match="restored from an old backup"):
        await apply(store, beyond)
    assert await store.sync.ack() == 1 and await store.sync.cursor() == 7
    await apply(store, SyncResponse(ack=2, events=[], cursor=8, more=False, hub_time_ms=now))
    assert await store.sync.ack() == 2 and await store.sync.cursor() == 8
    # own events echoed back are not applied twice
    own = (await own_events(store))[0][0]
    echo = SyncResponse(ack=2, events=[own], cursor=9, more=False, hub_time_ms=now)
    assert await apply(store, echo) == 0


FAULTS = {
    # the second hub event cannot be written
    "events": ["CREATE TRIGGER fault BEFORE INSERT ON events WHEN NEW.origin='hub' AND NEW.seq=2 "
               "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"],
    # the very last write of the exchange fails, after ack, events and cursor were written
    "end": [f"CREATE TRIGGER fault{i} BEFORE {op} ON meta WHEN NEW.key='last_success_at' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            for i, op in enumerate(("INSERT", "UPDATE"))],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_apply_response_is_all_or_nothing(store: EdgeStore, fault: str) -> None:
    d, now, state, first = await dossier_and_hub_edit(store)
    second = hub_event(2, d["id"], dict(state.vv), codec.event_hash(first), now,
                       payload={"set": {"fields.mother_ethnicity": "Tày"}})
    for sql in FAULTS[fault]:  # a real fault in the database, mid-transaction
        await store.conn.execute(sql)
    resp = SyncResponse(ack=1, events=[first, second], cursor=12, more=False,
                        hub_time_ms=now + 3 * DAY_MS,
                        rejections=[Rejection(1, "scope", "test")])
    with pytest.raises((StoreError, sqlite3.Error)):
        await apply(store, resp)
    assert abs(store.now_ms() - wall_clock_ms()) < 2000  # the hub's time was not adopted either
    assert await store.sync.ack() == 0
    assert await store.sync.cursor() == 0
    assert await count(store, "SELECT count(*) FROM events WHERE origin='hub'") == 0
    assert "child_home_town" not in (await store.dossiers.view(d["id"]))["fields"]
    assert await store.sync.rejections() == []
    assert (await store.sync.pending_stats())[0] == 1
    # once the fault is gone the same response applies whole
    async with store.conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'") as cur:
        for (name,) in await cur.fetchall():
            await store.conn.execute(f"DROP TRIGGER {name}")
    assert await apply(store, resp) == 2
    assert await store.sync.ack() == 1 and await store.sync.cursor() == 12
    view = await store.dossiers.view(d["id"])
    assert view["fields"]["child_home_town"] == "Na Hang"
    assert view["fields"]["mother_ethnicity"] == "Tày"


async def test_rebuild_equals_incremental_rows(store: EdgeStore) -> None:
    a = await store.dossiers.create(birth(), "clerk")
    b = await store.dossiers.create(birth("Trần Thị Hoa", "008090005678"), "clerk")
    c = await store.dossiers.create(birth("Lý Thị Mai", "008090009999"), "clerk")
    await store.dossiers.edit(a["id"], {"set": {"applicant.address": "Thôn A"}, "base": a["version"]},
                     "clerk")
    await store.dossiers.edit(a["id"], {"set": {"applicant.address": "Thôn B"}, "base": a["version"]},
                     "clerk")  # stale base: a conflict
    await store.dossiers.transition(b["id"], {"to": "processing"}, "clerk")
    await store.dossiers.comment(c["id"], {"text": "thiếu giấy chứng sinh"}, "clerk")
    now = store.now_ms()
    state = await store.dossiers.load_state(c["id"])
    assert state is not None
    await apply(store, SyncResponse(
        ack=0, events=[hub_event(1, c["id"], dict(state.vv), b"", now)], cursor=4, more=False,
        hub_time_ms=now))
    incremental = await store.log.dossier_rows()
    assert len(incremental) == 3
    assert incremental[a["id"]][10] == 1  # conflicts column
    assert await store.log.rebuild() == 3
    assert await store.log.dossier_rows() == incremental
    # a damaged row is repaired by rebuild
    await store.conn.execute("UPDATE dossiers SET status='returned', name='x' WHERE id=?",
                             (b["id"],))
    await store.conn.execute("DELETE FROM dossiers WHERE id=?", (c["id"],))
    assert await store.log.dossier_rows() != incremental
    await store.log.rebuild()
    assert await store.log.dossier_rows() == incremental


async def test_writer_connection_is_wal_and_synchronous_full(store: EdgeStore,
                                                             tmp_path: Path) -> None:
    async with store.conn.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    async with store.conn.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 2  # FULL
    async with store.reader.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    await store.dossiers.create(birth(), "clerk")
    assert (tmp_path / "edge.db-wal").exists()


# -- a hub restored from an older backup -----------------------------------------------------------


async def test_a_lower_ack_rewinds_and_the_rest_is_sent_again(store: EdgeStore) -> None:
    for i in range(3):
        await store.dossiers.create(birth(f"Người {i}"), "clerk")
    now = store.now_ms()
    await apply(store, SyncResponse(ack=3, events=[], cursor=5, more=False, hub_time_ms=now))
    await store.conn.execute("INSERT INTO blobs VALUES (?, 10, 'up', 1)", ("ab" * 32,))
    assert (await store.sync.pending_stats())[0] == 0 and await store.queue.to_move("up") == []
    # the hub now holds only the first event of ours: its ack is the truth
    await store.sync.apply_response(
        SyncResponse(ack=1, events=[], cursor=5, more=False, hub_time_ms=now), 0.0,
        time.monotonic(), sent_after=3)
    assert await store.sync.ack() == 1
    assert (await store.sync.pending_stats())[0] == 2
    _, first, last = await store.sync.pending_batch(await store.sync.ack(), 1 << 20)
    assert (first, last) == (2, 3)
    warning = await store.sync.warning()
    assert warning is not None and warning["at"] == now and warning["code"] == "hub_restored"
    assert "hub holds less than it acknowledged (restored from backup?)" in warning["message"]
    # blobs it had confirmed are asked about again
    assert await store.queue.to_move("up") == [("ab" * 32, 10)]
    # an ack past what this node wrote stays a fork alarm
    with pytest.raises(RemoteProtocolError, match="restored from an old backup"):
        await apply(store, SyncResponse(ack=4, events=[], cursor=5, more=False, hub_time_ms=now))
    assert await store.sync.ack() == 1


async def test_a_new_log_epoch_resets_the_cursor_and_the_re_pull_applies_nothing_twice(
        store: EdgeStore) -> None:
    d, now, state, first = await dossier_and_hub_edit(store)
    second = hub_event(2, d["id"], {**state.vv, HUB_ORIGIN: 1}, codec.event_hash(first), now,
                       payload={"set": {"fields.mother_ethnicity": "Tày"}})
    resp = SyncResponse(ack=1, events=[first, second], cursor=40, more=False, hub_time_ms=now,
                        epoch="aaaa")
    assert await apply(store, resp) == 2
    assert await store.sync.cursor() == 40 and await store.sync.hub_epoch() == "aaaa"
    rows = await store.log.dossier_rows()
    # without a reset a lower cursor is an older answer: ignored
    await apply(store, SyncResponse(ack=1, events=[], cursor=3, more=False, hub_time_ms=now,
                                    epoch="aaaa"))
    assert await store.sync.cursor() == 40 and await store.sync.warning() is None
    # a restored hub read the log from the start: the cursor follows it down, and what it
    # sends again is recognized by id and applied no second time
    again = SyncResponse(ack=1, events=[first, second], cursor=7, more=True, hub_time_ms=now,
                         epoch="bbbb", reset=True)
    assert await apply(store, again) == 0
    assert await store.sync.cursor() == 7 and await store.sync.hub_epoch() == "bbbb"
    assert await store.log.dossier_rows() == rows
    assert await count(store, "SELECT count(*) FROM events WHERE origin=?", HUB_ORIGIN) == 2
    warning = await store.sync.warning()
    assert warning is not None and "hub log restarted" in warning["message"]
    assert warning["code"] == "hub_log_reset"
    assert await store.log.rebuild() == 1 and await store.log.dossier_rows() == rows


async def _held_and_reused(store: EdgeStore) -> tuple[dict[str, Any], int, Event]:
    """A dossier, a hub event on it that this node applied, and the event a hub restored to
    before that one writes next under the same id (other content). Returns (dossier, now, it)."""
    d, now, state, lost = await dossier_and_hub_edit(store)
    await apply(store, SyncResponse(ack=1, events=[lost], cursor=9, more=False, hub_time_ms=now))
    reused = hub_event(1, d["id"], dict(state.vv), b"", now,
                       payload={"set": {"fields.child_home_town": "Côn Lôn"}})
    return d, now, reused


async def test_a_hub_event_reusing_a_held_id_is_not_applied_and_is_a_warning(
        store: EdgeStore) -> None:
    d, now, reused = await _held_and_reused(store)
    rows = await store.log.dossier_rows()
    assert await apply(store, SyncResponse(ack=1, events=[reused], cursor=2, more=False,
                                           hub_time_ms=now, epoch="cccc", reset=True)) == 0
    assert await store.log.dossier_rows() == rows
    assert (await store.dossiers.view(d["id"]))["fields"]["child_home_town"] == "Na Hang"
    warning = await store.sync.warning()
    assert warning is not None and "hub:1" in warning["message"]
    assert "other content" in warning["message"]
    # the id clash and the reset came in one answer: the clash is what staff must act on
    assert warning["code"] == "hub_id_reused" and "hub log restarted" in warning["message"]


async def test_a_re_read_that_ends_short_of_hub_edits_held_here_is_a_lasting_warning(
        store: EdgeStore) -> None:
    d = await store.dossiers.create(birth(), "clerk")
    other = await store.dossiers.create(birth("Người khác"), "clerk")
    now = store.now_ms()
    state = await store.dossiers.load_state(d["id"])
    assert state is not None
    first = hub_event(1, d["id"], dict(state.vv), b"", now)
    second = hub_event(2, other["id"], {}, codec.event_hash(first), now,
                       payload={"set": {"applicant.phone": "0912345678"}})
    await apply(store, SyncResponse(ack=2, events=[first, second], cursor=9, more=False,
                                    hub_time_ms=now, epoch="aaaa"))
    # restored to a backup holding hub:1 only: the re-read, over two answers, sends hub:1 again
    await apply(store, SyncResponse(ack=2, events=[], cursor=3, more=True, hub_time_ms=now,
                                    epoch="bbbb", reset=True))
    assert (await store.sync.warning() or {}).get("code") == "hub_log_reset"
    await apply(store, SyncResponse(ack=2, events=[first], cursor=5, more=False,
                                    hub_time_ms=now, epoch="bbbb"))
    warning = await store.sync.warning()
    assert warning is not None and warning["code"] == "hub_edits_lost", warning
    assert other["code"] in warning["message"] and d["code"] not in warning["message"]
    # kept here: the lost edit is still live
    assert (await store.dossiers.view(other["id"]))["applicant"]["phone"] == "0912345678"
    # lasting: a clean answer does not end it
    await apply(store, SyncResponse(ack=2, events=[], cursor=5, more=False,
                                    hub_time_ms=now + DAY_MS, epoch="bbbb"))
    assert (await store.sync.warning() or {}).get("code") == "hub_edits_lost"


async def test_a_re_read_that_sends_every_hub_edit_held_here_again_warns_of_nothing_lasting(
        store: EdgeStore) -> None:
    _, now, _, first = await dossier_and_hub_edit(store)
    await apply(store, SyncResponse(ack=1, events=[first], cursor=4, more=False,
                                    hub_time_ms=now, epoch="aaaa"))
    await apply(store, SyncResponse(ack=1, events=[first], cursor=4, more=False,
                                    hub_time_ms=now, epoch="bbbb", reset=True))
    # only the calm notice of the re-read, which the next clean answer ends
    assert (await store.sync.warning() or {}).get("code") == "hub_log_reset"
    await apply(store, SyncResponse(ack=1, events=[], cursor=4, more=False, hub_time_ms=now,
                                    epoch="bbbb"))
    assert await store.sync.warning() is None
    assert await count(store, "SELECT count(*) FROM meta WHERE key='reread_hub_seen'") == 0


# -- when the warning ends -------------------------------------------------------------------------


async def test_a_restore_warning_ends_once_all_is_sent_read_and_checked_again(
        store: EdgeStore) -> None:
    for i in range(3):
        await store.dossiers.create(birth(f"Người {i}"), "clerk")
    now = store.now_ms()
    await apply(store, SyncResponse(ack=3, events=[], cursor=5, more=False, hub_time_ms=now))
    await store.conn.execute("INSERT INTO blobs VALUES (?, 10, 'up', 1)", ("ab" * 32,))
    await store.sync.apply_response(
        SyncResponse(ack=1, events=[], cursor=5, more=False, hub_time_ms=now), 0.0,
        time.monotonic(), sent_after=3)
    assert (await store.sync.warning() or {}).get("code") == "hub_restored"
    await store.dossiers.create(birth("Người mới"), "clerk")  # written after: ordinary pending work
    # part of the re-send acknowledged: not over
    await apply(store, SyncResponse(ack=2, events=[], cursor=5, more=False, hub_time_ms=now))
    assert await store.sync.warning() is not None
    # all of it, but the hub has more of its log to send
    await apply(store, SyncResponse(ack=3, events=[], cursor=6, more=True, hub_time_ms=now))
    assert await store.sync.warning() is not None
    # all sent and read, but the scan the hub had confirmed is still to be checked again
    await apply(store, SyncResponse(ack=3, events=[], cursor=7, more=False, hub_time_ms=now))
    assert await store.sync.warning() is not None
    await store.queue.done("ab" * 32, "up")
    # the next answer that warns of nothing ends it, though the newer event is still pending
    await apply(store, SyncResponse(ack=3, events=[], cursor=7, more=False, hub_time_ms=now))
    assert await store.sync.warning() is None
    assert await count(store, "SELECT count(*) FROM meta WHERE key LIKE 'sync_warning%'") == 0
    assert (await store.sync.pending_stats())[0] == 1


async def test_a_reset_warning_ends_when_the_re_pull_reaches_the_end_of_the_log(
        store: EdgeStore) -> None:
    await store.dossiers.create(birth(), "clerk")
    now = store.now_ms()
    await apply(store, SyncResponse(ack=1, events=[], cursor=40, more=False, hub_time_ms=now,
                                    epoch="aaaa"))
    await apply(store, SyncResponse(ack=1, events=[], cursor=10, more=True, hub_time_ms=now,
                                    epoch="bbbb", reset=True))
    assert (await store.sync.warning() or {}).get("code") == "hub_log_reset"
    await apply(store, SyncResponse(ack=1, events=[], cursor=20, more=True, hub_time_ms=now,
                                    epoch="bbbb"))
    assert await store.sync.warning() is not None
    await apply(store, SyncResponse(ack=1, events=[], cursor=25, more=False, hub_time_ms=now,
                                    epoch="bbbb"))
    assert await store.sync.warning() is None


async def test_a_reused_id_warning_stays_a_week_and_is_not_hidden_by_a_restore(
        store: EdgeStore) -> None:
    _, now, reused = await _held_and_reused(store)
    await apply(store, SyncResponse(ack=1, events=[reused], cursor=10, more=False,
                                    hub_time_ms=now))
    first = await store.sync.warning()
    assert first is not None and first["code"] == "hub_id_reused" and first["at"] == now
    # the hub never sends that id again, so a clean answer says nothing about it: it stays
    later = now + DAY_MS
    await apply(store, SyncResponse(ack=1, events=[], cursor=11, more=False, hub_time_ms=later))
    assert await store.sync.warning() == first
    # a restore notice, calm and self-ending, does not hide it
    await apply(store, SyncResponse(ack=1, events=[], cursor=0, more=False, hub_time_ms=later,
                                    epoch="dddd", reset=True))
    assert await store.sync.warning() == first
    # a week after the last clash, the next clean answer ends it
    await apply(store, SyncResponse(ack=1, events=[], cursor=1, more=False,
                                    hub_time_ms=now + 7 * DAY_MS - 1))
    assert await store.sync.warning() == first
    await apply(store, SyncResponse(ack=1, events=[], cursor=2, more=False,
                                    hub_time_ms=now + 7 * DAY_MS))
    assert await store.sync.warning() is None


async def test_a_warning_kept_without_a_code_reads_as_a_generic_one_and_ends(
        store: EdgeStore) -> None:
    now = store.now_ms()
    async with store.lock:  # as kept by the version before codes
        await store.log.set_meta("sync_warning", "hub holds less than it acknowledged")
        await store.log.set_meta("sync_warning_at", now)
        await store.conn.commit()
    assert await store.sync.warning() == {"code": "hub_warning", "at": now,
                                          "message": "hub holds less than it acknowledged"}
    await apply(store, SyncResponse(ack=0, events=[], cursor=1, more=False, hub_time_ms=now))
    assert await store.sync.warning() is None
