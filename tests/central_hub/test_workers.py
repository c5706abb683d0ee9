"""`central-hub serve --workers 2` on PostgreSQL, as real processes: communes sync through both
workers at once (two nodes of one commune editing the same dossiers), one worker is killed with
SIGKILL mid-way and replaced, and everything converges with the log intact."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from aiohttp.test_utils import TestServer

from edge_node.app import CLIENT, STORE
from edge_node.app import make_app as make_edge_app
from edge_node.enroll import enroll
from edge_node.store import EdgeStore
from protocol.errors import SyncError
from service.db import PgConnection
from tests.harness import birth
from tests.served import ROOT, serve

COMMUNES = ["02245", "02245", "02227", "02230"]  # two nodes in the first commune


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "central_hub", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def start_edge(root: Path, url: str, token: str) -> TestServer:
    config = dataclasses.replace(await enroll(root, url, token), auto_sync=False)
    server = TestServer(await make_edge_app(root, config), host="127.0.0.1")
    await server.start_server()
    return server


async def sync_until_quiet(server: TestServer, rounds: int = 20) -> None:
    """Sync until a session sends and receives nothing, retrying refused/cut sessions (a
    worker killed mid-exchange)."""
    for _ in range(rounds):
        try:
            result = await server.app[CLIENT].session_once()
        except SyncError:
            await asyncio.sleep(0.2)
            continue
        if not result.sent and not result.received and not result.pending_after:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("edge did not settle")


def value(field: str, n: int) -> str:
    return f"09{n:08d}" if field == "phone" else f"Thôn {n}"


def workers(supervisor: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(supervisor.pid).children()


async def test_two_workers_on_postgresql_survive_a_killed_worker_and_converge(
        tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "hub"
    cli("init", "--data", str(data), "--db", pg_url)
    with serve(data, "--workers", "2") as hub:
        assert len(workers(hub.proc)) == 2
        tokens = [cli("enroll", "--data", str(data), "--commune", c) for c in COMMUNES]
        edges = [await start_edge(tmp_path / f"edge{i}", hub.url, t)
                 for i, t in enumerate(tokens)]
        try:
            stores: list[EdgeStore] = [e.app[STORE] for e in edges]
            for store in stores:
                for i in range(25):
                    await store.dossiers.create(birth(f"Nguyễn Văn {i}"), "clerk")
            await asyncio.gather(*(sync_until_quiet(e) for e in edges))
            # the two nodes of one commune now edit the same dossiers, at once, while a worker
            # dies by SIGKILL; the supervisor starts another
            shared = [d["id"] for d in (await stores[0].dossiers.search(limit=25)).items]

            async def edit(store: EdgeStore, field: str) -> None:
                for n, dossier in enumerate(shared):
                    await store.dossiers.edit(dossier, {"set": {f"applicant.{field}": value(field, n)}},
                                     "clerk")

            await asyncio.gather(sync_until_quiet(edges[1]))
            await asyncio.gather(edit(stores[0], "address"), edit(stores[1], "phone"))
            victim = workers(hub.proc)[0]
            pushing = [asyncio.create_task(sync_until_quiet(e)) for e in edges]
            await asyncio.sleep(0.05)
            os.kill(victim.pid, signal.SIGKILL)
            await asyncio.gather(*pushing)
            for _ in range(2):  # a second pass brings each node the other's edits
                await asyncio.gather(*(sync_until_quiet(e) for e in edges))
            for _ in range(100):
                alive = [w for w in workers(hub.proc) if w.pid != victim.pid]
                if len(alive) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(alive) == 2, "the killed worker was not replaced"

            # converged: the two nodes of the first commune agree with each other and the hub
            a, b = stores[0], stores[1]
            assert await a.log.dossier_rows() == await b.log.dossier_rows()
            for dossier in shared:
                view = await a.dossiers.view(dossier)
                n = shared.index(dossier)
                assert view["applicant"]["address"] == value("address", n)
                assert view["applicant"]["phone"] == value("phone", n)
        finally:
            for edge in edges:
                await edge.close()
        writer, reader = await PgConnection.open(pg_url, pool_size=1)
        try:
            async with reader.execute("SELECT count(*) FROM dossiers") as cur:
                assert (await cur.fetchone()) == (100,)
            async with reader.execute(
                    "SELECT count(*), count(DISTINCT (origin, seq)) FROM events") as cur:
                total, distinct = await cur.fetchone() or (0, 0)
            assert total == distinct == 100 + 2 * 25
        finally:
            await writer.close()
    # the supervisor stopped every worker with itself
    assert hub.proc.returncode is not None
    assert "restarting it" in hub.log()
    report = cli("verify", "--data", str(data))
    assert "the log is intact" in report
