"""Measuring a phase: its round trips and sessions, both sides' CPU, and where the hub's time went."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.fleet.common import say
from bench.fleet.driver import Fleet
from bench.fleet.hubproc import HubMeter, hub_log, my_cpu

log = logging.getLogger(__name__)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def dist_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    if not ms:
        return {}
    return {"n": len(ms), "min": round(min(ms), 1), "p50": round(pct(ms, 50), 1),
            "p90": round(pct(ms, 90), 1), "p99": round(pct(ms, 99), 1), "max": round(max(ms), 1),
            "mean": round(statistics.fmean(ms), 1)}


class Profiler:
    """py-spy recording the hub during a measured phase (if py-spy is installed)."""

    def __init__(self, out: Path | None, pid: int) -> None:
        self.out, self.pid = out, pid
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if self.out is None:
            return
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            say("  (--profile: py-spy is not installed; `pip install py-spy` into .venv)")
            self.out = None
            return
        self.proc = await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(self.pid), "--rate", "100", "--format", "raw",
            "--subprocesses", "--nonblocking", "--output", str(self.out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(0.5)  # attached

    async def stop(self, wall_s: float) -> dict[str, Any] | None:
        if self.proc is None or self.out is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        return summarize_profile(self.out, wall_s)


MAIN_ACTIVITIES = (  # (label, any of these frames in the stack), first match wins
    ("health monitor: every node's health after each exchange", ("Monitor.check",)),
    ("history downsampling", ("Monitor._prune",)),
    ("decode + validate the request (msgpack, shape, events, hash chain)", ("decode_request",)),
    ("ingest: fold events, build dossier rows", ("EventLog.append",)),
    ("ingest: load states, check scope", ("EventLog.load_states", "check_writes")),
    ("ingest: the rest (chain check, transaction)", ("Ingest.",)),
    ("read the node's scope (events down)", ("HubStore.read_scope",)),
    ("record the session (node_sessions, nodes)", ("Sessions.record",)),
    ("reference data check", ("HubStore.refdata_newer",)),
    ("encode the answer", ("encode_response",)),
    ("authenticate the node", ("NodeGuard.node",)),
    ("HTTP (aiohttp)", ("RequestHandler.", "web_protocol", "HttpRequestParser")),
    ("idle (waiting in epoll)", ("EpollSelector.select",)),
)


def _worker_lines() -> tuple[int, int]:
    """Lines of aiosqlite's worker loop: running a statement, waiting for one."""
    import inspect

    import aiosqlite.core
    lines, first = inspect.getsourcelines(aiosqlite.core)
    run = wait = -1
    for i, text in enumerate(lines, start=first or 1):
        if "result = function()" in text:
            run = i
        elif "tx.get()" in text and wait < 0:
            wait = i
    return run, wait


def summarize_profile(path: Path, wall_s: float, rate: int = 100) -> dict[str, Any] | None:
    """Where the hub's time went, from py-spy's collapsed stacks: per thread, the share of the
    phase's wall time spent in each activity (a thread at 100 % was never idle)."""
    if not path.exists():
        return None
    run_line, wait_line = _worker_lines()
    main: Counter[str] = Counter()
    sqlite: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    processes: set[str] = set()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        processes.add(frames[0][:40])
        if any("_connection_worker_thread" in f for f in frames):
            top = next(f for f in frames if "_connection_worker_thread" in f)
            at = int(top.rsplit(":", 1)[-1].rstrip(")") or -1)
            kind = ("executing SQL (statements, commit, fsync)" if at == run_line else
                    "idle (waiting for a statement)" if at == wait_line else
                    "handing results back to the loop")
            sqlite[kind] += n
            continue
        names = [f.split(" (")[0] for f in frames]
        label = next((lab for lab, keys in MAIN_ACTIVITIES
                      if any(k in name for k in keys for name in names)), "other")
        main[label] += n
        if label not in ("idle (waiting in epoll)",):
            leaf[names[-1] + " (" + frames[-1].rsplit("/", 1)[-1]] += n
    budget = max(1.0, wall_s * rate * max(1, len(processes)))
    return {
        "file": str(path), "wall_s": round(wall_s, 1), "processes": len(processes),
        "main_thread": [(k, round(100 * v / budget, 1)) for k, v in main.most_common()],
        "sqlite_thread": [(k, round(100 * v / budget, 1)) for k, v in sqlite.most_common()],
        "hot_functions": [(k, round(100 * v / budget, 1)) for k, v in leaf.most_common(12)],
    }


async def measure(name: str, fleet: Fleet, meter: HubMeter, run: Callable[[], Awaitable[Any]],
                  profiler: Profiler | None = None, phases: tuple[str, ...] | None = None
                  ) -> dict[str, Any]:
    """Run one phase; its figures from the round trips and sessions it recorded."""
    phases = phases or (name,)
    timeouts0, retries0 = fleet.errors.get("timeout", 0), fleet.retries
    if profiler is not None:
        await profiler.start()
    log0 = await hub_log(fleet.url)
    t0, hub0, me0 = time.perf_counter(), meter.cpu(), my_cpu()
    load0 = os.getloadavg()
    unfinished = await run()
    wall = time.perf_counter() - t0
    hub_cpu, me_cpu = meter.cpu() - hub0, my_cpu() - me0
    log1 = await hub_log(fleet.url)  # after the phase: what the hub logged, answered or not
    logged = log1 - log0 if log0 is not None and log1 is not None else None
    profile = await profiler.stop(wall) if profiler is not None else None
    trips = [t for t in fleet.trips if t.phase in phases]
    sessions = [s for s in fleet.sessions if s.phase in phases]
    acked = sum(t.acked for t in trips)
    out: dict[str, Any] = {
        "phase": name, "wall_s": round(wall, 3), "sessions": len(sessions),
        "sessions_failed": sum(not s.ok for s in sessions),
        "sessions_unfinished": unfinished or 0,
        "timeouts": fleet.errors.get("timeout", 0) - timeouts0,
        "hub_logged_events": logged,
        "retries": fleet.retries - retries0, "round_trips": len(trips),
        "events_acked": acked, "events_down": sum(t.received for t in trips),
        "events_per_s": round(acked / wall, 1) if wall else 0.0,
        "bytes_up": sum(t.up for t in trips), "bytes_down": sum(t.down for t in trips),
        "round_trip_ms": dist_ms([t.s for t in trips]),
        "session_ms": dist_ms([s.s for s in sessions]),
        "hub_cpu_s": round(hub_cpu, 2), "hub_cpu_util": round(hub_cpu / wall, 2) if wall else 0,
        "hub_cpu_us_per_event": round(hub_cpu / max(acked, logged or 0) * 1e6, 1)
        if max(acked, logged or 0) else None,
        "client_cpu_s": round(me_cpu, 2),
        "client_cpu_util": round(me_cpu / wall, 2) if wall else 0,
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    for p in phases[1:]:
        sub = [s.s for s in sessions if s.phase == p]
        if sub:
            out[f"{p}_session_ms"] = dist_ms(sub)
            out[f"{p}_events"] = sum(t.acked for t in trips if t.phase == p)
    if profile is not None:
        out["profile"] = profile
    return out


async def finish(coros: list[Awaitable[Any]], limit_s: float) -> int:
    """Run the sessions of a phase for at most `limit_s`; cancel the rest, return how many."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=limit_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return len(pending)


async def bounded(items: list[Any], limit: int, work: Callable[[Any], Awaitable[Any]],
                  limit_s: float) -> int:
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> None:
        async with gate:
            await work(item)

    return await finish([one(i) for i in items], limit_s)
