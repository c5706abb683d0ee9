"""The benchmarks' processes: free ports, `python -m` children, readiness, Ctrl-C, work dirs, the machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port(preferred: int = 0) -> int:
    """`preferred` if nothing listens there, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def cli(*args: str, stdin: str | None = None) -> str:
    """Run `python -m <args>` (central_hub / edge_node) and return its stdout; fail loudly."""
    done = subprocess.run([sys.executable, "-m", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


async def acli(*args: str, stdin: str | None = None) -> str:
    """`cli` without blocking the event loop (the proxies in this process keep forwarding)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): "
                           f"{err.decode().strip() or out.decode().strip()}")
    return out.decode().strip()


class Processes:
    """Child server processes, each in its own session so Ctrl-C reaches only us; stopped on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], logfile: Path) -> subprocess.Popen[bytes]:
        """Start `python -m <args>` with its output in `logfile`."""
        with logfile.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        """SIGTERM every child (a clean aiohttp shutdown), then SIGKILL what lingers."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


async def wait_ready(url: str, proc: subprocess.Popen[bytes], logfile: Path,
                     within: float = 30.0) -> None:
    """Poll `url` until it answers; a clear error (with the log tail) if the process died."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = logfile.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{url}: the process exited ({proc.returncode}):\n{tail}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within:.0f} s")


def run_in_tmp(prefix: str, make: Callable[[Path], Coroutine[Any, Any, T]], keep: bool,
               expected: tuple[type[BaseException], ...] = (RuntimeError,)) -> T | int:
    """`run_main(make(root))` in a fresh temporary directory `root` (removed after, unless
    `keep`); what it returned, or the exit code after Ctrl-C (130) or an `expected` failure (1),
    said in one line."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run_main(make(root))
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped, namespaces deleted")
        return 130
    except expected as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run_main(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, where Ctrl-C and SIGTERM cancel the main task so every `finally` runs
    (proxies closed, sessions closed); then raise KeyboardInterrupt."""
    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await coro

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


@contextlib.contextmanager
def work_dir(data: Path | None, keep: bool) -> Iterator[Path]:
    """`data` (kept), or a fresh temporary dir removed afterwards unless `keep`."""
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        yield data
        return
    root = Path(tempfile.mkdtemp(prefix="commune-sync-"))
    try:
        yield root
    finally:
        if keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def vm_hwm(pid: int) -> int:
    """The kernel's lifetime peak RSS of a process (VmHWM), 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> str:
    """CPU count and model, for the record."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPU(s), {model}, Python {platform.python_version()}"
