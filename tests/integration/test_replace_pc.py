"""Replacing a commune's dead PC, on real processes: `central-hub node replace` while the hub serves,
`edge-node init` on the new PC with its token (the same commune, a new origin), the new PC serving
and pulling the commune's whole state — dossiers, history, the open conflict, the scan last — while
the old credential is refused; then the old disk recovered, its unsynced events delivered the way a
bundle import does (central_hub.replace.bundle_node + the ingest), twice, and taken exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import ROOT
from central_hub.replace import bundle_node
from central_hub.store import HubStore
from edge_node import config as edge_config
from edge_node.store import EdgeStore
from tests.faults.procs import (
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
from tests.integration.test_edge_backup import rows

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(50_000)


async def edit_at(store: Any, dossier: str, address: str) -> None:
    view = await store.dossiers.view(dossier)
    await store.dossiers.edit(dossier, {"set": {"applicant.address": address},
                                        "base": view["version"]}, "clerk")


async def until(check: Any, within_s: float = 60.0) -> None:
    for _ in range(int(within_s * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def test_a_new_pc_replaces_a_dead_one(tmp_path: Path, procs: Procs) -> None:
    hub_dir, old_dir, new_dir = tmp_path / "hub", tmp_path / "old", tmp_path / "new"
    [token] = await hub_setup(hub_dir, ["02245"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start_hub() -> Proc:
        return serve_hub(procs, hub_dir, port, tmp_path / "hub.log")

    hub = start_hub()
    assert await ready(f"{url}/healthz", hub)
    old = await edge_setup(old_dir, url, token, port=free_port(), auto_sync=True,
                           sync_interval_s=0.5)
    views = await intake_offline(old_dir, [birth(f"Người {i}", f"0080900{i:05d}",
                                                 child_full_name=f"Bé {i}") for i in range(6)],
                                 scans=((0, PNG),))
    edge = serve_edge(procs, old_dir, tmp_path / "old.log")
    assert await ready(f"http://127.0.0.1:{old.port}/healthz", edge)
    hub_db = hub_dir / "hub.db"
    sha = rows(old_dir / "edge.db", "SELECT sha256 FROM blobs")[0][0]

    async def hub_has_all() -> bool:
        return rows(hub_db, "SELECT count(*) FROM dossiers")[0][0] == 6 and \
            (hub_dir / "blobs" / sha[:2] / sha).is_file()

    await until(hub_has_all)
    await edge.stop()
    # an open conflict: the commune and the province change one address apart
    store = await EdgeStore.open(old_dir / "edge.db", old.node, old.commune, old.agency)
    await edit_at(store, views[1]["id"], "Thôn Khuổi Phầy")
    await store.close()
    await hub.stop()
    hub_store = await HubStore.open(hub_db)
    await edit_at(hub_store, views[1]["id"], "Bản Tát")
    await hub_store.close()
    hub = start_hub()
    assert await ready(f"{url}/healthz", hub)
    await acli("edge_node", "sync", "--data", str(old_dir))
    assert rows(hub_db, "SELECT count(*) FROM dossiers WHERE conflicts > 0") == [(1,)]
    # then the old PC writes two more and dies before it syncs them
    late = await intake_offline(old_dir, [birth(f"Muộn {i}", f"0080901{i:05d}",
                                                child_full_name=f"Bé muộn {i}")
                                          for i in range(2)])

    new_token = await acli("central_hub", "node", "replace", "--data", str(hub_dir),
                           "--node", old.node)
    refused = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "edge_node", "sync", "--data", str(old_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused
    assert "revoked" in refused.stderr, refused.stderr
    out = await acli("edge_node", "init", "--data", str(new_dir), "--hub", url,
                     "--token", new_token)
    assert f"replaces node {old.node}" in out, out
    new = edge_config.load(new_dir)
    assert new.commune == old.commune and new.node != old.node
    edge_config.save(new_dir, dataclasses.replace(new, port=free_port(), sync_interval_s=0.5))
    await acli("edge_node", "user", "add", "--data", str(new_dir), "--username", "clerk",
               stdin=PASSWORD + "\n")
    new = edge_config.load(new_dir)
    edge = serve_edge(procs, new_dir, tmp_path / "new.log")
    base = f"http://127.0.0.1:{new.port}"
    assert await ready(f"{base}/healthz", edge)
    new_db = new_dir / "edge.db"

    async def pulled() -> bool:
        return rows(new_db, "SELECT count(*) FROM dossiers")[0][0] == 6 and \
            (new_dir / "blobs" / sha[:2] / sha).is_file()

    await until(pulled)
    commune_rows = "SELECT id, code, status, conflicts, name FROM dossiers ORDER BY id"
    assert rows(new_db, commune_rows) == rows(hub_db, commune_rows)
    history = "SELECT origin, seq, hash FROM events ORDER BY origin, seq"
    assert rows(new_db, history) == rows(hub_db, history)  # the whole history, every origin
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/login",
                             json={"username": "clerk", "password": PASSWORD}) as resp:
            auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        async with http.get(f"{base}/api/dossiers/{views[1]['id']}", headers=auth) as resp:
            view = await resp.json()
        assert [c["field"] for c in view["conflicts"]] == ["applicant.address"]
        async with http.post(f"{base}/api/dossiers", headers=auth, json=birth()) as resp:
            assert resp.status == 201
            assert (await resp.json())["code"].startswith(f"{new.agency}-")  # its own codes

    # the old disk recovered: its two unsynced events come by an operator's delivery (a bundle)
    store = await EdgeStore.open(old_dir / "edge.db", old.node, old.commune, old.agency)
    unsynced = await store.sync.pending(1 << 20)
    await store.close()
    assert len(unsynced) == 2
    await hub.stop()
    hub_store = await HubStore.open(hub_db)
    try:
        for _ in range(2):  # imported twice: taken once
            sender = await bundle_node(hub_store.trust, old.node)
            ack, rejections = await hub_store.ingest.accept(sender, unsynced)
            assert rejections == [] and ack == unsynced[-1].seq
    finally:
        await hub_store.close()
    assert rows(hub_db, "SELECT count(*) FROM events WHERE origin=?", old.node) == \
        [(unsynced[-1].seq,)]
    hub = start_hub()
    assert await ready(f"{url}/healthz", hub)

    async def late_arrived() -> bool:
        ids = {r[0] for r in rows(new_db, "SELECT id FROM dossiers")}
        return {v["id"] for v in late} <= ids

    await until(late_arrived)
    assert rows(new_db, history) == rows(hub_db, history)
    assert rows(hub_db, "SELECT count(*) FROM security_events") == [(0,)]
