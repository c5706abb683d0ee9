"""Sync throughput: N birth registrations taken in offline at an edge, then one sync to a real hub.

The hub is a real `central-hub serve` process; the edge side (its store and sync client) runs in this
process, talking to the hub through a `LinkProxy` with no toxics, so the bytes on the wire are counted
at the socket both ways (TCP payload: HTTP headers and bodies; not IP/TCP headers). Prints dossiers/s,
wire bytes per dossier, HTTP requests per 100 dossiers, peak RSS of both processes, and what one-field
edits cost on the wire. Targets (DESIGN issue): for N = 10,000, ≥ 10,000 dossiers/s and ≤ 150 bytes
per dossier; an edit of one field ≤ 100 bytes.

    python bench/sync_throughput.py --dossiers 10000 [--edits 1000] [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil  # type: ignore[import-untyped]
from faker import Faker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from edge_node import config as edge_config  # noqa: E402
from edge_node.store import EdgeStore  # noqa: E402
from edge_node.sync import SyncClient  # noqa: E402
from protocol.errors import SyncError  # noqa: E402
from tests.faults.linkproxy import LinkProxy  # noqa: E402

log = logging.getLogger(__name__)

T = TypeVar("T")
TARGET_RATE = 10_000.0
TARGET_BYTES = 150.0
TARGET_EDIT = 100.0

# -- realistic dossiers ---------------------------------------------------------------------------

VILLAGES = ("Nà Khá", "Khuổi Phầy", "Bản Tát", "Nà Mỏ", "Khuôn Khiển", "Phiêng Mơ", "Nà Chác",
            "Bản Va", "Khau Làn", "Nặm Đăm", "Thôm Mẻ", "Nà Lầu")
ETHNICITIES = ("Tày",) * 5 + ("Dao",) * 3 + ("Kinh",) * 2 + ("H'Mông", "Nùng", "Sán Chay")
MIDDLE_MALE = ("Văn", "Văn", "Đức", "Minh", "Hữu", "Quang", "Công", "Xuân", "Thành")
MIDDLE_FEMALE = ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Hồng", "Kim")
PHONE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077",
                  "078", "079", "081", "082", "083", "084", "085", "086", "088", "089", "090",
                  "091", "093", "094", "096", "097", "098")


class DossierFaker:
    """Birth-registration bodies (CONTRACT §7 POST /api/dossiers) for a mountain commune."""

    def __init__(self, seed: int, commune: str = "Côn Lôn", province_code: str = "008") -> None:
        self.fake = Faker("vi_VN")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)
        self.commune = commune
        self.province_code = province_code

    def person(self, male: bool, family: str | None = None) -> str:
        """A Vietnamese full name: family, middle, given."""
        middle = self.rng.choice(MIDDLE_MALE if male else MIDDLE_FEMALE)
        given = self.fake.first_name_male() if male else self.fake.first_name_female()
        return f"{family or self.fake.last_name()} {middle} {given}"

    def citizen_id(self, birth_year: int, male: bool) -> str:
        """A 12-digit personal ID: province, century/sex digit, year, serial."""
        century = (birth_year // 100 - 19) * 2 + (0 if male else 1)
        serial = self.rng.randrange(1_000_000)
        return f"{self.province_code}{century}{birth_year % 100:02d}{serial:06d}"

    def phone(self) -> str:
        """A Vietnamese mobile number."""
        return self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10_000_000):07d}"

    def address(self) -> str:
        """A village address in the commune."""
        return f"Thôn {self.rng.choice(VILLAGES)}, xã {self.commune}, tỉnh Tuyên Quang"

    def birth(self, today: date | None = None) -> dict[str, Any]:
        """One birth registration filed by the father or the mother."""
        today = today or date.today()
        father_year = self.rng.randint(1980, 2004)
        mother_year = self.rng.randint(1985, 2006)
        family = self.fake.last_name()
        father = self.person(True, family)
        mother = self.person(False)
        by_father = self.rng.random() < 0.6
        male_child = self.rng.random() < 0.51
        born = today - timedelta(days=self.rng.randint(1, 60))
        ethnicity = self.rng.choice(ETHNICITIES)
        return {
            "procedure_code": "1.001193",
            "applicant": {
                "full_name": father if by_father else mother,
                "citizen_id": self.citizen_id(father_year if by_father else mother_year,
                                              by_father),
                "phone": self.phone(),
                "address": self.address(),
            },
            "fields": {
                "relationship": "Cha" if by_father else "Mẹ",
                "child_full_name": self.person(male_child, family),
                "child_birth_date": born.isoformat(),
                "child_sex": "Nam" if male_child else "Nữ",
                "child_ethnicity": ethnicity,
                "child_nationality": "Việt Nam",
                "child_birth_place": self.rng.choice(
                    (f"Trạm y tế xã {self.commune}", "Bệnh viện Đa khoa khu vực Na Hang",
                     "Bệnh viện Đa khoa tỉnh Tuyên Quang", "Tại nhà")),
                "mother_full_name": mother,
                "mother_birth_year": str(mother_year),
                "father_full_name": father,
                "father_birth_year": str(father_year),
            },
        }


# -- processes ------------------------------------------------------------------------------------

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


# -- the benchmark --------------------------------------------------------------------------------

class PeakRss:
    """Samples another process's RSS while running."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)
            await asyncio.sleep(self.every_s)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.proc.memory_info().rss)
        if self._task is not None:
            self._task.cancel()


def vm_hwm(pid: int) -> int:
    """The kernel's lifetime peak RSS of a process (VmHWM), 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds a process has used."""
    times = proc.cpu_times()
    return float(times.user + times.system)


async def timed_sync(client: SyncClient, proxy: LinkProxy, hub_pid: int) -> dict[str, Any]:
    """One sync session; its result, the socket-level byte counts, wall time and CPU time of
    the hub and of this (edge) process."""
    hub, me = psutil.Process(hub_pid), psutil.Process()
    proxy.reset_counters()
    hub_cpu, my_cpu = cpu_s(hub), cpu_s(me)
    started = time.perf_counter()
    result = await client.session_once()
    elapsed = time.perf_counter() - started
    return {"result": result, "s": elapsed, "up": proxy.bytes_up, "down": proxy.bytes_down,
            "connections": proxy.connections, "hub_cpu_s": cpu_s(hub) - hub_cpu,
            "edge_cpu_s": cpu_s(me) - my_cpu}


async def bench(args: argparse.Namespace, root: Path, procs: Processes) -> dict[str, Any]:
    n, m = args.dossiers, min(args.edits, args.dossiers)
    hub_dir, edge_dir = root / "hub", root / "edge"
    cli("central_hub", "init", "--data", str(hub_dir))
    token = cli("central_hub", "enroll", "--data", str(hub_dir), "--commune", "02245",
                "--name", "Xã Côn Lôn")
    port = free_port()
    hub_log = root / "hub.log"
    # plain HTTP on loopback: the figures are the protocol's bytes, not TLS's (mutual TLS adds a
    # handshake per connection and ~30 B per record; docs/security.md)
    hub = procs.start("hub", ["central_hub", "serve", "--data", str(hub_dir), "--port", str(port),
                              "--insecure-http"], hub_log)
    hub_url = f"http://127.0.0.1:{port}"
    await wait_ready(hub_url + "/healthz", hub, hub_log)
    cli("edge_node", "init", "--data", str(edge_dir), "--hub", hub_url, "--token", token)

    async with LinkProxy("127.0.0.1", port, seed=args.seed) as proxy:
        config = dataclasses.replace(edge_config.load(edge_dir), hub_url=proxy.url,
                                     auto_sync=False)
        edge_config.save(edge_dir, config)
        store = await EdgeStore.open(edge_dir / edge_config.DB_FILE, config.node, config.commune,
                                     config.agency)
        client = SyncClient(store, config)
        client.data_dir = str(edge_dir)
        try:
            print(f"generating {n} birth registrations (Faker vi_VN, seed {args.seed})…", flush=True)
            faker = DossierFaker(args.seed)
            bodies = [faker.birth() for _ in range(n)]
            print(f"intake: {n} dossiers through EdgeStore.create (one fsync each), offline…",
                  flush=True)
            started = time.perf_counter()
            versions: dict[str, str] = {}
            for body in bodies:
                view = await store.create(body, "clerk")
                versions[view["id"]] = view["version"]
            intake_s = time.perf_counter() - started
            pending, _ = await store.pending_stats()

            print("sync: one session through the proxy…", flush=True)
            with PeakRss(hub.pid) as hub_rss:
                first = await timed_sync(client, proxy, hub.pid)
            res = first["result"]
            if res.sent != n or res.pending_after != 0:
                raise RuntimeError(f"sync incomplete: sent {res.sent} of {n}, "
                                   f"{res.pending_after} still pending")
            async with aiohttp.ClientSession() as http, http.get(hub_url + "/healthz") as resp:
                hub_log_size = (await resp.json())["log"]

            print(f"edits: one field on {m} dossiers, then one sync…", flush=True)
            chosen = faker.rng.sample(sorted(versions), m)
            for dossier_id in chosen:
                await store.edit(dossier_id, {"set": {"applicant.phone": faker.phone()},
                                              "base": versions[dossier_id]}, "clerk")
            with PeakRss(hub.pid) as hub_rss_edits:
                edits = await timed_sync(client, proxy, hub.pid)
            last = (await store.view(chosen[0]))["version"]
            await store.edit(chosen[0], {"set": {"applicant.phone": faker.phone()},
                                         "base": last}, "clerk")
            single = await timed_sync(client, proxy, hub.pid)
        finally:
            await client.close()
            await store.close()

    wire = first["up"] + first["down"]
    edit_wire = edits["up"] + edits["down"]
    return {
        "dossiers": n,
        "pending_before_sync": pending,
        "intake_s": round(intake_s, 3),
        "intake_per_s": round(n / intake_s, 1),
        "sync_s": round(first["s"], 3),
        "sync_dossiers_per_s": round(n / first["s"], 1),
        "sync_hub_cpu_s": round(first["hub_cpu_s"], 3),
        "sync_edge_cpu_s": round(first["edge_cpu_s"], 3),
        "round_trips": res.round_trips,
        "http_requests_per_100": round(100 * res.round_trips / n, 3),
        "tcp_connections": first["connections"],
        "wire_bytes_up": first["up"],
        "wire_bytes_down": first["down"],
        "wire_bytes_per_dossier": round(wire / n, 1),
        "body_bytes_up": res.bytes_up,
        "body_bytes_down": res.bytes_down,
        "hub_log_events": hub_log_size,
        "hub_peak_rss_mb": round(max(hub_rss.peak, hub_rss_edits.peak) / 2**20, 1),
        "hub_vm_hwm_mb": round(vm_hwm(hub.pid) / 2**20, 1),
        "edge_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "edits": m,
        "edit_sync_s": round(edits["s"], 3),
        "edit_round_trips": edits["result"].round_trips,
        "edit_wire_bytes": edit_wire,
        "edit_bytes_marginal": round(edit_wire / m, 1) if m else None,
        "single_edit_wire_bytes": single["up"] + single["down"],
        "single_edit_up_down": [single["up"], single["down"]],
        "single_edit_round_trips": single["result"].round_trips,
    }


def report(r: dict[str, Any]) -> None:
    """The table and the one-line JSON summary."""
    def ok(good: bool) -> str:
        return "met" if good else "MISSED"

    n = r["dossiers"]
    r["target_rate_met"] = r["sync_dossiers_per_s"] >= TARGET_RATE
    r["target_bytes_met"] = r["wire_bytes_per_dossier"] <= TARGET_BYTES
    r["target_edit_met"] = r["edit_bytes_marginal"] is not None and \
        r["edit_bytes_marginal"] <= TARGET_EDIT
    rows = [
        ("dossiers taken in offline", f"{n:,}", ""),
        ("intake (EdgeStore.create, fsync each)",
         f"{r['intake_per_s']:,.0f} dossiers/s", f"{r['intake_s']:.1f} s"),
        ("sync of all of them (one session)", f"{r['sync_dossiers_per_s']:,.0f} dossiers/s",
         f"{r['sync_s']:.3f} s; target ≥ {TARGET_RATE:,.0f}/s: {ok(r['target_rate_met'])}"),
        ("  CPU during that sync", f"hub {r['sync_hub_cpu_s']:.2f} s",
         f"edge (this process, incl. the proxy) {r['sync_edge_cpu_s']:.2f} s"),
        ("bytes on the wire per dossier", f"{r['wire_bytes_per_dossier']:.1f} B",
         f"up {r['wire_bytes_up']:,} + down {r['wire_bytes_down']:,}; target ≤ "
         f"{TARGET_BYTES:.0f}: {ok(r['target_bytes_met'])}"),
        ("HTTP requests per 100 dossiers", f"{r['http_requests_per_100']:.3f}",
         f"{r['round_trips']} round trips, {r['tcp_connections']} TCP connection(s)"),
        ("hub log after sync", f"{r['hub_log_events']:,} events", ""),
        ("peak RSS, hub process", f"{r['hub_peak_rss_mb']:.1f} MiB",
         f"sampled during sync; lifetime VmHWM {r['hub_vm_hwm_mb']:.1f} MiB"),
        ("peak RSS, edge (bench process)", f"{r['edge_peak_rss_mb']:.1f} MiB",
         "ru_maxrss; includes Faker and the generated bodies"),
        (f"{r['edits']:,} one-field edits, one sync", f"{r['edit_bytes_marginal']} B/edit",
         f"{r['edit_wire_bytes']:,} B in {r['edit_round_trips']} round trip(s), "
         f"{r['edit_sync_s']:.3f} s; target ≤ {TARGET_EDIT:.0f}: {ok(r['target_edit_met'])}"),
        ("one edit synced alone", f"{r['single_edit_wire_bytes']:,} B",
         f"up {r['single_edit_up_down'][0]} + down {r['single_edit_up_down'][1]}, "
         "HTTP headers included"),
    ]
    width = max(len(a) for a, _, _ in rows)
    vwidth = max(len(b) for _, b, _ in rows)
    print()
    for a, b, c in rows:
        print(f"  {a:<{width}}  {b:>{vwidth}}  {c}")
    print()
    print(json.dumps(r, ensure_ascii=False))


def machine() -> str:
    """CPU count and model, for the record."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPU(s), {model}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=10_000, help="N dossiers (default 10000)")
    p.add_argument("--edits", type=int, default=1000, help="M one-field edits (default 1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", type=Path, default=None, help="work here instead of a temp dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args(argv)
    if args.dossiers < 1 or args.edits < 1:
        p.error("--dossiers and --edits must be ≥ 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"sync throughput — {machine()}; load average {os.getloadavg()[0]:.2f}")
    procs = Processes()
    try:
        with work_dir(args.data, args.keep) as root:
            try:
                result = run_main(bench(args, root, procs))
            finally:
                procs.stop()
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped")
        return 130
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except SyncError as exc:
        print(f"bench failed: sync refused: {exc.message}", file=sys.stderr)
        return 1
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
