"""Desk UI speed: fill an edge store with N realistic dossiers, serve the desk, time pages and searches.

Targets (issue 5): with 100,000 dossiers every page renders in < 200 ms and a search answers in
< 100 ms, timed over HTTP on loopback (request to last byte) with a logged-in session.

The shortcut that makes filling fast: events are built here in time order (creates, transitions,
a few edits and commune/province conflicts) with `protocol.commands.create_draft` for the real
payloads and due dates, stamped as the node's own chain (seq, hlc = the event's time, prev hash), and
applied through `DossierStore._apply_events` in transactions of BATCH events: the same fold and the
same rows as live writes, without one transaction, one lock round and one HTTP request per event.
The node's clock, ack and per-day code counters are then set as if it had synced. No hub runs: the
sync indicator honestly shows the hub as unreachable.

    python bench/ui_speed.py [--dossiers 100000] [--repeat 15] [--data DIR] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from edge_node import config as edge_config  # noqa: E402
from edge_node.app import STORE, make_app, open_accounts  # noqa: E402
from edge_node.config import EdgeConfig  # noqa: E402
from edge_node.store import EdgeStore  # noqa: E402
from protocol import HUB_ORIGIN, codec  # noqa: E402
from protocol.calendar import VN_TZ, local, to_ms  # noqa: E402
from protocol.commands import NewDossier, create_draft  # noqa: E402
from protocol.events import Event, uuid7  # noqa: E402
from protocol.hlc import pack  # noqa: E402
from service.sqlite import transaction  # noqa: E402

NODE, COMMUNE, AGENCY = "02245.01", "02245", "02245.01"
PASSWORD = "bench-password-1"
BATCH = 20_000
DAY = 86_400_000
HOUR = 3_600_000
PAGE_TARGET_MS, SEARCH_TARGET_MS = 200.0, 100.0

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
          "Dương", "Lý", "Ma", "Nông", "Triệu", "Bàn", "Lục", "Hà", "Sầm", "Quan", "Lương")
MIDDLE_M = ("Văn", "Đức", "Minh", "Quang", "Hữu", "Thanh", "Xuân", "Công")
MIDDLE_F = ("Thị", "Ngọc", "Thu", "Thanh", "Minh", "Hồng", "Kim", "Thúy")
GIVEN_M = ("An", "Bình", "Cường", "Dũng", "Hùng", "Quân", "Thắng", "Tuấn", "Sơn", "Long",
           "Hải", "Nam", "Phong", "Khánh", "Lâm", "Toàn", "Vinh", "Đạt", "Hiếu", "Trung")
GIVEN_F = ("Hoa", "Lan", "Mai", "Nga", "Hương", "Linh", "Phương", "Trang", "Yến", "Vy",
           "Thảo", "Hạnh", "Duyên", "Nhung", "Loan", "Huyền", "Diệp", "Tâm", "Ngân", "Quyên")
VILLAGES = ("Nà Khá", "Khuổi Phầy", "Bản Tát", "Nà Mỏ", "Khuôn Khiển", "Phiêng Mơ", "Nà Chác",
            "Bản Khuổi", "Nà Mạ", "Thôn Trung Tâm")
ETHNIC = ("Tày", "Dao", "Kinh", "Mông", "Nùng", "Sán Chay")
PROCEDURES = (("1.001193", 35), ("2.000815", 20), ("1.004873", 15), ("1.000894", 10),
              ("2.000884", 9), ("1.000656", 5), ("2.000635", 5), ("1.012812", 1))


class Maker:
    """Deterministic realistic people and forms."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids: set[str] = set()

    def person(self) -> tuple[str, str]:
        r = self.rng
        male = r.random() < 0.5
        name = " ".join((r.choice(FAMILY), r.choice(MIDDLE_M if male else MIDDLE_F),
                         r.choice(GIVEN_M if male else GIVEN_F)))
        year = r.randint(1950, 2006)
        century = (0 if year < 2000 else 2) + (0 if male else 1)
        while True:
            cid = f"008{century}{year % 100:02d}{r.randrange(10**6):06d}"
            if cid not in self.ids:
                self.ids.add(cid)
                return name, cid

    def fields(self, code: str, day: str) -> dict[str, Any]:
        r = self.rng
        if code == "1.001193":
            child, _ = self.person()
            mother, _ = self.person()
            return {"relationship": r.choice(("Cha", "Mẹ", "Ông", "Bà")),
                    "child_full_name": child, "child_birth_date": day, "child_sex":
                    r.choice(("Nam", "Nữ")), "child_ethnicity": r.choice(ETHNIC),
                    "child_nationality": "Việt Nam", "child_birth_place": "Trạm y tế xã Côn Lôn",
                    "mother_full_name": mother, "mother_birth_year": str(r.randint(1975, 2004))}
        if code == "1.000656":
            dead, cid = self.person()
            return {"deceased_full_name": dead, "deceased_citizen_id": cid, "death_date": day,
                    "death_place": "Tại nhà", "relationship": "Con"}
        if code == "1.000894":
            (h, hc), (w, wc) = self.person(), self.person()
            return {"husband_full_name": h, "husband_birth_date": "1998-03-02",
                    "husband_citizen_id": hc, "wife_full_name": w,
                    "wife_birth_date": "2000-07-19", "wife_citizen_id": wc}
        if code == "1.004873":
            return {"purpose": "Đăng ký kết hôn", "marital_status": "Chưa đăng ký kết hôn"}
        if code in ("2.000815", "2.000635"):
            key = "document_name" if code == "2.000815" else "record_type"
            return {key: r.choice(("Bằng tốt nghiệp", "Giấy khai sinh", "Học bạ")),
                    "copies": r.randint(1, 5)}
        if code == "2.000884":
            return {"document_name": "Giấy ủy quyền"}
        return {"parcel": f"Thửa {r.randint(1, 900)}, tờ bản đồ {r.randint(1, 40)}",
                "other_party": self.person()[0], "summary": "Tranh chấp ranh giới"}


def plan(store: EdgeStore, n: int, now: int, seed: int) -> list[tuple[int, int, str, Any]]:
    """(time, dossier index, kind, payload) for N dossiers received over three years, in order."""
    maker = Maker(seed)
    rng = maker.rng
    catalogue = store.catalogue
    codes = [c for c, w in PROCEDURES for _ in range(w)]
    days = 3 * 365
    today_start = to_ms(datetime.combine(local(now).date(), datetime.min.time(), VN_TZ))
    counters: dict[str, int] = {}
    items: list[tuple[int, int, str, Any]] = []
    for i in range(n):
        if i < n - 60:
            back = int(days * (1 - (i / n)) ** 1.4) + 1  # older days thinner, recent days busier
            day = local(today_start - back * DAY)
            received = to_ms(day.replace(hour=7, minute=30)) + rng.randrange(int(9.5 * HOUR))
        else:  # the last 60: this morning's intake
            received = today_start + int(7.5 * HOUR) + (i - (n - 60)) * 5 * 60_000
        received = min(received, now - 60_000)
        proc = catalogue.get(rng.choice(codes))
        assert proc is not None
        name, cid = maker.person()
        village = rng.choice(VILLAGES)
        applicant = {"full_name": name, "citizen_id": cid, "phone": f"09{rng.randrange(10**8):08d}",
                     "address": f"Thôn {village}, xã Côn Lôn"}
        yymmdd = local(received).strftime("%y%m%d")
        counters[yymmdd] = counters.get(yymmdd, 0) + 1
        draft = create_draft(
            NewDossier(proc, applicant, proc.check_fields(
                maker.fields(proc.code, local(received - 3 * DAY).date().isoformat()),
                local(received).date()), "counter"),
            commune=COMMUNE, code=f"{AGENCY}-{yymmdd}-{counters[yymmdd]:04d}",
            received_ms=received, calendar=store.calendar)
        items.append((received, i, "create", draft.payload))
        due = int(draft.payload["due_at"])
        age_days = (now - received) / DAY
        roll = rng.random()
        t = received + 20 * 60_000
        path: tuple[str, ...]
        if age_days > 30:
            path = ("processing", "resolved", "returned") if roll < 0.92 else \
                ("withdrawn",) if roll < 0.95 else ("processing", "stopped") if roll < 0.97 \
                else ("processing",)
        elif received >= today_start:
            path = () if roll < 0.8 else ("processing",)
        else:
            path = ("processing", "resolved", "returned") if roll < 0.5 else \
                ("processing", "resolved") if roll < 0.7 else ("processing",) if roll < 0.85 \
                else ("processing", "supplement_requested") if roll < 0.93 else ()
        prev = "accepted"
        for target in path:
            if target == "resolved":
                late = rng.random() < 0.05
                t = max(t + 60_000, due + (DAY if late else -rng.randrange(1, 6) * HOUR))
            elif target == "returned":
                t += rng.randrange(1, 48) * HOUR
            else:
                t += rng.randrange(5, 120) * 60_000
            t = min(t, now - 1000)
            note = "Giấy chứng sinh (bản chính)" if target == "supplement_requested" else ""
            items.append((t, i, "transition", {"from": prev, "to": target,
                                               **({"note": note} if note else {})}))
            prev = target
        if not path and age_days < 20 and rng.random() < 0.03:  # commune and province disagree
            items.append((received + HOUR, i, "conflict", f"Thôn {rng.choice(VILLAGES)}"))
    items.sort(key=lambda it: (it[0], it[1]))
    return items


async def fill(store: EdgeStore, n: int, seed: int) -> tuple[int, float]:
    """Apply the plan to the store; return (events, seconds)."""
    started = time.perf_counter()
    now = store.now_ms()
    items = plan(store, n, now, seed)
    rng = random.Random(seed + 1)
    ids: dict[int, str] = {}
    vv: dict[int, dict[str, int]] = {}
    seq = {NODE: 0, HUB_ORIGIN: 0}
    prev = {NODE: b"", HUB_ORIGIN: b""}
    last_hlc = 0
    batch: list[tuple[Event, bytes]] = []
    count = 0

    def stamp(origin: str, t: int, i: int, kind: str, payload: dict[str, Any],
              deps: dict[str, int], actor: str) -> None:
        nonlocal last_hlc, count
        seq[origin] += 1
        last_hlc = max(last_hlc + 1, pack(t, 0))
        event = Event(origin, seq[origin], last_hlc, ids[i], actor, kind,
                      codec.sorted_value(payload), codec.sorted_value(deps), prev[origin])
        digest = codec.event_hash(event)
        prev[origin] = digest
        batch.append((event, digest))
        vv.setdefault(i, {})[origin] = seq[origin]
        count += 1

    async def flush() -> None:
        async with store.lock, transaction(store.conn):
            await store._apply_events(batch)
        batch.clear()

    for t, i, kind, payload in items:
        if kind == "conflict":
            base = dict(vv[i])
            stamp(NODE, t, i, "set", {"set": {"applicant.address": payload + ", xã Côn Lôn"}},
                  base, "clerk1")
            stamp(HUB_ORIGIN, t + 1, i, "set", {"set": {"applicant.address": payload + " (tỉnh)"}},
                  base, "op")
        else:
            if kind == "create":
                ids[i] = uuid7(t, rng.randbytes(10))
            stamp(NODE, t, i, kind, payload, dict(vv.get(i, {})), "clerk1")
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    async with store.lock, transaction(store.conn):
        await store.set_meta("hlc", last_hlc)
        await store.set_meta("ack", seq[NODE])
        await store.set_meta("last_success_at", now - 5 * 60_000)
        async with store.conn.execute("SELECT code FROM dossiers") as cur:
            days: dict[str, int] = {}
            for (code,) in await cur.fetchall():
                _, day, num = code.rsplit("-", 2)
                days[day] = max(days.get(day, 0), int(num))
        await store.conn.executemany("INSERT OR REPLACE INTO code_counter VALUES (?,?)",
                                     list(days.items()))
    return count, time.perf_counter() - started


async def timed(http: aiohttp.ClientSession, url: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        async with http.get(url) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure(data: Path, config: EdgeConfig, repeat: int) -> list[tuple[str, str, list[float]]]:
    """Serve the desk from `data` and time its pages and searches."""
    app = await make_app(data, config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    store = app[STORE]
    results: list[tuple[str, str, list[float]]] = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + "/login") as resp:
                token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert token
            async with http.post(base + "/login", data={"csrf": token.group(1),
                                 "username": "leader1", "password": PASSWORD}) as resp:
                assert resp.status == 200 and str(resp.url).endswith("/"), resp.status
            async with store.reader.execute(
                    "SELECT id, code, citizen_id, name FROM dossiers ORDER BY received_at DESC "
                    "LIMIT 1 OFFSET 5000") as cur:
                row = await cur.fetchone()
            assert row
            did, code, cid, name = row
            state = await store.load_state(did, committed=True)
            assert state is not None
            child = str(state.value("fields.child_full_name") or name)
            phone = str(state.value("applicant.phone") or "0912345678")
            async with store.reader.execute(
                    "SELECT id FROM dossiers WHERE conflicts > 0 LIMIT 1") as cur:
                conflicted = await cur.fetchone()
            pages = [("home", "/"), ("list", "/dossiers"),
                     ("list: processing", "/dossiers?status=processing"),
                     ("list: overdue", "/dossiers?overdue=1"),
                     ("list: land mediation", "/dossiers?procedure=1.012812"),
                     ("list: page 50", None), ("dossier", f"/dossiers/{did}"),
                     ("dossier with conflict", f"/dossiers/{conflicted[0] if conflicted else did}"),
                     ("receipt (form 01)", f"/dossiers/{did}/receipt"),
                     ("new dossier form", "/dossiers/new?procedure=1.001193"),
                     ("edit form", f"/dossiers/{did}/edit"), ("statistics", "/stats"),
                     ("list: page 1000 (by number)", "/dossiers?page=1000"),
                     ("list: back from page 50", None),
                     ("register (today)", "/register"),
                     ("control slip (form 05)", f"/dossiers/{did}/control")]
            searches = [("name, no diacritics (common)", "/dossiers?q=nguyen+van"),
                        ("name, no diacritics (exact person)", "/dossiers?q=" + name.replace(" ", "+")),
                        ("name, nobody", "/dossiers?q=zzzz+khong+co"),
                        ("citizen id", "/dossiers?q=" + cid),
                        ("dossier code (QR scan)", "/dossiers?q=" + code),
                        ("code prefix (a day)", "/dossiers?q=" + code.rsplit("-", 1)[0]),
                        ("child's name (in the form)", "/dossiers?q=" + child.replace(" ", "+")),
                        ("phone", "/dossiers?q=" + phone),
                        ("a date (received, or in the form)", "/dossiers?q=20/11/2025"),
                        ("API: name", "/api/dossiers?q=nguyen+van&limit=50"),
                        ("API: citizen id", "/api/dossiers?q=" + cid)]
            url = "/dossiers"
            for _ in range(49):  # follow "next" 49 times: the 50th page
                async with http.get(base + url) as resp:
                    found = re.search(r'href="(/dossiers\?after=[^"]+)"', await resp.text())
                assert found
                url = found.group(1).replace("&amp;", "&")
            pages[5] = ("list: page 50", url)
            async with http.get(base + url) as resp:
                back = re.search(r'href="(/dossiers\?before=[^"]+)"', await resp.text())
            pages[-3] = ("list: back from page 50", back.group(1).replace("&amp;", "&")
                         if back else None)
            for kind, table in (("page", pages), ("search", searches)):
                for label, path in table:
                    if path is None:  # a page this version does not have
                        continue
                    await timed(http, base + path, 2)  # warm: first touch reads from disk
                    results.append((kind, label, await timed(http, base + path, repeat)))
    finally:
        await runner.cleanup()
    return results


def report(results: list[tuple[str, str, list[float]]]) -> bool:
    ok = True
    print(f"{'':6} {'what':38} {'median':>8} {'p95':>8} {'max':>8}  target")
    for kind, label, ms in results:
        ms = sorted(ms)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        target = PAGE_TARGET_MS if kind == "page" else SEARCH_TARGET_MS
        good = p95 < target
        ok &= good
        print(f"{kind:6} {label:38} {statistics.median(ms):7.1f}  {p95:7.1f}  {ms[-1]:7.1f}  "
              f"< {target:.0f} ms p95 {'ok' if good else 'SLOW'}")
    return ok


async def main(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="ui-speed-"))
    config = EdgeConfig(node=NODE, commune=COMMUNE, commune_name="Xã Côn Lôn", agency=AGENCY,
                        hub_url="http://127.0.0.1:9", credential="bench", auto_sync=False)
    try:
        if not (data / edge_config.DB_FILE).exists():
            data.mkdir(parents=True, exist_ok=True)
            edge_config.save(data, config)
            store = await EdgeStore.open(data / edge_config.DB_FILE, NODE, COMMUNE, AGENCY)
            try:
                events, seconds = await fill(store, args.dossiers, args.seed)
                dossiers = await store.dossier_count()
            finally:
                await store.close()
            size = (data / edge_config.DB_FILE).stat().st_size / 2**20
            print(f"filled {dossiers:,} dossiers ({events:,} events) in {seconds:.1f} s "
                  f"({events / seconds:,.0f} events/s); edge.db {size:.0f} MiB")
            accounts = await open_accounts(data)
            await accounts.add_user("leader1", PASSWORD, "leader")
            await accounts.conn.close()
        ok = report(await measure(data, config, args.repeat))
        print("all within target" if ok else "SOME ABOVE TARGET")
        return 0 if ok else 1
    finally:
        if not args.keep and not args.data:
            shutil.rmtree(data, ignore_errors=True)
        elif args.keep:
            print(f"kept {data}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", help="reuse or create the edge data dir here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(asyncio.run(main(parser.parse_args())))
