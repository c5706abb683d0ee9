"""How fast the operator dashboard answers for a whole country: 3,321 communes (one node each) with a
year of downsampled history, dossiers with some conflicts, filled straight into the hub's SQLite
database; then every operator page, GET /api/nodes, /api/alerts and /metrics are timed over HTTP.

    .venv/bin/python bench/dashboard_scale.py [--nodes 3321] [--days 365] [--rounds 20]

History as the hub keeps it with `history_days = 365`: every exchange of the last 48 h (one every
10 minutes), hourly sums for 30 days, daily sums for the rest of the year.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central_hub import config as hub_config
from central_hub.app import MONITOR, build_app, open_accounts
from central_hub.config import HubConfig
from central_hub.nodes import fleet
from central_hub.store import HubStore
from protocol import codec
from protocol.merge import DossierState, Write, to_plain

HOUR = 3_600_000
DAY = 24 * HOUR
PASSWORD = "bench-password-1"
TARGET_MS = 300


def state(dossier: str, commune: str, code: str, received: int, conflicted: bool) -> bytes:
    """A dossier's folded state as the hub stores it: a birth registration received at the
    desk, in processing; `conflicted`: the commune and the province wrote two addresses."""
    node, hlc = f"{commune}.01", received << 16

    def write(value: object, origin: str = node, seq: int = 1) -> tuple[Write, ...]:
        return (Write(value, origin, seq, hlc + seq, "clerk1", {}),)

    registers = {"applicant.full_name": write(f"Nguyễn Văn {code[-4:]}"),
                 "applicant.citizen_id": write("008090001234"),
                 "applicant.address": write("Thôn Nà Mạ"), "status": write("processing"),
                 "due_at": write(received + 3 * DAY), "fields.child_name": write("Nguyễn Thị An")}
    if conflicted:
        registers["applicant.address"] = write("Thôn Bản Khuổi", "hub", 1) + \
            registers["applicant.address"]
    header = {"procedure": "1.001193", "commune": commune, "code": code, "received_at": received,
              "channel": "counter", "origin": node, "seq": 1, "hlc": hlc, "actor": "clerk1"}
    vv = {node: 1, "hub": 1} if conflicted else {node: 1}
    return codec.pack(to_plain(DossierState(dossier, header, registers, vv,
                                            frozenset((o, 1) for o in vv), last_hlc=hlc + 1)))


def fill(db: Path, nodes: int, days: int, now: int, seed: int = 7) -> dict[str, int]:
    """Nodes, communes, dossiers and history rows, in bulk."""
    rnd = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    indexes = [r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND "
        "tbl_name IN ('node_sessions', 'node_history')")]
    for name in [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND "
            "tbl_name IN ('node_sessions', 'node_history')")]:
        conn.execute(f"DROP INDEX {name}")  # built once at the end: much faster
    counts = {"nodes": nodes, "sessions": 0, "hourly": 0, "daily": 0, "dossiers": 0}
    communes, node_rows, dossiers = [], [], []
    for i in range(nodes):
        code = f"{10000 + i:05d}"
        node = f"{code}.01"
        communes.append((code, f"Xã Số {i + 1}"))
        kind = rnd.random()
        seen: int | None = now - rnd.randint(0, 600) * 1000
        success = seen
        pending, oldest = rnd.randint(0, 3), rnd.randint(0, 60)
        if kind < 0.03:  # silent for two days
            seen = success = now - 2 * DAY - rnd.randint(0, DAY)
            pending, oldest = rnd.randint(10, 400), 3 * DAY
        elif kind < 0.08:  # old backlog
            pending, oldest = rnd.randint(50, 900), rnd.randint(3600, 20000)
        elif kind < 0.09:  # never synced
            seen = success = None
            pending = oldest = 0
        stats = {"pending_events": pending, "pending_blobs": rnd.randint(0, 4),
                 "oldest_pending_age_s": oldest, "disk_free": rnd.randint(2, 400) * 1024**3,
                 "clock_offset_ms": rnd.randint(-3000, 3000), "dossiers": 300,
                 "app_version": "0.1.0", "last_error": ""}
        node_rows.append((node, code, secrets.token_bytes(32), now - 400 * DAY, None, seen,
                          success, "0.1.0", 1, json.dumps(stats), None, 5000, 40, 10**8, 10**8,
                          0))
        for k in range(30):
            received = now - rnd.randint(0, 300) * DAY
            dossier, conflicted = f"{i:08d}-0000-7000-8000-{k:012d}", rnd.random() < 0.01
            dossiers.append((dossier, code, f"{code}-{k:04d}", "1.001193", "processing",
                             f"Nguyễn Văn {k:04d}", f"nguyen van {k:04d}", "008090001234",
                             received, received + 3 * DAY, int(conflicted), received << 16,
                             state(dossier, code, f"{code}-{k:04d}", received, conflicted)))
    conn.executemany("INSERT OR REPLACE INTO communes VALUES (?,?)", communes)
    conn.executemany(
        "INSERT INTO nodes(node, commune, credential_hash, enrolled_at, revoked_at, last_seen_at,"
        " last_success_at, app_version, protocol, stats, last_error, sessions_ok, "
        "sessions_failed, bytes_in, bytes_out, clock_ahead_events) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", node_rows)
    conn.executemany(
        "INSERT INTO dossiers(id, commune, code, procedure, status, name, name_fold, citizen_id, "
        "received_at, due_at, conflicts, updated_hlc, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        dossiers)
    counts["dossiers"] = len(dossiers)
    raw_start = now - 48 * HOUR
    hour_start = fleet.local_day_start(now - 30 * DAY)
    day_start = fleet.local_day_start(now - days * DAY)
    for i in range(nodes):
        node = f"{10000 + i:05d}.01"
        sessions = [(node, at, 1, None, 9000, 4000, 3, 1, rnd.randint(0, 5), 30, 5, 40)
                    for at in range(raw_start, now, 10 * 60_000)]
        hourly = [(node, 3600, at, 6, 0, 54000, 24000, 18, 6, 5, 60, 5, 240, 60)
                  for at in range(hour_start, raw_start // HOUR * HOUR, HOUR)]
        daily = [(node, 86400, at, 144, 1, 1296000, 576000, 432, 144, 9, 600, 5, 5760, 90)
                 for at in range(day_start, hour_start, DAY)]
        conn.executemany("INSERT INTO node_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", sessions)
        conn.executemany("INSERT INTO node_history VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         hourly + daily)
        counts["sessions"] += len(sessions)
        counts["hourly"] += len(hourly)
        counts["daily"] += len(daily)
    for sql in indexes:
        conn.execute(sql)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


async def timed(http: aiohttp.ClientSession, url: str, rounds: int,
                headers: dict[str, str] | None = None) -> tuple[list[float], list[float], int]:
    """Wall and CPU milliseconds of each request (server and client share this process: CPU
    time is what the request costs when the machine is not shared with other work)."""
    times, cpu, size = [], [], 0
    for _ in range(rounds):
        started, cpu0 = time.perf_counter(), time.process_time()
        async with http.get(url, headers=headers) as resp:
            body = await resp.read()
            assert resp.status == 200, (url, resp.status, body[:300])
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu0) * 1000)
        size = len(body)
    return times, cpu, size


async def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--nodes", type=int, default=3321)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--reuse", type=Path, help="time a directory filled by an earlier run")
    args = p.parse_args()
    config = HubConfig(history_days=args.days, health_check_s=3600, history_prune_s=3600)
    if args.reuse:
        root = args.reuse
    else:
        root = Path(tempfile.mkdtemp(prefix="dashboard-scale-"))
        hub_config.save(root, config)
        store = await HubStore.open(root / "hub.db")
        now = store.now_ms()
        await store.close()
        started = time.perf_counter()
        counts = fill(root / "hub.db", args.nodes, args.days, now)
        fill_s = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in root.glob("hub.db*")) / 2**20
        print(f"filled {counts} in {fill_s:.1f} s; database {size_mb:.0f} MB in {root}")

    store = await HubStore.open(root / "hub.db")
    accounts = await open_accounts(root)
    if not any(u["username"] == "op" for u in await accounts.users()):
        await accounts.add_user("op", PASSWORD, "operator")
    app = build_app(store, accounts, config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    monitor = app[MONITOR]
    while monitor.checks < 1:  # noqa: ASYNC110 - the first check records every node's state
        await asyncio.sleep(0.05)
    results = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(base + "/api/login",
                                 json={"username": "op", "password": PASSWORD}) as resp:
                token = (await resp.json())["token"]
            async with http.get(base + "/login") as resp:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert csrf
            async with http.post(base + "/login", data={
                    "csrf": csrf.group(1), "username": "op", "password": PASSWORD}) as resp:
                assert resp.status == 200
            bearer = {"Authorization": f"Bearer {token}"}
            node = "10007.01"
            dossier = "00000007-0000-7000-8000-000000000003"
            snapshot = monitor.snapshot
            # (name, path, headers, pays for the fleet): with `afresh`, the page is timed twice:
            # computing every node's item itself (max_age 0: the worst case, at most once per
            # 2 s in service) and on the shared snapshot (what the next operators get).
            for name, path, headers, fleet_wide in (
                    ("overview  GET /", "/", None, True),
                    ("overview, filtered  GET /?health=not_ok", "/?health=not_ok", None, True),
                    ("GET /api/nodes", "/api/nodes", bearer, True),
                    ("alerts  GET /alerts", "/alerts", None, True),
                    ("GET /api/alerts", "/api/alerts", bearer, True),
                    ("nodes (manage)  GET /nodes", "/nodes", None, True),
                    ("GET /metrics", "/metrics", None, True),
                    ("node page, 24 h", f"/nodes/{node}", None, False),
                    ("node page, 1 year", f"/nodes/{node}?window=1y", None, False),
                    ("conflicts  GET /conflicts", "/conflicts", None, False),
                    ("dossier search  GET /dossiers?q=…", "/dossiers?q=10007-0003", None,
                     False),
                    ("one dossier  GET /dossiers/{id}", f"/dossiers/{dossier}", None, False),
                    ("statistics  GET /stats", "/stats", None, False)):
                for label, max_age in (("afresh", 0.0), ("shared", 1e9)) if fleet_wide \
                        else (("", 1e9),):
                    snapshot.max_age_s = max_age
                    await timed(http, base + path, 2, headers)  # warm up
                    times, cpu, size = await timed(http, base + path, args.rounds, headers)
                    results.append((f"{name} {label}".rstrip(), statistics.median(times),
                                    sorted(times)[max(0, int(len(times) * 0.95) - 1)],
                                    statistics.median(cpu), size))
    finally:
        await runner.cleanup()
    load = os.getloadavg()[0]
    print(f"\n{args.nodes} nodes, {args.days} days of history, {args.rounds} rounds each "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs):")
    print(f"{'request':52} {'median':>9} {'p95':>9} {'CPU':>9} {'bytes':>10}")
    for name, median, p95, cpu_ms, size in results:
        print(f"{name:52} {median:7.1f}ms {p95:7.1f}ms {cpu_ms:7.1f}ms {size:10d}")
    slow = [name for name, median, *_ in results if median >= TARGET_MS]
    print(f"\ntarget < {TARGET_MS} ms median for every page: "
          + (f"missed by {', '.join(slow)}" if slow else "met"))
    return 0

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
