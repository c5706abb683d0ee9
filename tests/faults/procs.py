"""Real hub and edge processes for the fault tests: set up, started (optionally armed with a crash
point, optionally inside a network namespace), killed by pid, and always stopped at the end.

The building blocks come from `bench/processes.py` (`acli`, `free_port`, `wait_ready`); this
adds what fault tests need on top: an environment per process (`COMMUNE_SYNC_CRASH`), a command
prefix (`ip netns exec NS`), telling a crash-point death from a kill of ours, and setting up nodes
without a process per step (the hub's enrollment tokens are made before it serves; an edge enrolls
and gets its clerk in this process, which is what `edge-node init` and `user add` do).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import ROOT, acli, free_port, wait_ready
from central_hub.store import HubStore
from edge_node import config as edge_config
from edge_node.app import open_accounts
from edge_node.config import EdgeConfig
from edge_node.enroll import enroll
from edge_node.store import EdgeStore
from service.crashpoints import ENV as CRASH_ENV
from tests.faults.netns import Link

log = logging.getLogger(__name__)

CLERK, PASSWORD = "clerk", "correct-horse-1"
__all__ = ["CLERK", "PASSWORD", "Proc", "Procs", "acli", "edge_setup", "free_port",
           "hub_setup", "intake_offline", "netns_nodes", "ready", "serve_edge", "serve_hub",
           "wait_ready"]


@dataclass
class Proc:
    """One child process and how it ended."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    killed: bool = False  # SIGKILL sent by us (not by a crash point)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def crashed(self) -> bool:
        """Died by SIGKILL that we did not send: a crash point fired."""
        return self.popen.poll() == -signal.SIGKILL and not self.killed

    def kill(self) -> None:
        """SIGKILL it now (if still running)."""
        if self.alive():
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def wait(self, timeout_s: float) -> int | None:
        """Wait for it to end; its exit code, or None if still running after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.popen.poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            await asyncio.sleep(0.05)

    async def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (a clean shutdown), SIGKILL if it lingers; the exit code."""
        if self.alive():
            self.popen.terminate()
            if await self.wait(timeout_s) is None:
                self.kill()
        return self.popen.wait()

    def tail(self, n: int = 1500) -> str:
        """The end of its log."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Procs:
    """The child processes of one test; `stop_all` ends every one of them (by pid)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, name: str, args: list[str], logfile: Path, *, crash: str | None = None,
              prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Proc:
        """Start `[prefix…] python -m <args>`, output to `logfile`, armed with `crash`."""
        environ = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        environ.update(env or {})
        if crash:
            environ[CRASH_ENV] = crash
        with logfile.open("ab") as out:
            out.write(f"--- start {' '.join(args)} crash={crash}\n".encode())
            out.flush()
            popen = subprocess.Popen([*prefix, sys.executable, "-m", *args], cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=environ,
                                     start_new_session=True)
        proc = Proc(name, popen, logfile)
        self.procs.append(proc)
        return proc

    async def stop_all(self) -> None:
        """Stop every child still running."""
        await asyncio.gather(*(p.stop() for p in self.procs if p.alive()))


async def hub_setup(data: Path, communes: list[str]) -> list[str]:
    """`central-hub init` a data dir and make one enrollment token per commune."""
    await acli("central_hub", "init", "--data", str(data))
    store = await HubStore.open(data / "hub.db")
    try:
        return [await store.trust.create_enroll_token(c, f"Xã {c}") for c in communes]
    finally:
        await store.close()


async def edge_setup(data: Path, hub_url: str, token: str, **overrides: Any) -> EdgeConfig:
    """Enroll an edge with a running hub, tune its config, add its clerk."""
    config = await enroll(data, hub_url, token)
    config = dataclasses.replace(config, **overrides)
    edge_config.save(data, config)
    accounts = await open_accounts(data)
    try:
        await accounts.add_user(CLERK, PASSWORD, "leader")
    finally:
        await accounts.conn.close()
    return config


def serve_hub(procs: Procs, data: Path, port: int, logfile: Path, *, host: str = "127.0.0.1",
              crash: str | None = None, prefix: tuple[str, ...] = ()) -> Proc:
    """Start `central-hub serve`, plain HTTP with node bearer tokens (the fault tests measure
    the sync, not TLS; loopback and the test namespaces are our own links)."""
    return procs.start("hub", ["central_hub", "serve", "--data", str(data), "--host", host,
                               "--port", str(port), "--insecure-http"], logfile, crash=crash,
                       prefix=prefix)


def serve_edge(procs: Procs, data: Path, logfile: Path, *, crash: str | None = None,
               prefix: tuple[str, ...] = ()) -> Proc:
    """Start `edge-node serve` (staff API and background sync)."""
    return procs.start("edge", ["edge_node", "serve", "--data", str(data)], logfile,
                       crash=crash, prefix=prefix)


async def ready(url: str, proc: Proc, within_s: float = 60.0) -> bool:
    """Wait until `url` answers; False if the process died first (a crash point, say)."""
    try:
        await wait_ready(url, proc.popen, proc.log, within=within_s)
    except RuntimeError:
        if proc.alive():
            raise
        return False
    return True


async def netns_nodes(link: Link, root: Path, procs: Procs, *, commune: str = "02245",
                      hub_port: int = 8700, **edge_overrides: Any) -> tuple[Path, Path, Proc]:
    """A hub serving inside the link's hub namespace and an edge enrolled over the link by
    `edge-node init` run inside the edge namespace; (hub dir, edge dir, hub process)."""
    hub_dir, edge_dir = root / "hub", root / "edge"
    [token] = await hub_setup(hub_dir, [commune])
    hub = serve_hub(procs, hub_dir, hub_port, root / "hub.log", host=link.hub_ip,
                    prefix=link.prefix(link.hub_ns))
    await link.wait_port(link.edge_ns, link.hub_ip, hub_port, alive=hub.alive)
    init = procs.start("edge init", ["edge_node", "init", "--data", str(edge_dir), "--hub",
                                     f"http://{link.hub_ip}:{hub_port}", "--token", token,
                                     "--insecure-http"], root / "edge.log",
                       prefix=link.prefix(link.edge_ns))
    if await init.wait(120) != 0:
        init.kill()
        raise RuntimeError(f"edge-node init over the link failed:\n{init.tail()}")
    config = dataclasses.replace(edge_config.load(edge_dir), **edge_overrides)
    edge_config.save(edge_dir, config)
    return hub_dir, edge_dir, hub


async def intake_offline(edge_dir: Path, bodies: list[dict[str, Any]],
                         scans: tuple[tuple[int, bytes], ...] = ()) -> list[dict[str, Any]]:
    """Take in dossiers (and scans: (index of the dossier, bytes)) at a stopped edge, through its
    store as its API would; their views."""
    config = edge_config.load(edge_dir)
    store = await EdgeStore.open(edge_dir / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    try:
        views = [await store.dossiers.create(body, CLERK) for body in bodies]
        for i, data in scans:
            sha = await store.blobs.put(data)
            await store.dossiers.attach(views[i]["id"], {"sha256": sha, "name": f"scan-{i}.png",
                                                "mime": "image/png", "size": len(data),
                                                "label": "Giấy chứng sinh"}, CLERK)
    finally:
        await store.close()
    return views
