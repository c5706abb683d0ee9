"""The edge without POSIX: its unit tests, and a real `edge-node` process enrolling, serving, taking
in a dossier with a scan and syncing it to a real hub, in an interpreter where `fcntl`, `termios`,
`pwd`, `grp`, `os.fork` and the POSIX-only signals do not exist (tests/edge_node/nonposix.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

from bench.processes import ROOT, free_port
from tests.faults.procs import PASSWORD, Procs, hub_setup, ready, serve_hub
from tests.harness import birth

STRIPPED = [sys.executable, "-m", "tests.edge_node.nonposix"]
# the edge's own tests, the blob paths (upload, resumable download: service/filelock.py's
# Windows branch) included; the PostgreSQL cases exercise the hub's driver, not the edge
EDGE_TESTS = ["tests/edge_node/test_store.py", "tests/edge_node/test_api.py",
              "tests/edge_node/test_syncloop.py", "tests/edge_node/test_cli_status.py",
              "tests/integration/test_attachments.py"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def stripped(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STRIPPED, *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, check=False)


def test_the_stripped_interpreter_really_lacks_them() -> None:
    done = stripped("-c", "\n".join([
        "import os, signal",
        "for name in ('fcntl', 'termios', 'pwd', 'grp', 'resource'):",
        "    try:",
        "        __import__(name)",
        "    except ImportError:",
        "        pass",
        "    else:",
        "        raise SystemExit(name + ' is importable')",
        "assert not hasattr(os, 'fork') and not hasattr(os, 'getuid')",
        "assert not hasattr(signal, 'SIGKILL') and not hasattr(signal, 'SIGHUP')",
        "import edge_node.cli, edge_node.app, service.blobs, service.filelock",
        "print(service.filelock.KIND)"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "msvcrt"  # the Windows branch of the lock is what runs


def test_the_edge_unit_tests_pass_without_posix() -> None:
    done = stripped("-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                    "-k", "not postgres", *EDGE_TESTS, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout



async def test_a_real_edge_without_posix_enrolls_serves_and_syncs(tmp_path: Path,
                                                                   procs: Procs) -> None:
    hub_dir, edge_dir = tmp_path / "hub", tmp_path / "edge"
    [token] = await hub_setup(hub_dir, ["02245"])
    hub_port, edge_port = free_port(), free_port()
    hub = serve_hub(procs, hub_dir, hub_port, tmp_path / "hub.log")
    assert await ready(f"http://127.0.0.1:{hub_port}/healthz", hub)

    init = stripped("-m", "edge_node", "init", "--data", str(edge_dir), "--hub",
                    f"http://127.0.0.1:{hub_port}", "--token", token)
    assert init.returncode == 0, init.stderr
    add = stripped("-m", "edge_node", "user", "add", "--data", str(edge_dir), "--username",
                   "clerk1", "--role", "clerk", stdin=PASSWORD + "\n")
    assert add.returncode == 0, add.stderr
    edge = procs.start("edge", ["tests.edge_node.nonposix", "-m", "edge_node", "serve",
                                "--data", str(edge_dir), "--port", str(edge_port)],
                       tmp_path / "edge.log")
    base = f"http://127.0.0.1:{edge_port}"
    assert await ready(f"{base}/healthz", edge)

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/login",
                             json={"username": "clerk1", "password": PASSWORD}) as resp:
            auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        async with http.post(f"{base}/api/dossiers", headers=auth, json=birth()) as resp:
            assert resp.status == 201, await resp.text()
            dossier = await resp.json()
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="giay-chung-sinh.png", content_type="image/png")
        async with http.post(f"{base}/api/dossiers/{dossier['id']}/attachments", data=form,
                             headers=auth) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(f"{base}/api/sync", headers=auth) as resp:
            assert resp.status == 202
        for _ in range(300):
            async with http.get(f"{base}/api/sync", headers=auth) as resp:
                state = await resp.json()
            if state["pending_events"] == 0 and state["pending_blobs"] == 0:
                break
            await asyncio.sleep(0.1)
        assert state["pending_events"] == 0 and state["pending_blobs"] == 0, state

    hub_db = sqlite3.connect(f"file:{hub_dir / 'hub.db'}?mode=ro", uri=True)
    try:
        [(code,)] = hub_db.execute("SELECT code FROM dossiers WHERE id=?", (dossier["id"],))
    finally:
        hub_db.close()
    assert code == dossier["code"]
    assert edge.alive()
    os.kill(edge.pid, signal.SIGINT)  # what Ctrl+C (or a service wrapper's stop) sends there
    assert await edge.wait(30) == 0, edge.tail()
