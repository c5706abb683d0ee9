"""A restore from an older backup keeps who may reach the hub as it was just before (SQLite hub):
nodes enrolled after the backup keep syncing, a node revoked after it stays revoked, an enrollment
token used after it stays used, an operator added after it can still log in. `--trust-from-backup`
puts the backup's state back instead, and shows what that undoes.

A real hub server and real edges on loopback; `central-hub backup` while the hub serves, `central-hub
restore` with it stopped (docs/backup.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from central_hub import cli as hub_cli
from central_hub.app import open_accounts
from edge_node.enroll import enroll
from protocol.errors import SyncError
from tests.harness import PASSWORD, EdgeHandle, HubHandle, Net, birth
from tests.integration.test_backup_restore import start_hub, stop_hub, sync, take_backup


@dataclass
class Restored:
    hub: HubHandle
    kept: EdgeHandle  # enrolled before the backup, never revoked
    revoked: EdgeHandle  # enrolled before the backup, revoked after it
    late: EdgeHandle  # enrolled after the backup
    late_dossier: str
    used_token: str  # issued before the backup, used after it
    output: str


async def restored(net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   *extra: str) -> Restored:
    assert net.hub is not None
    kept = await net.add_edge("02245")
    revoked = await net.add_edge("02227")
    await kept.api.post("/api/dossiers", birth())
    await sync(kept)
    token = await net.hub.store.trust.create_enroll_token("02230", None)
    await take_backup(net, tmp_path / "backup")
    # after the backup: a node enrolls, one is revoked, the token is used, an operator is added
    late = await net.add_edge("02230")
    _, dossier = await late.api.post("/api/dossiers", birth("Lò Văn Chiến"))
    await sync(late)
    await net.hub.store.trust.revoke(revoked.config.node)
    await enroll(tmp_path / "token-user", net.hub.url, token)
    accounts = await open_accounts(net.hub.data)
    await accounts.add_user("op2", PASSWORD, "operator")
    await accounts.conn.close()
    port = await stop_hub(net)
    capsys.readouterr()
    await asyncio.to_thread(lambda: hub_cli.main(
        ["restore", "--data", str(net.hub.data), str(tmp_path / "backup"), "--force", *extra]))
    output = capsys.readouterr().out
    return Restored(await start_hub(net, port), kept, revoked, late, dossier["id"], token, output)


async def refused(edge: EdgeHandle) -> bool:
    try:
        await sync(edge)
    except SyncError:
        return True
    return False


async def test_a_restore_keeps_who_may_reach_the_hub_as_it_was_just_before(
        net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = await restored(net, tmp_path, capsys)
    assert "carried over from the previous database" in r.output, r.output
    # two nodes enrolled after the backup: the late edge and the one that used the token
    for part in ("nodes enrolled: 2", "nodes revoked: 1", "operator accounts added or changed: 1"):
        assert part in r.output, r.output
    # the node enrolled after the backup syncs, and its dossier is back at the hub
    assert (await sync(r.late)).pending_after == 0
    status, _ = await r.hub.api.get(f"/api/dossiers/{r.late_dossier}")
    assert status == 200
    assert (await sync(r.kept)).pending_after == 0
    # the node revoked after the backup stays revoked
    assert await refused(r.revoked)
    # the token used after the backup cannot enroll a second node
    with pytest.raises(SyncError):
        await enroll(tmp_path / "token-again", r.hub.url, r.used_token)
    # the operator added after the backup can log in
    await r.hub.api.login("op2")
    # the restored database is whole
    conn = sqlite3.connect(r.hub.data / "hub.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


async def test_trust_from_backup_puts_the_backups_state_back(
        net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = await restored(net, tmp_path, capsys, "--trust-from-backup")
    assert "carried over" not in r.output
    assert "nodes enrolled after it (refused until enrolled again)" in r.output
    assert await refused(r.late)  # unknown to the backup
    assert (await sync(r.revoked)).pending_after == 0  # valid again: the hazard the default avoids
    await enroll(tmp_path / "token-again", r.hub.url, r.used_token)  # unused in the backup


async def test_a_damaged_previous_database_is_reported_and_the_restore_still_completes(
        net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The usual reason to restore: the current database is damaged. Nothing can be carried
    from it; the restore says so in one line and completes."""
    assert net.hub is not None
    edge = await net.add_edge("02245")
    await edge.api.post("/api/dossiers", birth())
    await sync(edge)
    await take_backup(net, tmp_path / "backup")
    port = await stop_hub(net)
    for suffix in ("-wal", "-shm"):
        (net.hub.data / f"hub.db{suffix}").unlink(missing_ok=True)
    (net.hub.data / "hub.db").write_bytes(b"SQLite format 3\0" + b"\xff" * 8192)  # damaged
    capsys.readouterr()
    code = await asyncio.to_thread(lambda: hub_cli.main(
        ["restore", "--data", str(net.hub.data), str(tmp_path / "backup"), "--force"]))
    output = capsys.readouterr().out
    assert code == 0
    assert "NOT carried over from the previous database" in output, output
    assert "repeat enrollments, revocations and account changes" in output
    hub = await start_hub(net, port)
    assert (await sync(edge)).pending_after == 0
    assert await hub.store.log_size() >= 1


def test_carrying_from_an_unreadable_database_changes_nothing(tmp_path: Path) -> None:
    from central_hub import restore

    with pytest.raises(SyncError, match="could not open"):
        restore.carry_trust(tmp_path / "nowhere.db", tmp_path / "missing.db")
    assert not (tmp_path / "nowhere.db").exists()
    target = tmp_path / "restored.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE nodes (node TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = target.read_bytes()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(SyncError, match=r"could not read"):
        restore.carry_trust(target, garbage)
    assert target.read_bytes() == before
