"""The hub under test: a real `central-hub serve` process, its setup and its meter."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil  # type: ignore[import-untyped]

from bench.fleet.commune import Enrolled
from bench.processes import Processes, acli, wait_ready
from bench.processes import free_port as _free_port
from central_hub.store import HubStore

log = logging.getLogger(__name__)

OPERATOR, OPERATOR_PASSWORD = "fleet-op", "fleet-bench-op-2026"  # bench-only hub account


class HubMeter:
    """CPU seconds and RSS of the hub process and its children (workers), sampled with psutil."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.cpu_by_pid: dict[int, float] = {}
        self.peak_rss = 0
        self.peak_procs = 1
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.cpu_by_pid[proc.pid] = float(times.user + times.system)
                rss += proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, len(procs))

    def cpu(self) -> float:
        """CPU seconds used so far by the hub and its children (exited children: as last seen)."""
        self.sample()
        return sum(self.cpu_by_pid.values())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def my_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def is_sqlite(db: str) -> bool:
    return db in ("", "sqlite") or db.startswith("sqlite")


async def db_size(data: Path, db: str) -> dict[str, int]:
    """Bytes the hub's database takes: SQLite file + WAL, or pg_database_size."""
    if is_sqlite(db):
        out = {}
        for path in sorted(data.glob("*.db")):
            out[path.name] = path.stat().st_size
            wal = path.with_name(path.name + "-wal")
            if wal.exists():
                out[wal.name] = wal.stat().st_size
        out["total"] = sum(out.values())
        return out
    import asyncpg  # type: ignore[import-untyped]  # only for PostgreSQL
    conn = await asyncpg.connect(db)
    try:
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return {"pg_database_size": size, "total": size}


async def open_hub_store(data: Path) -> Any:
    """The hub's store the way `central-hub enroll` opens it (so whatever backend `init --db`
    chose is used once the CLI supports it)."""
    from central_hub import cli as hub_cli
    opener: Callable[[Path], Awaitable[Any]] | None = getattr(hub_cli, "_open", None)
    if opener is not None:
        return await opener(data)
    return await HubStore.open(data / "hub.db")


async def enroll_all(data: Path, db: str, count: int, first_code: int) -> list[Enrolled]:
    """One token per commune, exchanged for a node id and credential by the hub's own code."""
    store = await open_hub_store(data)
    try:
        if is_sqlite(db) and hasattr(store, "conn"):
            await store.conn.execute("PRAGMA synchronous=OFF")  # setup only
        out = []
        for i in range(count):
            code = f"{first_code + i:05d}"
            name = f"Xã Số {i + 1}"
            token = await store.trust.create_enroll_token(code, name)
            got = await store.trust.enroll(token)
            if not got.credential:
                raise RuntimeError("enrollment gave no bearer credential (a certificate hub?)")
            out.append(Enrolled(got.commune, got.commune_name, got.node, got.agency,
                                got.credential))
    finally:
        await store.close()
    return out


def hub_settings(data: Path, pairs: list[str]) -> None:
    """Apply `--hub-set key=value` to the hub's `hub.toml` (validated like any config)."""
    from central_hub import config as hub_config

    config = hub_config.load(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not hasattr(config, key):
            raise SystemExit(f"--hub-set {pair}: expected KEY=VALUE with a hub.toml key")
        kind = type(getattr(config, key))
        config = dataclasses.replace(config, **{key: kind(value)})
    config.validate()
    hub_config.save(data, config)


async def start_hub(args: argparse.Namespace, root: Path, procs: Processes,
                    communes: int) -> tuple[str, Any, list[Enrolled], dict[str, float]]:
    """init, enroll, (operator), serve; return (url, process, nodes, setup times)."""
    data = root / "hub"
    times: dict[str, float] = {}
    started = time.perf_counter()
    await acli("central_hub", "init", "--data", str(data), "--db", args.db)
    if args.hub_set:
        hub_settings(data, args.hub_set)
    if args.hub_edits_per_s > 0 and "day" in args.scenarios:
        await acli("central_hub", "operator", "add", "--data", str(data), "--username", OPERATOR,
                   stdin=OPERATOR_PASSWORD + "\n")
    times["init_s"] = time.perf_counter() - started
    started = time.perf_counter()
    nodes = await enroll_all(data, args.db, communes, args.first_code)
    times["enroll_s"] = time.perf_counter() - started
    port = _free_port()
    cmd = ["central_hub", "serve", "--data", str(data), "--port", str(port), "--insecure-http"]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    logfile = root / "hub.log"
    hub = procs.start("hub", cmd, logfile)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    await wait_ready(url + "/healthz", hub, logfile, within=120)
    times["serve_ready_s"] = time.perf_counter() - started
    return url, hub, nodes, times



async def hub_log(url: str) -> int | None:
    """The hub's log size (`/healthz`), None if it does not answer within 2 minutes."""
    try:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.get(url + "/healthz") as resp:
            return int((await resp.json())["log"])
    except (aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError):
        return None
