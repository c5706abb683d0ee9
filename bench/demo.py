"""Demo: a provincial hub and three communes syncing over a flaky mountain link (what `make demo` runs).

Real processes on loopback: `central-hub serve` and three `edge-node serve`, each commune's link to
the hub through a `LinkProxy` in this process (latency, a bandwidth limit). First the story of
`bench/demo_scenario.py` is set up: Thượng Lâm offline since before its first sync, a conflict at
Côn Lôn, Na Hang's clock 2 h ahead (libfaketime), an online filing in Côn Lôn's inbox. Then clerks
keep taking in birth registrations at the edges, the province edits some at the hub, Na Hang's link
is cut and restored every few seconds, and a status table shows who is behind. With --duration the
demo stops itself, heals every link, waits for convergence and checks that every dossier of every
commune is at the hub exactly once (exit 0) or says what is missing (exit 1).

    python bench/demo.py [--duration S] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from bench import demo_scenario as story  # noqa: E402
from bench.demo_scenario import Api  # noqa: E402
from bench.dossier_faker import DossierFaker  # noqa: E402
from bench.processes import Processes, acli, free_port, run_main, wait_ready, work_dir  # noqa: E402
from edge_node import config as edge_config  # noqa: E402
from protocol.communes import DEFAULT_COMMUNES_DATA  # noqa: E402
from tests.faults.linkproxy import LinkProxy, Toxics  # noqa: E402

log = logging.getLogger(__name__)

# the 2025 map (protocol/communes.py): no districts; Sinh Long (02227) is part of Côn Lôn since
# 1 July 2025. Côn Lôn: a conflict and an online filing; Na Hang: its clock 2 h ahead, its link
# cut every few seconds; Thượng Lâm: offline
COMMUNES = (("02245", "Côn Lôn"), ("02221", "Na Hang"), ("02230", "Thượng Lâm"))
OPERATOR, OPERATOR_PASSWORD = "op", "demo-op-2026"
CLERK_PASSWORD = "demo-clerk-2026"
MOUNTAIN = Toxics(latency_ms=120, jitter_ms=40, bandwidth=32 * 1024)  # ~256 kbit/s, 120 ms
HOME_TOWNS = tuple(f"{c['name']}, tỉnh Tuyên Quang" for c in DEFAULT_COMMUNES_DATA["communes"]
                   if "merged_into" not in c)
NEXT = {"accepted": "processing", "processing": "resolved", "resolved": "returned"}


@dataclass
class Commune:
    """One commune: its edge process, its link to the hub, and what its clerk did."""

    code: str
    name: str
    port: int
    proxy: LinkProxy
    clerk: str
    api: Api = field(init=False)
    created: list[str] = field(default_factory=list)
    transitions: int = 0
    errors: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Demo:
    """Sets everything up, runs the load, prints status, checks convergence."""

    def __init__(self, args: argparse.Namespace, root: Path, procs: Processes) -> None:
        self.args, self.root, self.procs = args, root, procs
        self.rng = random.Random(args.seed)
        self.communes: list[Commune] = []
        self.hub_port = 0
        self.hub_edits = 0
        self.past_h, self.overdue = 0, ""
        self.started = time.monotonic()

    # -- setup -----------------------------------------------------------------------------------

    def ports(self) -> None:
        self.hub_port = free_port(8700)
        wanted = [8701, 8702, 8703]
        got = [free_port(p) for p in wanted]
        if self.hub_port != 8700 or got != wanted:
            print(f"ports 8700–8703 are busy: using hub {self.hub_port}, edges "
                  f"{', '.join(map(str, got))}")
        self.edge_ports = got

    async def setup(self) -> None:
        self.ports()
        hub_dir = self.root / "hub"
        print(f"data in {self.root}; starting the hub and three communes…", flush=True)
        await acli("central_hub", "init", "--data", str(hub_dir))
        past_env = None
        if story.faked_clock(0) is not None:  # a dossier taken in hours ago, overdue by now
            self.past_h = story.past_hours(int(time.time() * 1000))
            past_env = story.faked_clock(-self.past_h * 3600)
        hub = await self.start_hub(hub_dir, past_env)
        await acli("central_hub", "operator", "add", "--data", str(hub_dir), "--username",
                   OPERATOR, stdin=OPERATOR_PASSWORD + "\n")
        for (code, name), port in zip(COMMUNES, self.edge_ports, strict=True):
            proxy = LinkProxy("127.0.0.1", self.hub_port, seed=self.rng.randrange(2**32),
                              upstream=MOUNTAIN, downstream=MOUNTAIN)
            await proxy.start()
            self.communes.append(Commune(code, name, port, proxy, clerk=f"clerk{code}"))
        first, others = self.communes[0], self.communes[1:]
        if past_env is not None:
            print(f"  first {self.past_h} h ago (simulated: libfaketime sets the hub's and "
                  f"{first.name}'s clocks back) {first.name} takes a dossier in…", flush=True)
            await self.enroll_edge(first, hub_dir, past_env)
            edge = await self.serve_edge(first, past_env)
            self.overdue = await story.taken_in_the_past(
                first.url, first.clerk, CLERK_PASSWORD, f"http://127.0.0.1:{self.hub_port}",
                OPERATOR, OPERATOR_PASSWORD, self.past_h)
            self.procs.end(edge)
            self.procs.end(hub)
            print("  …and now, with every clock true again:", flush=True)
            await self.start_hub(hub_dir, None)
            await self.serve_edge(first, None)
        else:
            others = self.communes
        await asyncio.gather(*(self.enroll_edge(c, hub_dir) for c in others))
        await asyncio.gather(*(self.serve_edge(c, None) for c in others))

    async def start_hub(self, hub_dir: Path, env: dict[str, str] | None) -> Any:
        hub_log = self.root / "hub.log"
        hub = self.procs.start("hub", ["central_hub", "serve", "--data", str(hub_dir), "--port",
                                       str(self.hub_port), "--insecure-http"], hub_log, env=env)
        await wait_ready(f"http://127.0.0.1:{self.hub_port}/healthz", hub, hub_log, within=60)
        return hub

    async def enroll_edge(self, c: Commune, hub_dir: Path, env: dict[str, str] | None = None) -> None:
        """Enroll through the commune's link, tune its sync for the demo, add its clerk."""
        token = await acli("central_hub", "enroll", "--data", str(hub_dir), "--commune", c.code,
                           "--name", f"Xã {c.name}")
        data = self.root / f"edge-{c.code}"
        await acli("edge_node", "init", "--data", str(data), "--hub", c.proxy.url, "--token", token,
                   env=env)  # the clock it enrolls with is the one it learns the hub's by
        config = dataclasses.replace(edge_config.load(data), port=c.port, sync_interval_s=2.0,
                                     backoff_cap_s=5.0, request_timeout_s=15.0, auto_sync=True)
        edge_config.save(data, config)
        # a leader: the demo also approves results (moves to `resolved`)
        await acli("edge_node", "user", "add", "--data", str(data), "--username", c.clerk,
                   "--role", "leader", stdin=CLERK_PASSWORD + "\n")

    async def serve_edge(self, c: Commune, env: dict[str, str] | None) -> Any:
        """Start `edge-node serve` (`env`: its clock), and wait until it answers."""
        if c is self.offline:  # cut before its first sync, for the whole run
            await c.proxy.cut()
        elif c is self.flaky:  # its clock 2 h ahead; apart from the hub until the story starts
            env = story.faked_clock(story.CLOCK_SKEW_S)
            await c.proxy.cut()
        logfile = self.root / f"edge-{c.code}.log"
        proc = self.procs.start(f"edge {c.code}", ["edge_node", "serve", "--data",
                                                   str(self.root / f"edge-{c.code}"),
                                                   "--port", str(c.port)], logfile, env=env)
        await wait_ready(c.url + "/healthz", proc, logfile, within=60)
        print(f"  {c.code} {c.name} is up", flush=True)
        return proc

    def banner(self) -> None:
        hub = f"http://127.0.0.1:{self.hub_port}"
        print()
        print("Open:")
        print(f"  hub            {hub}/   nodes: {hub}/api/nodes   metrics: {hub}/metrics")
        for c in self.communes:
            print(f"  {c.code} {c.name:12} {c.url}/   (link to the hub via proxy {c.proxy.url})")
        print("Logins (DEMO ONLY: fixed passwords, never use them anywhere real):")
        print(f"  hub operator   {OPERATOR} / {OPERATOR_PASSWORD}")
        for c in self.communes:
            print(f"  {c.code} clerk    {c.clerk} / {CLERK_PASSWORD}")
        print(f"Links: {MOUNTAIN.latency_ms:.0f} ± {MOUNTAIN.jitter_ms:.0f} ms, "
              f"{MOUNTAIN.bandwidth // 1024} KiB/s (~{MOUNTAIN.bandwidth * 8 // 1024} kbit/s) "
              f"each way; {self.flaky.code} {self.flaky.name} is cut every "
              f"{self.args.cut_every:.0f} s.")
        print()

    @property
    def flaky(self) -> Commune:
        return self.communes[1]

    @property
    def offline(self) -> Commune:
        return self.communes[2]

    # -- load ------------------------------------------------------------------------------------

    async def clerk(self, commune: Commune, api: Api) -> None:
        faker = DossierFaker(self.rng.randrange(2**32), commune=commune.name)
        while True:
            await asyncio.sleep(self.rng.uniform(0.2, 0.8))
            if commune.created and self.rng.random() < 0.15:
                await self.transition(commune, api, self.rng.choice(commune.created))
                continue
            status, body = await api.call("POST", "/api/dossiers", faker.birth())
            if status == 201:
                commune.created.append(body["id"])
            else:
                commune.errors += 1
                print(f"  ! {commune.code}: intake answered {status}: {body}")

    async def transition(self, commune: Commune, api: Api, dossier_id: str) -> None:
        status, view = await api.call("GET", f"/api/dossiers/{dossier_id}")
        target = NEXT.get(view.get("status", "")) if status == 200 else None
        if target is None or view.get("conflicts"):
            return
        status, _ = await api.call("POST", f"/api/dossiers/{dossier_id}/transition",
                                   {"to": target, "base": view["version"], "note": "demo"})
        commune.transitions += status == 200

    async def province(self, hub: Api) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(1.5, 3.0))
            commune = self.rng.choice(self.communes)
            status, listing = await hub.call("GET", f"/api/dossiers?commune={commune.code}&limit=20")
            if status != 200 or not listing["items"]:
                continue
            view = self.rng.choice(listing["items"])
            status, _ = await hub.call("PATCH", f"/api/dossiers/{view['id']}", {
                "set": {"fields.child_home_town": self.rng.choice(HOME_TOWNS)},
                "base": view["version"]})
            self.hub_edits += status == 200

    async def weather(self) -> None:
        """Cut the flaky commune's link, restore it, again and again."""
        while True:
            await asyncio.sleep(self.args.cut_every / 2)
            await self.flaky.proxy.cut()
            await asyncio.sleep(self.args.cut_every / 2)
            await self.flaky.proxy.heal()  # (the offline commune's link stays cut)

    # -- status ----------------------------------------------------------------------------------

    async def counts(self, hub: Api) -> list[dict[str, Any]]:
        rows = []
        for c in self.communes:
            _, sync = await c.api.call("GET", "/api/sync")
            sync = sync if isinstance(sync, dict) else {}
            status, edge_list = await c.api.call("GET", "/api/dossiers?limit=10000")
            _, hub_list = await hub.call("GET", f"/api/dossiers?commune={c.code}&limit=10000")
            rows.append({
                "commune": f"{c.code} {c.name}", "link": "up" if c.proxy.is_up else "CUT",
                "pending": sync.get("pending_events", "?"), "state": sync.get("state", "?"),
                "edge": len(edge_list["items"]) if status == 200 else "?",
                "hub": len(hub_list["items"]) if isinstance(hub_list, dict) else "?",
                "kB": f"{c.proxy.bytes_up / 1000:.0f}/{c.proxy.bytes_down / 1000:.0f}"})
        return rows

    async def status(self, hub: Api) -> None:
        while True:
            await asyncio.sleep(self.args.status_every)
            self.print_table(await self.counts(hub))

    def print_table(self, rows: list[dict[str, Any]]) -> None:
        t = time.monotonic() - self.started
        print(f"t={t:5.1f}s  hub edits {self.hub_edits}, edge transitions "
              f"{sum(c.transitions for c in self.communes)}")
        print(f"  {'commune':20} {'link':4} {'edge':>5} {'hub':>5} {'pending':>7}  "
              f"{'sync':8} {'wire kB up/down'}")
        for r in rows:
            print(f"  {r['commune']:20} {r['link']:4} {r['edge']!s:>5} {r['hub']!s:>5} "
                  f"{r['pending']!s:>7}  {r['state']!s:8} {r['kB']}")

    # -- convergence -----------------------------------------------------------------------------

    async def converge(self, hub: Api, within: float = 30.0) -> bool:
        print("stopping the load; healing every link and waiting for convergence…")
        for c in self.communes:
            c.proxy.clear()
            await c.proxy.heal()
        deadline = time.monotonic() + within
        problems: list[str] = ["not checked"]
        while time.monotonic() < deadline:
            for c in self.communes:
                await c.api.call("POST", "/api/sync")
            await asyncio.sleep(1.0)
            problems = await self.check(hub)
            if not problems:
                break
        self.print_table(await self.counts(hub))
        total = sum(len(c.created) for c in self.communes)
        print(f"created {total} dossiers at the edges, {self.hub_edits} edits at the hub, "
              f"{sum(c.transitions for c in self.communes)} transitions at the edges")
        if problems:
            print(f"NOT converged after {within:.0f} s:")
            for p in problems:
                print(f"  - {p}")
            return False
        print("converged: every dossier of every commune is at the hub exactly once")
        return True

    async def check(self, hub: Api) -> list[str]:
        problems = []
        try:
            for c in self.communes:
                _, sync = await c.api.call("GET", "/api/sync")
                edge_list = await c.api.versions()
                hub_list = await hub.versions(f"&commune={c.code}")
                edge_ids, hub_ids = [i for i, _ in edge_list], [i for i, _ in hub_list]
                if isinstance(sync, dict) and sync.get("pending_events"):
                    problems.append(f"{c.code}: {sync['pending_events']} events still pending")
                for where, ids in (("edge", edge_ids), ("hub", hub_ids)):
                    if len(ids) != len(set(ids)):
                        problems.append(f"{c.code}: duplicate dossiers at the {where}")
                missing = set(c.created) - set(hub_ids)
                if missing:
                    problems.append(f"{c.code}: {len(missing)} dossiers not at the hub")
                if set(edge_ids) != set(hub_ids):
                    problems.append(f"{c.code}: edge has {len(set(edge_ids))}, hub "
                                    f"{len(set(hub_ids))}, differing in "
                                    f"{len(set(edge_ids) ^ set(hub_ids))}")
                if not set(c.created) <= set(edge_ids):
                    problems.append(f"{c.code}: the edge lost dossiers it created")
                behind = len(set(edge_list) - set(hub_list))
                if behind and not problems:
                    problems.append(f"{c.code}: {behind} dossiers differ in version between the "
                                    "edge and the hub (changes not yet both ways)")
        except RuntimeError as exc:
            problems.append(str(exc))
        return problems

    # -- run -------------------------------------------------------------------------------------

    async def run(self) -> bool:
        try:
            return await self._run()
        finally:
            for c in self.communes:
                await c.proxy.close()

    async def _run(self) -> bool:
        await self.setup()
        self.banner()
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession() as http:
            hub = Api(http, f"http://127.0.0.1:{self.hub_port}")
            await hub.login(OPERATOR, OPERATOR_PASSWORD)
            for c in self.communes:
                c.api = Api(http, c.url)
                await c.api.login(c.clerk, CLERK_PASSWORD)
            await story.set_up(self, hub, http)
            try:
                tasks = [asyncio.create_task(self.clerk(c, c.api)) for c in self.communes]
                tasks += [asyncio.create_task(self.province(hub)),
                          asyncio.create_task(self.weather()),
                          asyncio.create_task(self.status(hub))]
                self.started = time.monotonic()
                await asyncio.wait(tasks, timeout=self.args.duration,
                                   return_when=asyncio.FIRST_EXCEPTION)
                for t in tasks:
                    if t.done() and not t.cancelled() and t.exception() is not None:
                        raise RuntimeError(f"demo task failed: {t.exception()!r}")
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return True if self.args.duration is None else await self.converge(hub)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit 0 when it converged (or ran until Ctrl-C), 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=None,
                   help="stop after S seconds, converge and verify (default: run until Ctrl-C)")
    p.add_argument("--data", type=Path, default=None, help="data dir (default: a temp dir)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cut-every", type=float, default=8.0, help="seconds per cut+restore cycle")
    p.add_argument("--status-every", type=float, default=3.0)
    args = p.parse_args(argv)
    if args.data is not None and args.data.exists() and any(args.data.iterdir()):
        p.error(f"--data {args.data} is not empty; give a new or empty directory")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    procs = Processes()
    ok = False
    try:
        with work_dir(args.data, keep=False) as root:
            try:
                ok = run_main(Demo(args, root, procs).run())
            finally:
                procs.stop()
    except KeyboardInterrupt:
        print("\nstopped (Ctrl-C); every process is down")
        return 0 if args.duration is None else 1
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
