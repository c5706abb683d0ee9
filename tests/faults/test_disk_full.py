"""A disk that fills up for real mid-write: a real edge process whose data dir is a small tmpfs,
taking dossiers until the disk is full. Every dossier is either committed (201) or refused with an
error answer; after space is freed and the edge restarts, the database passes integrity_check,
every acked dossier is there with a unique code, and all of them reach the hub.

The floors are set to 0 here so that SQLite itself meets the full disk (the floors are what keeps
a real edge away from it: tests/edge_node/test_disk.py). Needs root for `mount -t tmpfs`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.processes import free_port
from tests.faults.procs import CLERK, PASSWORD, Procs, acli, edge_setup, hub_setup, ready, serve_hub
from tests.harness import birth

TMPFS_MB = 12


@contextlib.contextmanager
def tmpfs(where: Path, size_mb: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)



def fill(path: Path, leave_bytes: int) -> None:
    """Take the disk's free space down to about `leave_bytes`."""
    free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
    with path.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))


async def test_a_full_disk_mid_write_loses_nothing_acked(tmp_path: Path, procs: Procs) -> None:
    with tmpfs(tmp_path / "disk", TMPFS_MB) as disk:
        hub_dir, edge_dir = tmp_path / "hub", disk / "edge"
        [token] = await hub_setup(hub_dir, ["02245"])
        hub_port, edge_port = free_port(), free_port()
        hub = serve_hub(procs, hub_dir, hub_port, tmp_path / "hub.log")
        assert await ready(f"http://127.0.0.1:{hub_port}/healthz", hub)
        await edge_setup(edge_dir, f"http://127.0.0.1:{hub_port}", token, port=edge_port,
                         auto_sync=False, disk_floor_mb=0, disk_hard_floor_mb=0)
        base = f"http://127.0.0.1:{edge_port}"

        def serve() -> object:
            return procs.start("edge", ["edge_node", "serve", "--data", str(edge_dir)],
                               tmp_path / "edge.log")

        edge = serve()
        assert await ready(f"{base}/healthz", edge)  # type: ignore[arg-type]
        acked: dict[str, str] = {}
        refused: list[int] = []
        filler = disk / "filler"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/login",
                                 json={"username": CLERK, "password": PASSWORD}) as resp:
                auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            fill(filler, 256 * 1024)
            for i in range(400):
                async with http.post(f"{base}/api/dossiers", headers=auth,
                                     json=birth(f"Người {i}", f"0080900{i:05d}")) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 201:
                        acked[body["id"]] = body["code"]
                    else:
                        assert (resp.status, body["error"]) == (507, "disk_full"), body
                        refused.append(resp.status)
                if len(refused) >= 10:
                    break
        assert acked and len(refused) >= 10, (len(acked), refused)
        edge.kill()  # type: ignore[attr-defined]  # and the power goes, for good measure
        filler.unlink()

        conn = sqlite3.connect(edge_dir / "edge.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            held = dict(conn.execute("SELECT id, code FROM dossiers"))
        finally:
            conn.close()
        assert {k: held.get(k) for k in acked} == acked
        assert len(set(held.values())) == len(held)

        await acli("edge_node", "sync", "--data", str(edge_dir))
        hub_db = sqlite3.connect(f"file:{hub_dir / 'hub.db'}?mode=ro", uri=True)
        try:
            at_hub = dict(hub_db.execute("SELECT id, code FROM dossiers"))
        finally:
            hub_db.close()
        assert {k: at_hub.get(k) for k in acked} == acked
        assert at_hub == held
