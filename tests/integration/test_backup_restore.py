"""Backup and restore of the hub: restored from an older backup, it gets back from the edges every
event (and scan) it had acknowledged, and they read its new log in full; nothing is lost or doubled.

A real hub server and real edges on loopback; the backup is taken with `central-hub backup` while
the hub serves (plus pg_dump on PostgreSQL) and put back with `central-hub restore`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from central_hub import backup
from central_hub import cli as hub_cli
from central_hub import config as hub_config
from central_hub import epoch as hub_epoch
from central_hub import restore as hub_restore
from central_hub.exchange import serve
from central_hub.store import HubStore, Node
from edge_node.blobsync import BlobMover
from edge_node.store import EdgeStore
from protocol import HUB_ORIGIN, is_hub_origin
from protocol.errors import TransportError
from protocol.merge import digest
from protocol.messages import SyncRequest, decode_response, encode_request
from tests.harness import EdgeHandle, HubHandle, Net, birth
from tests.integration.test_attachments import upload

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
REWOUND = "hub holds less than it acknowledged (restored from backup?)"


# -- the hub's life: back up, stop, restore, start ------------------------------------------------


def hub_cmd(*argv: str) -> None:
    """Run `central-hub …` (in a thread: it runs its own event loop) and require success."""
    assert hub_cli.main(list(argv)) == 0, argv


async def pg(tool: str, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(tool, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (tool, out, err)


async def take_backup(net: Net, dest: Path) -> None:
    """What docs/backup.md says to do, while the hub serves."""
    assert net.hub is not None
    if net.db != "sqlite":  # the database first: blobs it names are then in the copy too
        dest.mkdir(mode=0o700)
        await pg("pg_dump", "-Fc", "-f", str(dest / "hub.dump"), "-d", net.db)
    await asyncio.to_thread(hub_cmd, "backup", "--data", str(net.hub.data), str(dest))


async def stop_hub(net: Net) -> int:
    assert net.hub is not None
    port = net.hub.server.port
    assert port is not None
    await net.hub.server.close()  # closes the store and the accounts
    return port


async def restore(net: Net, src: Path) -> None:
    """What docs/backup.md says to do, with the hub stopped."""
    assert net.hub is not None
    if net.db != "sqlite":
        await pg("pg_restore", "--clean", "--if-exists", "--no-owner", "-d", net.db,
                 str(src / "hub.dump"))
    # --force: the harness's hub listens elsewhere than its hub.toml says, and another test's
    # server may hold that port
    await asyncio.to_thread(hub_cmd, "restore", "--data", str(net.hub.data), str(src), "--force")


async def start_hub(net: Net, port: int) -> HubHandle:
    """Start the hub again from its data dir, on the port the edges know."""
    assert net.hub is not None
    return await net.serve_hub(net.hub.data, port)


async def never() -> bool:
    return False


async def sync(edge: EdgeHandle) -> Any:
    """One session (the first request after a hub restart may meet a dead pooled connection)."""
    for attempt in range(3):
        try:
            return await edge.sync()
        except TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.2)


# -- what the replicas hold -----------------------------------------------------------------------


async def hub_log(store: HubStore, commune: str) -> list[tuple[str, int, bytes]]:
    async with store.reader.execute(
            "SELECT origin, seq, hash FROM events WHERE commune=? ORDER BY pos", (commune,)) as c:
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in await c.fetchall()]


async def edge_log(store: EdgeStore) -> list[tuple[str, int, bytes]]:
    async with store.reader.execute("SELECT origin, seq, hash FROM events ORDER BY pos") as c:
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in await c.fetchall()]


async def digests(store: Any, ids: list[str]) -> dict[str, str]:
    out = {}
    for dossier in ids:
        state = await store.dossiers.load_state(dossier, committed=True)
        assert state is not None, dossier
        out[dossier] = digest(state)
    return out


async def quarantined(store: HubStore) -> int:
    async with store.reader.execute("SELECT count(*) FROM quarantine") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_restore_from_an_older_backup_loses_nothing_acknowledged(net: Net,
                                                                      tmp_path: Path) -> None:
    a1 = await net.add_edge("02245", "Xã Côn Lôn")
    a2 = await net.add_edge("02245")  # a second PC of the same commune
    assert net.hub is not None
    # before the backup: both PCs take dossiers, the province edits one, everyone syncs
    _, d1 = await a1.api.post("/api/dossiers", birth("Nguyễn Văn An"))
    _, d2 = await a2.api.post("/api/dossiers", birth("Lý Thị Mai"))
    for edge in (a1, a2, a1):
        await sync(edge)
    status, _ = await net.hub.api.patch(f"/api/dossiers/{d1['id']}", {
        "set": {"fields.child_home_town": "Na Hang"}, "base": d1["version"]})
    assert status == 200
    for edge in (a1, a2):
        await sync(edge)

    await take_backup(net, tmp_path / "backup")

    # after it, the province publishes a holiday calendar, and the hub acknowledges more: a new
    # dossier with a scan at A1, an edit of A2's dossier, a dossier taken at A2 that A1 then
    # edits (A1's edit needs A2's creation first)
    calendar = (await net.hub.store.refdata_newer({}))["holidays"]["data"]
    assert await net.hub.store.publish("holidays", calendar) == 2
    _, d3 = await a1.api.post("/api/dossiers", birth("Trần Thị Hoa"))
    status, _ = await upload(a1.api, d3["id"], PNG)
    assert status == 201
    _, seen = await a1.api.get(f"/api/dossiers/{d2['id']}")
    await a1.api.patch(f"/api/dossiers/{d2['id']}",
                       {"set": {"applicant.phone": "0987654321"}, "base": seen["version"]})
    _, d4 = await a2.api.post("/api/dossiers", birth("Đặng Văn Tú"))
    await sync(a2)
    await sync(a1)
    _, seen = await a1.api.get(f"/api/dossiers/{d4['id']}")
    await a1.api.patch(f"/api/dossiers/{d4['id']}",
                       {"set": {"applicant.address": "Thôn Khuổi Phầy"}, "base": seen["version"]})
    assert (await sync(a1)).pending_after == 0
    assert (await BlobMover(a1.client).run(never)).uploaded == 1
    await sync(a2)
    assert a1.store.dossiers.ref_versions["holidays"] == a2.store.dossiers.ref_versions["holidays"] == 2
    acked = {edge.config.node: await edge.store.sync.ack() for edge in (a1, a2)}
    assert acked == {a1.config.node: a1.store.log.own_seq, a2.config.node: a2.store.log.own_seq}
    old_cursor = await a1.store.sync.cursor()
    sha = hashlib.sha256(PNG).hexdigest()
    assert net.hub.store.blobs.has(sha)

    # the hub's machine is lost: a new one is set up from the older backup
    port = await stop_hub(net)
    shutil.rmtree(net.hub.data)
    await restore(net, tmp_path / "backup")
    assert (net.hub.data / "hub.toml").is_file()
    hub = await start_hub(net, port)
    assert await hub.store.log_size() < old_cursor  # its log positions restart lower
    assert not hub.store.blobs.has(sha)

    # A1 first: the hub's lower ack makes it send its events again, in the same session; its
    # edit of A2's dossier waits for A2 to send that dossier again (held back, not refused)
    await sync(a1)
    warning = await a1.store.sync.warning()
    assert warning is not None and REWOUND in warning["message"]
    assert warning["code"] == "hub_restored"
    assert await a1.store.sync.ack() == a1.store.log.own_seq - 1
    # A2 sends its dossier again, and takes a new one: both land at positions A1's old cursor
    # had passed
    _, d5 = await a2.api.post("/api/dossiers", birth("Hoàng Thị Cúc"))
    assert (await sync(a2)).pending_after == 0
    async with hub.store.reader.execute(
            "SELECT pos FROM events WHERE dossier=? AND kind='create'", (d5["id"],)) as cur:
        row = await cur.fetchone()
    assert row is not None and int(row[0]) <= old_cursor
    assert (await sync(a1)).pending_after == 0
    await BlobMover(a1.client).run(never)  # the scan goes up again
    await BlobMover(a2.client).run(never)
    for edge in (a2, a1, a2):
        await sync(edge)

    # every event either PC had acknowledged is at the hub again, none refused or doubled
    held = await hub_log(hub.store, "02245")
    ids = [(origin, seq) for origin, seq, _ in held]
    assert len(ids) == len(set(ids))
    for node, top in acked.items():
        assert set(range(1, top + 1)) <= {s for o, s in ids if o == node}, node
    assert await quarantined(hub.store) == 0
    assert hub.store.blobs.has(sha)
    # every replica holds the same events and the same dossiers, A2's new one included
    for edge in (a1, a2):
        assert sorted(await edge_log(edge.store)) == sorted(held), edge.config.node
        assert await edge.store.sync.ack() == edge.store.log.own_seq
    dossiers = [d["id"] for d in (d1, d2, d3, d4, d5)]
    expected = await digests(hub.store, dossiers)
    assert await digests(a1.store, dossiers) == expected
    assert await digests(a2.store, dossiers) == expected
    _, view = await a1.api.get(f"/api/dossiers/{d5['id']}")
    assert view["applicant"]["full_name"] == "Hoàng Thị Cúc"
    _, view = await a2.api.get(f"/api/dossiers/{d4['id']}")
    assert view["applicant"]["address"] == "Thôn Khuổi Phầy" and view["conflicts"] == []
    # the restored reference data is everyone's again, though the edges had a newer version
    assert hub.store.dossiers.ref_versions["holidays"] > 2
    assert a1.store.dossiers.ref_versions == a2.store.dossiers.ref_versions == hub.store.dossiers.ref_versions
    # all sent and read again, the scan checked again: the warning has ended by itself
    _, status_body = await a1.api.get("/api/sync")
    assert status_body["warning"] is None


async def restored_after_growth(net: Net, tmp_path: Path, later: int
                                ) -> tuple[EdgeHandle, EdgeHandle, dict[str, Any], int, HubHandle]:
    """Two PCs of one commune; A1 files a dossier, the hub is backed up, A2 files `later` more,
    both sync (A1's cursor moves past them), and the hub is restored from the backup."""
    a1 = await net.add_edge("02245")
    a2 = await net.add_edge("02245")
    assert net.hub is not None
    _, d1 = await a1.api.post("/api/dossiers", birth())
    await sync(a1)
    await take_backup(net, tmp_path / "backup")
    for i in range(later):
        await a2.api.post("/api/dossiers", birth(f"Người {i}"))
    await sync(a2)
    await sync(a1)
    old_cursor = await a1.store.sync.cursor()
    port = await stop_hub(net)
    await restore(net, tmp_path / "backup")
    return a1, a2, d1, old_cursor, await start_hub(net, port)


async def test_the_new_epoch_resets_a_cursor_the_restored_log_has_grown_past(
        net: Net, tmp_path: Path) -> None:
    """By the time A1 syncs, the restored log is longer than A1's old cursor: only the epoch
    tells A1 that the positions below it are not the ones it read."""
    a1, a2, d1, old_cursor, hub = await restored_after_growth(net, tmp_path, 4)
    # after the restore the province edits A1's dossier, then A2 sends its dossiers again
    status, _ = await hub.api.patch(f"/api/dossiers/{d1['id']}", {
        "set": {"fields.child_home_town": "Na Hang"}, "base": d1["version"]})
    assert status == 200
    assert (await sync(a2)).pending_after == 0
    assert await hub.store.log_size() > old_cursor
    await sync(a1)
    _, view = await a1.api.get(f"/api/dossiers/{d1['id']}")
    assert view["fields"].get("child_home_town") == "Na Hang"
    assert sorted(await edge_log(a1.store)) == sorted(await hub_log(hub.store, "02245"))


async def test_hub_edits_after_the_backup_stay_at_the_edges_and_new_ones_take_a_new_origin(
        net: Net, tmp_path: Path) -> None:
    """The known limit (docs/backup.md): the hub's own edits after the backup exist only at the
    edges, which keep them and tell staff. The restored hub writes under a new origin, so its
    next edits reuse no id and reach the edges."""
    a1 = await net.add_edge("02245")
    assert net.hub is not None
    _, d1 = await a1.api.post("/api/dossiers", birth())
    await sync(a1)
    await take_backup(net, tmp_path / "backup")
    status, _ = await net.hub.api.patch(f"/api/dossiers/{d1['id']}", {
        "set": {"fields.child_home_town": "Na Hang"}, "base": d1["version"]})
    assert status == 200
    await sync(a1)
    port = await stop_hub(net)
    await restore(net, tmp_path / "backup")
    hub = await start_hub(net, port)
    assert is_hub_origin(hub.store.origin) and hub.store.origin != HUB_ORIGIN
    status, _ = await hub.api.patch(f"/api/dossiers/{d1['id']}", {
        "set": {"applicant.phone": "0987654321"}, "base": d1["version"]})
    assert status == 200
    await sync(a1)
    _, view = await a1.api.get(f"/api/dossiers/{d1['id']}")
    assert view["fields"]["child_home_town"] == "Na Hang"  # the lost edit, kept at the edge
    assert view["applicant"]["phone"] == "0987654321"  # the new one arrived: no id reused
    _, at_hub = await hub.api.get(f"/api/dossiers/{d1['id']}")
    assert at_hub["fields"].get("child_home_town") != "Na Hang"  # lost there (documented)
    warning = await a1.store.sync.warning()
    assert warning is not None and warning["code"] == "hub_edits_lost", warning
    assert d1["code"] in warning["message"]
    # the hub's chains audit clean: the old one ends at the backup, the new one starts at 1
    assert await asyncio.to_thread(hub_cli.main, ["verify", "--data", str(hub.data)]) == 0
    # a second restore takes yet another origin
    await take_backup(net, tmp_path / "backup2")
    port = await stop_hub(net)
    await restore(net, tmp_path / "backup2")
    again = await start_hub(net, port)
    assert is_hub_origin(again.store.origin) and again.store.origin not in (
        HUB_ORIGIN, hub.store.origin)


async def test_a_cursor_past_the_log_end_is_read_from_the_start(net: Net, tmp_path: Path) -> None:
    """A restore that did not rotate the epoch (the database put back by hand) is still caught
    while the edge's cursor is past the restored log's end."""
    a1, a2, d1, old_cursor, hub = await restored_after_growth(net, tmp_path, 3)
    async with hub.store.lock:  # undo the rotation: as if only the database had been copied back
        await hub.store.log.set_meta(hub_epoch.EPOCH_KEY, await a1.store.sync.hub_epoch())
    assert await hub.store.log_size() < old_cursor
    # A1 syncs first, while its cursor is past the log's end: it is reset
    await sync(a1)
    assert await a1.store.sync.cursor() < old_cursor
    # A2's dossiers come back at positions below A1's old cursor, and reach A1
    assert (await sync(a2)).pending_after == 0
    await sync(a1)
    assert sorted(await edge_log(a1.store)) == sorted(await hub_log(hub.store, "02245"))
    assert len(await edge_log(a1.store)) == 4 and d1["id"]


async def test_an_old_cursor_of_another_epoch_is_answered_from_the_start(net: Net) -> None:
    """The exchange itself: a cursor with another epoch gets the whole scope, flagged `reset`;
    the same cursor with this epoch gets what is after it."""
    a1 = await net.add_edge("02245")
    a2 = await net.add_edge("02245")
    assert net.hub is not None
    for i in range(2):
        await a1.api.post("/api/dossiers", birth(f"Người {i}"))
    await sync(a1)
    store = net.hub.store
    epoch = await hub_epoch.log_epoch(store)
    assert epoch and await hub_epoch.log_epoch(store) == epoch  # made once, then kept
    node = Node(a2.config.node, "02245")
    end = await store.log_size()

    async def ask(cursor: int, their_epoch: str) -> Any:
        body = encode_request(SyncRequest(node=node.node, events=[], cursor=cursor,
                                          want_bytes=1 << 20, clock_ms=store.now_ms(),
                                          epoch=their_epoch))
        outcome = await serve(store, node, body)
        assert outcome.error is None
        return decode_response(outcome.body)

    same = await ask(end, epoch)
    assert (same.events, same.reset, same.epoch) == ([], False, epoch)
    unknown = await ask(end, "")  # a node that never heard of epochs keeps its cursor
    assert (unknown.events, unknown.reset) == ([], False)
    other = await ask(end, "0123456789abcdef")
    assert other.reset and other.epoch == epoch and len(other.events) == 2
    past = await ask(end + 100, epoch)
    assert past.reset and len(past.events) == 2
    rotated = await hub_epoch.rotate_epoch(store)
    assert rotated != epoch and await hub_epoch.log_epoch(store) == rotated
    assert (await ask(end, epoch)).reset


async def test_backup_refuses_a_used_directory_and_restore_an_unfinished_backup(
        net: Net, tmp_path: Path) -> None:
    assert net.hub is not None
    data = net.hub.data
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "x").write_text("x")
    assert await asyncio.to_thread(hub_cli.main, ["backup", "--data", str(data), str(dest)]) == 1
    good = tmp_path / "good"
    manifest = await asyncio.to_thread(backup.backup, data, good, 0)
    assert set(manifest["settings"]) >= {"hub.toml"}
    assert (good / "backup.json").is_file()
    assert oct((good).stat().st_mode & 0o777) == "0o700"
    if net.db == "sqlite":
        assert manifest["database"] == "hub.db" and manifest["log_epoch"] == ""
        assert oct((good / "hub.db").stat().st_mode & 0o777) == "0o600"
    else:
        assert manifest["database"] is None and "dump" not in manifest
    unfinished = tmp_path / "unfinished"
    shutil.copytree(good, unfinished)
    (unfinished / "backup.json").unlink()
    code = await asyncio.to_thread(hub_cli.main, ["restore", "--data", str(data),
                                                  str(unfinished), "--force"])
    assert code == 1
    # neither a backup and --epoch-only, nor none of them
    assert await asyncio.to_thread(hub_cli.main, ["restore", "--data", str(data)]) == 1
    # --trust-from-backup has nothing to keep without a backup directory
    assert await asyncio.to_thread(hub_cli.main, ["restore", "--data", str(data), "--epoch-only",
                                                  "--trust-from-backup"]) == 1


def test_restore_refuses_while_the_hub_port_answers(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        data = tmp_path / "hub"
        data.mkdir()
        port = listener.getsockname()[1]
        hub_config.save(data, hub_config.HubConfig(port=port))
        assert hub_restore.hub_running(data) == f"127.0.0.1:{port}"
        with pytest.raises(Exception, match="stop the hub"):
            hub_restore.restore(data, tmp_path, force=False)
    finally:
        listener.close()
