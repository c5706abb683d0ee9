"""A real `central-hub serve` (or `edge-node serve`) process on a free loopback port, for the tests
that need a server as a separate process (the CLI contract, limits measured on the process,
several workers, schemathesis)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    data: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.data / "serve.log").read_text(errors="replace")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, within: float = 30) -> None:
    """Until `url/healthz` answers 200; fail with the server's log if it dies or stays silent."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "server did not start: " + log.read_text()
        time.sleep(0.1)


@contextlib.contextmanager
def serve(data: Path, *extra: str) -> Iterator[Served]:
    """`central-hub serve --data DATA --insecure-http EXTRA…` (plain HTTP on loopback: the
    HTTPS path has its own tests in tests/security), stopped with SIGTERM afterwards."""
    with _serve("central_hub", data, "--insecure-http", *extra) as served:
        yield served


@contextlib.contextmanager
def serve_edge(data: Path, *extra: str) -> Iterator[Served]:
    """`edge-node serve --data DATA EXTRA…` on a free loopback port, stopped with SIGTERM."""
    with _serve("edge_node", data, *extra) as served:
        yield served


@contextlib.contextmanager
def _serve(module: str, data: Path, *extra: str) -> Iterator[Served]:
    port = free_port()
    with (data / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--data", str(data), "--host",
             "127.0.0.1", "--port", str(port), *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, data / "serve.log")
            yield Served(data, port, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
