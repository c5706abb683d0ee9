"""A real link for fault tests: two network namespaces joined by a veth pair, shaped with `tc tbf`,
made lossy with nftables, cut with `ip link set … down` (this kernel has no netem).

    hub namespace csync-h-<pid>-<n>            edge namespace csync-e-<pid>-<n>
    csh 10.231.<n>.1/30  <──── veth ────>  cse 10.231.<n>.2/30

The hub runs as a real process inside the hub namespace (`ip netns exec NS python -m central_hub
serve --host 10.231.n.1`), edge commands inside the edge namespace. Only these two addresses, in
namespaces made here, are ever a target. Each side shapes its own egress (`tbf rate 256kbit`), so
both directions are limited; loss is an nftables `input` chain on each side (`numgen random mod 100
< N drop`), after the sender's shaper, so it drops real MTU-sized packets. Bytes are counted by the
veth itself (`ip -s link`: what each side put on the wire, headers and retransmissions included).

Needs root and `ip`, `tc`, `nft` (Debian: iproute2, nftables); `unavailable()` says why not.
`Link.close()` kills every process left in the two namespaces (they are ours: nothing else runs
there) and deletes them, also after a failure. Namespaces left by a test process that died are
deleted the next time (only if that process is gone and nothing runs in them).
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
TOOLS = ("ip", "tc", "nft")
PREFIX = "csync-"
NAME_RE = re.compile(r"^csync-[he]-(\d+)-(\d+)$")
CLONE_NEWNET = 0x40000000
_numbers = itertools.count(1)


class LinkUnavailable(RuntimeError):
    """The machine cannot make a namespace link (not root, tools or kernel features missing)."""


def unavailable() -> str | None:
    """Why namespace links cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (netns), tc qdiscs and nft rules"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return (f"netns link needs {', '.join(missing)} (Debian: apt-get install -y iproute2 "
                "nftables)")
    return None


def sh(*args: str, check: bool = True, input_text: str | None = None) -> str:
    """Run a command; its stdout. LinkUnavailable with its stderr if it fails and `check`."""
    done = subprocess.run(args, capture_output=True, text=True, input=input_text, timeout=30,
                          check=False)
    if check and done.returncode != 0:
        raise LinkUnavailable(f"`{' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _enter(ns: str) -> None:
    """Move the calling thread into network namespace `ns` (for good: use a fresh thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def in_netns(ns: str, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a new thread inside namespace `ns` (sockets it makes live there)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def done(value: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)

    def run() -> None:
        try:
            _enter(ns)
            value = fn(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(done, None, exc)
        else:
            loop.call_soon_threadsafe(done, value, None)

    threading.Thread(target=run, name=f"netns-{ns}", daemon=True).start()
    return await future


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _cleanup_stale() -> None:
    """Delete namespaces left by fault-test processes that no longer exist."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        m = NAME_RE.match(name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its test process is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if not sh("ip", "netns", "pids", name, check=False).strip():
            sh("ip", "netns", "del", name, check=False)


@dataclass
class Counters:
    """Bytes and packets each side put on the wire."""

    up_bytes: int  # edge → hub
    down_bytes: int  # hub → edge
    up_packets: int
    down_packets: int

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.up_bytes - other.up_bytes, self.down_bytes - other.down_bytes,
                        self.up_packets - other.up_packets,
                        self.down_packets - other.down_packets)


class Link:
    """Two namespaces and the veth pair between them."""

    def __init__(self) -> None:
        n = next(_numbers)
        self.n = n
        self.hub_ns = f"{PREFIX}h-{os.getpid()}-{n}"
        self.edge_ns = f"{PREFIX}e-{os.getpid()}-{n}"
        self.hub_if, self.edge_if = "csh", "cse"
        self.hub_ip, self.edge_ip = f"10.231.{n % 256}.1", f"10.231.{n % 256}.2"
        self.rate_kbit = 0
        self.loss_percent = 0
        self.is_up = False
        self._made: list[str] = []

    # -- life -------------------------------------------------------------------------------------

    def create(self) -> Link:
        """Make both namespaces and the veth pair, addresses set and everything up."""
        why = unavailable()
        if why:
            raise LinkUnavailable(why)
        _cleanup_stale()
        for ns in (self.hub_ns, self.edge_ns):
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            # no IPv6 on the link: its neighbour discovery would add stray packets to the counts
            sh("ip", "netns", "exec", ns, "sh", "-c",
               "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6", check=False)
        sh("ip", "link", "add", self.hub_if, "netns", self.hub_ns, "type", "veth", "peer", "name",
           self.edge_if, "netns", self.edge_ns)
        for ns, dev, ip in ((self.hub_ns, self.hub_if, self.hub_ip),
                            (self.edge_ns, self.edge_if, self.edge_ip)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.heal()
        return self

    def close(self) -> None:
        """Kill what still runs in the namespaces (by pid) and delete them. Never raises."""
        for ns in self._made:
            for _ in range(3):
                pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
        for ns in self._made:
            sh("ip", "netns", "del", ns, check=False)
        self._made.clear()

    def __enter__(self) -> Link:
        try:
            return self.create()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the link ---------------------------------------------------------------------------------

    def _both(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.hub_ns, self.hub_if), (self.edge_ns, self.edge_if)

    def shape(self, rate_kbit: int = 256, *, burst_bytes: int = 4096,
              latency_ms: int = 500) -> None:
        """Limit each direction to `rate_kbit` (tbf; `latency_ms` bounds the shaper's queue)."""
        for ns, dev in self._both():
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
               "rate", f"{rate_kbit}kbit", "burst", str(burst_bytes), "latency",
               f"{latency_ms}ms")
        self.rate_kbit = rate_kbit

    def loss(self, percent: int) -> None:
        """Drop `percent` % of the packets arriving on each side, at random (0: none)."""
        if not 0 <= percent <= 100:
            raise ValueError("loss is a percentage")
        for ns, dev in self._both():
            rules = "table inet csync\ndelete table inet csync\n"
            if percent:
                rules += ("table inet csync {\n  chain input {\n"
                          "    type filter hook input priority 0; policy accept;\n"
                          f"    iifname \"{dev}\" numgen random mod 100 < {percent} counter drop\n"
                          "  }\n}\n")
            sh("ip", "netns", "exec", ns, "nft", "-f", "-", input_text=rules)
        self.loss_percent = percent

    def dropped(self) -> int:
        """Packets dropped by the loss rules so far (both sides)."""
        total = 0
        for ns, _ in self._both():
            out = sh("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "csync",
                     check=False)
            for item in json.loads(out or "{}").get("nftables", []):
                for expr in item.get("rule", {}).get("expr", []):
                    if "counter" in expr:
                        total += int(expr["counter"]["packets"])
        return total

    def cut(self) -> None:
        """The link goes down (both ends): packets cannot cross, open connections stay open."""
        for ns, dev in self._both():
            sh("ip", "-n", ns, "link", "set", dev, "down")
        self.is_up = False

    def heal(self) -> None:
        """The link comes back."""
        for ns, dev in self._both():
            sh("ip", "-n", ns, "link", "set", dev, "up")
        self.is_up = True

    def counters(self) -> Counters:
        """What each end has put on the wire so far."""
        def stats(ns: str, dev: str) -> dict[str, Any]:
            data = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev))
            result: dict[str, Any] = data[0]["stats64"]["tx"]
            return result

        up, down = stats(self.edge_ns, self.edge_if), stats(self.hub_ns, self.hub_if)
        return Counters(int(up["bytes"]), int(down["bytes"]), int(up["packets"]),
                        int(down["packets"]))

    # -- processes --------------------------------------------------------------------------------

    def prefix(self, ns: str) -> tuple[str, ...]:
        """The command prefix that runs a program inside `ns`."""
        return ("ip", "netns", "exec", ns)

    async def wait_port(self, ns: str, host: str, port: int, within_s: float = 60.0,
                        alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until `host:port` accepts a connection from inside `ns`."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"the server for {host}:{port} exited")
            if await in_netns(ns, _port_open, host, port):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{host}:{port} did not answer from {ns} within {within_s:.0f} s")
