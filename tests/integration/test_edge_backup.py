"""Local backups at the commune, on real processes: `edge-node backup` while the edge serves and
writes, more writes synced, the edge stopped and `edge-node restore` of the older backup, a sync —
the hub's copy fills the gap, nothing is sent twice, no receipt code is given twice, the chain
goes on. Also the daily backup with its retention, and the one-line refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.processes import ROOT
from edge_node import backup as edge_backup
from edge_node import config as edge_config
from protocol.errors import ValidationError
from tests.faults.procs import (
    CLERK,
    PASSWORD,
    Proc,
    Procs,
    acli,
    edge_setup,
    free_port,
    hub_setup,
    intake_offline,
    ready,
    serve_edge,
    serve_hub,
)
from tests.harness import birth


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


async def hub_and_edge(tmp_path: Path, procs: Procs, **edge: Any
                       ) -> tuple[Path, Path, Proc, edge_config.EdgeConfig]:
    """A hub process serving on loopback and an edge of commune 02245 enrolled with it (not
    serving; `edge`: its settings): (hub dir, edge dir, hub process, edge config)."""
    hub_dir, edge_dir = tmp_path / "hub", tmp_path / "edge"
    [token] = await hub_setup(hub_dir, ["02245"])
    hub_port = free_port()
    hub = serve_hub(procs, hub_dir, hub_port, tmp_path / "hub.log")
    assert await ready(f"http://127.0.0.1:{hub_port}/healthz", hub)
    config = await edge_setup(edge_dir, f"http://127.0.0.1:{hub_port}", token,
                              port=free_port(), **edge)
    return hub_dir, edge_dir, hub, config


async def login(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with http.post(f"{base}/api/login",
                         json={"username": CLERK, "password": PASSWORD}) as resp:
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def take_in(http: aiohttp.ClientSession, base: str, auth: dict[str, str], n: int,
                  start: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        async with http.post(f"{base}/api/dossiers", headers=auth,
                             json=birth(f"Người {i}", f"0080900{i:05d}",
                                        child_full_name=f"Bé {i}")) as resp:
            assert resp.status == 201, await resp.text()
            out.append(await resp.json())
    return out


def edge_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_node", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


async def test_restore_an_older_backup_continues_the_chain(tmp_path: Path, procs: Procs) -> None:
    hub_dir, edge_dir, _, config = await hub_and_edge(tmp_path, procs, auto_sync=False)
    edge_port = config.port
    node = config.node
    base = f"http://127.0.0.1:{edge_port}"
    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    assert await ready(f"{base}/healthz", edge)
    async with aiohttp.ClientSession() as http:
        auth = await login(http, base)
        early = await take_in(http, base, auth, 5, 0)
        await acli("edge_node", "sync", "--data", str(edge_dir))  # (while it serves)
        # the backup, taken while the desk goes on writing
        writing = asyncio.ensure_future(take_in(http, base, auth, 10, 100))
        await acli("edge_node", "backup", "--data", str(edge_dir), str(tmp_path / "bak"))
        during = await writing
        later = await take_in(http, base, auth, 5, 200)
    manifest = json.loads((tmp_path / "bak" / "backup.json").read_text())
    assert manifest["node"] == node and 5 <= manifest["own_seq"] <= 15, manifest
    assert rows(tmp_path / "bak" / "edge.db", "PRAGMA integrity_check") == [("ok",)]
    await edge.stop()
    await acli("edge_node", "sync", "--data", str(edge_dir))
    hub_db = hub_dir / "hub.db"
    [(acked,)] = rows(hub_db, "SELECT last_seq FROM origins WHERE origin=?", node)
    assert acked == 20
    codes = {v["code"] for v in early + during + later}
    assert len(codes) == 20

    out = await acli("edge_node", "restore", "--data", str(edge_dir), str(tmp_path / "bak"))
    assert f"took back {20 - manifest['own_seq']} of this node's events" in out, out
    assert "moved to" in out
    db = edge_dir / "edge.db"
    assert rows(db, "SELECT count(*) FROM dossiers") == [(20,)]
    assert {c for (c,) in rows(db, "SELECT code FROM dossiers")} == codes
    assert rows(db, "SELECT max(seq), count(*) FROM events WHERE origin=?", node) == [(20, 20)]
    assert rows(db, "SELECT value FROM meta WHERE key='ack'") == [(20,)]

    out = await acli("edge_node", "sync", "--data", str(edge_dir))
    assert out.startswith("sent 0 events"), out  # nothing sent twice
    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    assert await ready(f"{base}/healthz", edge)
    async with aiohttp.ClientSession() as http:
        auth = await login(http, base)
        after = await take_in(http, base, auth, 3, 300)
    assert not {v["code"] for v in after} & codes  # the code counter went on past the lost ones
    await edge.stop()
    out = await acli("edge_node", "sync", "--data", str(edge_dir))
    assert out.startswith("sent 3 events"), out
    [(acked,)] = rows(hub_db, "SELECT last_seq FROM origins WHERE origin=?", node)
    assert acked == 23
    assert rows(hub_db, "SELECT count(*) FROM security_events") == [(0,)]  # no fork alarm
    assert rows(hub_db, "SELECT count(*) FROM quarantine") == [(0,)]
    assert sorted(rows(db, "SELECT id, code, status FROM dossiers")) == \
        sorted(rows(hub_db, "SELECT id, code, status FROM dossiers"))


async def test_restore_refuses_without_the_hub_and_changes_nothing(tmp_path: Path,
                                                                   procs: Procs) -> None:
    _, edge_dir, hub, _ = await hub_and_edge(tmp_path, procs, auto_sync=False)
    done = edge_cli("backup", "--data", str(edge_dir), str(tmp_path / "bak"))
    assert done.returncode == 0, done.stderr
    await hub.stop()
    before = (edge_dir / "edge.db").read_bytes()
    done = edge_cli("restore", "--data", str(edge_dir), str(tmp_path / "bak"))
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "hub" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert (edge_dir / "edge.db").read_bytes() == before
    assert not list(edge_dir.glob("edge.db.restoring*")) and not list(edge_dir.glob("pre-*"))
    # not a backup; into a directory that is not empty: one line each
    for args in (("restore", "--data", str(edge_dir), str(tmp_path)),
                 ("backup", "--data", str(edge_dir), str(tmp_path / "bak"))):
        done = edge_cli(*args)
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


async def test_the_daily_backup_runs_when_due_and_keeps_the_newest(tmp_path: Path,
                                                                   procs: Procs) -> None:
    usb = tmp_path / "usb"
    _, edge_dir, _, config = await hub_and_edge(tmp_path, procs, auto_sync=False,
                                                backup_dir=str(usb), backup_every_h=24.0,
                                                backup_keep=2)
    day = 24 * 3600 * 1000
    t0 = 1_800_000_000_000
    made = [edge_backup.daily(edge_dir, config, t0)]
    assert made[0] is not None and edge_backup.daily(edge_dir, config, t0 + day // 2) is None
    made += [edge_backup.daily(edge_dir, config, t0 + day), edge_backup.daily(
        edge_dir, config, t0 + 2 * day)]
    kept = [p for _, p in edge_backup.backups_in(usb, config.node)]
    assert kept == made[1:] and not made[0].exists()  # type: ignore[union-attr]
    (usb / f"edge-{config.node}-unfinished").mkdir()  # no manifest: never counted, never pruned
    assert edge_backup.daily(edge_dir, config, t0 + 3 * day) is not None
    assert (usb / f"edge-{config.node}-unfinished").is_dir()
    # and the serving edge makes one by itself (the first is due at once)
    edge_config.save(edge_dir, dataclasses.replace(config, backup_dir=str(tmp_path / "usb2")))
    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    assert await ready(f"http://127.0.0.1:{config.port}/healthz", edge)
    for _ in range(100):
        if edge_backup.backups_in(tmp_path / "usb2", config.node):
            break
        await asyncio.sleep(0.1)
    [(_, auto)] = edge_backup.backups_in(tmp_path / "usb2", config.node)
    assert edge_backup.read_manifest(auto)["node"] == config.node


@pytest.mark.parametrize("key, value", [("backup_keep", 0), ("backup_every_h", 0.0)])
def test_backup_settings_are_checked(key: str, value: Any) -> None:
    config = edge_config.EdgeConfig("02245.01", "02245", "Xã", "02245.01", "http://127.0.0.1:1",
                                    "")
    with pytest.raises(ValidationError, match=key):
        dataclasses.replace(config, **{key: value}).validate()


async def test_a_scan_lost_with_the_disk_comes_down_from_the_hub(tmp_path: Path,
                                                                 procs: Procs) -> None:
    hub_dir, edge_dir, _, config = await hub_and_edge(tmp_path, procs, auto_sync=True,
                                                      sync_interval_s=0.5)
    await acli("edge_node", "backup", "--data", str(edge_dir), str(tmp_path / "bak"))
    scan = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200
    [view] = await intake_offline(edge_dir, [birth()], scans=((0, scan),))
    [(sha,)] = rows(edge_dir / "edge.db", "SELECT sha256 FROM blobs")
    blob = Path(sha[:2]) / sha

    async def at(where: Path) -> bool:
        return (where / "blobs" / blob).is_file()

    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    assert await ready(f"http://127.0.0.1:{config.port}/healthz", edge)
    for _ in range(300):
        if await at(hub_dir):
            break
        await asyncio.sleep(0.1)
    await edge.stop()
    (edge_dir / "blobs" / blob).unlink()  # the damaged disk lost it
    out = await acli("edge_node", "restore", "--data", str(edge_dir), str(tmp_path / "bak"))
    assert "took back 2 of this node's events" in out, out  # the create and the attach
    assert rows(edge_dir / "edge.db", "SELECT direction, done FROM blobs WHERE sha256=?",
                sha) == [("down", 0)]
    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    assert await ready(f"http://127.0.0.1:{config.port}/healthz", edge)
    for _ in range(300):
        if await at(edge_dir):
            break
        await asyncio.sleep(0.1)
    assert (edge_dir / "blobs" / blob).read_bytes() == scan
    assert rows(edge_dir / "edge.db", "SELECT count(*) FROM dossiers WHERE id=?",
                view["id"]) == [(1,)]
