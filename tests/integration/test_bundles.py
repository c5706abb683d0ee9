"""Store-and-forward bundles on real processes: `central-hub serve` over HTTPS with mutual TLS,
nodes enrolled by `edge-node init`, every bundle written and read by the CLI (`edge-node bundle
export|import`, `central-hub bundle import|export`), real SQLite files compared row by row.

Node A's link is dead: its dossiers and scans travel to the hub on a stick, the answer comes
back the same way. Desk B of the same commune syncs live all along. Everyone converges, a bundle
imported twice changes nothing, bundles crossing each other or a live sync are harmless, and a
damaged, misaddressed, replayed or revoked bundle is refused in one line with nothing applied."""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from central_hub import tls
from edge_node.identity import Identity
from protocol import bundle
from protocol.messages import SyncResponse, encode_response
from service import bundlefile, pki
from tests.faults.procs import ROOT, Procs, free_port, intake_offline
from tests.harness import birth
from tests.security.tlsnet import applied_digest

COMMUNE = "02245"
SCAN = b"\x89PNG\r\n\x1a\n" + random.Random(16).randbytes(750_000)  # two chunks in a bundle


async def run(*args: str) -> tuple[int, str, str]:
    """`python -m ARGS…`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def ok(*args: str) -> str:
    code, out, err = await run(*args)
    assert code == 0, f"{' '.join(args[:3])} failed ({code}): {err}{out}"
    return out


async def refused(*args: str) -> str:
    """Run a command that must fail in one line, without a traceback; its message."""
    code, out, err = await run(*args)
    assert code == 1, (code, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@dataclass
class World:
    root: Path
    hub: Path
    a: Path
    b: Path
    url: str
    procs: Procs

    def file(self, name: str) -> Path:
        return self.root / "stick" / name

    async def edge_export(self, name: str) -> Path:
        await ok("edge_node", "bundle", "export", "--data", str(self.a), str(self.file(name)))
        return self.file(name)

    async def hub_import(self, path: Path) -> str:
        return await ok("central_hub", "bundle", "import", "--data", str(self.hub), str(path))

    async def hub_export(self, name: str, node: str) -> Path:
        await ok("central_hub", "bundle", "export", "--data", str(self.hub), "--node", node,
                 str(self.file(name)))
        return self.file(name)

    async def edge_import(self, path: Path, data: Path | None = None) -> str:
        return await ok("edge_node", "bundle", "import", "--data", str(data or self.a),
                        str(path))

    async def sync(self, data: Path) -> str:
        return await ok("edge_node", "sync", "--data", str(data))


async def _serving(url: str, within_s: float = 60) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the hub did not serve HTTPS in time")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    hub = tmp_path / "hub"
    await ok("central_hub", "init", "--data", str(hub))
    assert tls.has_tls(hub)
    tokens = [(await ok("central_hub", "enroll", "--data", str(hub), "--commune",
                        COMMUNE)).strip() for _ in range(2)]
    procs = Procs()
    port = free_port()
    procs.start("hub", ["central_hub", "serve", "--data", str(hub), "--host", "127.0.0.1",
                        "--port", str(port)], tmp_path / "hub.log")
    url = f"https://127.0.0.1:{port}"
    try:
        await _serving(url)
        a, b = tmp_path / "a", tmp_path / "b"
        for data, token in ((a, tokens[0]), (b, tokens[1])):
            await ok("edge_node", "init", "--data", str(data), "--hub", url, "--token", token)
        (tmp_path / "stick").mkdir()
        yield World(tmp_path, hub, a, b, url, procs)
    finally:
        await procs.stop_all()


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def commune_events(db: Path) -> set[tuple[object, ...]]:
    """The commune's dossier events a replica holds: (origin, seq, hash)."""
    return {(o, s, bytes(h)) for o, s, h in rows(db, "SELECT origin, seq, hash FROM events "
                                                     "WHERE origin NOT LIKE 'hub%'")}


def edge_digest(data: Path) -> str:
    """Everything an edge has applied or remembers: its events, dossiers, meta, blob queue."""
    h = hashlib.sha256()
    for sql in ("SELECT origin, seq, hash FROM events ORDER BY origin, seq",
                "SELECT id, state FROM dossiers ORDER BY id",
                "SELECT key, value FROM meta ORDER BY key",
                "SELECT * FROM blobs ORDER BY sha256, direction"):
        h.update(repr(rows(data / "edge.db", sql)).encode())
    return h.hexdigest()


def hub_digest(hub: Path) -> tuple[dict[str, str], list[tuple[object, ...]]]:
    return applied_digest(hub / "hub.db"), rows(
        hub / "hub.db", "SELECT key, value FROM meta WHERE key LIKE 'bundle:%' ORDER BY key")


def node_of(data: Path) -> str:
    text = (data / "node.toml").read_text()
    return text.split('node = "', 1)[1].split('"', 1)[0]


def converged(w: World) -> set[tuple[object, ...]]:
    at_a, at_b = commune_events(w.a / "edge.db"), commune_events(w.b / "edge.db")
    at_hub = commune_events(w.hub / "hub.db")
    assert at_a == at_b == at_hub, (len(at_a), len(at_b), len(at_hub))
    return at_hub


async def test_a_round_trip_by_stick_converges_with_a_desk_syncing_live(world: World) -> None:
    w = world
    node_a = node_of(w.a)
    await intake_offline(w.a, [birth(f"Người A{i}", f"00809000{i:04d}") for i in range(3)],
                         scans=((0, SCAN),))
    await intake_offline(w.b, [birth("Người B0", "008091000001")])
    await w.sync(w.b)
    there = await w.edge_export("a-1.bundle")
    out = await w.hub_import(there)
    assert "4 new event(s)" in out and "seq 4" in out and "1 scan(s) stored" in out, out
    sha = hashlib.sha256(SCAN).hexdigest()
    assert (w.hub / "blobs" / sha[:2] / sha).read_bytes() == SCAN
    await intake_offline(w.b, [birth("Người B1", "008091000002")])
    await w.sync(w.b)  # B receives A's dossiers from the hub, sends its second one
    back = await w.hub_export("a-1.answer", node_a)
    out = await w.edge_import(back)
    assert "2 new event(s)" in out and "up to seq 4" in out, out
    events = converged(w)
    assert len(events) == 6
    assert rows(w.a / "edge.db", "SELECT value FROM meta WHERE key='ack'") == [(4,)]
    assert rows(w.a / "edge.db", "SELECT done FROM blobs WHERE direction='up'") == [(1,)]

    # twice: no change on either side
    hub_before, edge_before = hub_digest(w.hub), edge_digest(w.a)
    assert "imported already" in await w.hub_import(there)
    assert "imported already" in await w.edge_import(back)
    assert hub_digest(w.hub) == hub_before and edge_digest(w.a) == edge_before

    # nothing pending: a new bundle carries no events, and its answer nothing new
    assert "0 event(s)" in (await ok("edge_node", "bundle", "export", "--data", str(w.a),
                                     str(w.file("a-2.bundle"))))
    assert "0 new event(s)" in await w.hub_import(w.file("a-2.bundle"))
    assert "0 new event(s)" in await w.edge_import(await w.hub_export("a-2.answer", node_a))
    assert converged(w) == events


async def test_bundles_out_of_order_and_interleaved_with_live_sync(world: World) -> None:
    w = world
    node_a = node_of(w.a)
    await intake_offline(w.a, [birth("Người A0", "008090000100")])
    first = await w.edge_export("a-1.bundle")
    await intake_offline(w.a, [birth("Người A1", "008090000101")])
    second = await w.edge_export("a-2.bundle")  # carries both: nothing was acknowledged
    # the later stick arrives first; the earlier one after it has nothing left to give
    assert "2 new event(s)" in await w.hub_import(second)
    before = hub_digest(w.hub)
    message = await refused("central_hub", "bundle", "import", "--data", str(w.hub), str(first))
    assert "replayed old bundle" in message, message
    assert hub_digest(w.hub) == before

    # answers crossing: the older answer is refused at the edge once the newer one is in
    await intake_offline(w.b, [birth("Người B0", "008091000100")])
    await w.sync(w.b)
    answer_1 = await w.hub_export("a-1.answer", node_a)
    await intake_offline(w.b, [birth("Người B1", "008091000101")])
    await w.sync(w.b)
    answer_2 = await w.hub_export("a-2.answer", node_a)
    assert "2 new event(s)" in await w.edge_import(answer_2)
    before_edge = edge_digest(w.a)
    message = await refused("edge_node", "bundle", "import", "--data", str(w.a), str(answer_1))
    assert "replayed old bundle" in message and edge_digest(w.a) == before_edge
    converged(w)

    # interleaved with live sync: A's link comes back between export and import
    await intake_offline(w.a, [birth("Người A2", "008090000102")])
    third = await w.edge_export("a-3.bundle")
    await w.sync(w.a)  # the live sync delivers A2 before the stick does
    assert "0 new event(s)" in await w.hub_import(third)
    await intake_offline(w.b, [birth("Người B2", "008091000102")])
    await w.sync(w.b)
    late = await w.hub_export("a-3.answer", node_a)  # from the position the last bundle said
    await w.sync(w.a)  # ... while A syncs live again, past it
    cursor = rows(w.a / "edge.db", "SELECT value FROM meta WHERE key='cursor'")
    assert "0 new event(s)" in await w.edge_import(late)
    assert rows(w.a / "edge.db", "SELECT value FROM meta WHERE key='cursor'") == cursor
    assert len(converged(w)) == 6
    code, out, _ = await run("edge_node", "sync", "--data", str(w.a))
    assert code == 0 and "sent 0 events" in out, out  # nothing was sent twice or left behind


def sections_length(path: Path) -> int:
    """The length of a bundle's sections, from its header: the signature ends that far from
    the end of the file."""
    raw = path.read_bytes()
    start = len(bundle.MAGIC) + bundle.PRELUDE.size
    length = bundle.read_prelude_start(raw[:start])
    return bundle.decode_header(raw[start:start + length]).body_len


def forge_answer(other: Path, node: str, path: Path, hub_print: str | None) -> Path:
    """A hub answer for `node` written and signed by the hub at `other` (its server key)."""
    ca = pki.load_cert((tls.tls_dir(other) / tls.CA_CERT).read_bytes())
    server = (tls.tls_dir(other) / tls.SERVER_CERT).read_text(encoding="ascii")
    writer = bundlefile.Writer(path)
    writer.add(bundle.EVENTS, encode_response(SyncResponse(0, [], 0, False, 1)))
    writer.finish(lambda length, sha, count: bundle.Header(
        bundle.HUB, node, "hub", hub_print or pki.fingerprint(ca), "", int(time.time() * 1000),
        1, {"from": 0, "to": 0, "ack": 0, "reset": 1}, length, sha, count, server),
        pki.load_key((tls.tls_dir(other) / tls.SERVER_KEY).read_bytes()))
    return path


def damaged(path: Path, name: str, at: int | None = None, cut: int | None = None) -> Path:
    data = bytearray(path.read_bytes())
    if at is not None:
        data[at] ^= 0x40
    if cut is not None:
        data = data[:cut]
    out = path.with_name(name)
    out.write_bytes(bytes(data))
    return out


async def test_refused_bundles_apply_nothing(world: World) -> None:
    w = world
    node_a, node_b = node_of(w.a), node_of(w.b)
    await intake_offline(w.a, [birth("Người A0", "008090000200")], scans=((0, SCAN),))
    good = await w.edge_export("a-1.bundle")
    size = good.stat().st_size
    assert size > 750_000  # the scan travels in it
    body_at = size - sections_length(good)
    before = hub_digest(w.hub)

    async def hub_refuses(path: Path, expect: str, data: Path | None = None) -> None:
        message = await refused("central_hub", "bundle", "import", "--data",
                                str(data or w.hub), str(path))
        assert expect in message, message
        assert hub_digest(w.hub) == before

    await hub_refuses(damaged(good, "cut.bundle", cut=size - 1000), "bundle truncated")
    await hub_refuses(damaged(good, "cut-head.bundle", cut=30), "bundle truncated")
    await hub_refuses(damaged(good, "body.bundle", at=size - 5000), "bundle corrupted")
    await hub_refuses(damaged(good, "head.bundle", at=200), "bundle corrupted: the signer")
    await hub_refuses(damaged(good, "sig.bundle", at=body_at - 20), "bundle signature invalid")
    await hub_refuses(damaged(good, "magic.bundle", at=0), "not a commune-sync bundle")
    await hub_refuses(damaged(good, "version.bundle", at=13), "bundle format version")
    stranger = tls.tls_dir(w.root / "other")  # another province's hub
    await ok("central_hub", "init", "--data", str(w.root / "other"))
    assert stranger.is_dir()
    await hub_refuses(good, "bundle is for another hub", data=w.root / "other")
    await hub_refuses(damaged(good, "a.txt", cut=0), "bundle truncated")

    # the edge refuses what is not its hub's answer for itself
    await intake_offline(w.b, [birth("Người B0", "008091000200")])
    await w.sync(w.b)
    for_b = await w.hub_export("b.answer", node_b)
    edge_before = edge_digest(w.a)

    async def edge_refuses(path: Path, expect: str) -> None:
        message = await refused("edge_node", "bundle", "import", "--data", str(w.a), str(path))
        assert expect in message, message
        assert edge_digest(w.a) == edge_before

    await edge_refuses(for_b, f"bundle is for node {node_b}; this is node {node_a}")
    await edge_refuses(good, "this is a commune's bundle")
    for_a = await w.hub_export("a.answer", node_a)
    await edge_refuses(damaged(for_a, "a-cut.answer", cut=for_a.stat().st_size - 10),
                       "bundle truncated")
    await edge_refuses(damaged(for_a, "a-bad.answer", at=for_a.stat().st_size - 10),
                       "bundle corrupted")
    # an answer signed by another province's hub: named for this province, or for its own
    for hub_print in (pki.fingerprint(Identity(w.a).ca()), None):
        forged = forge_answer(w.root / "other", node_a, w.file("forged.answer"), hub_print)
        await edge_refuses(forged, "did not issue" if hub_print else "bundle is for another hub")
    assert "1 new event(s)" in await w.edge_import(for_a)  # the intact one still applies

    # a node revoked for cause delivers nothing, not even by stick
    await ok("central_hub", "node", "revoke", "--data", str(w.hub), "--node", node_a)
    before = hub_digest(w.hub)
    await hub_refuses(good, f"node {node_a} is revoked")


async def test_a_replaced_pcs_recovered_disk_delivers_once(world: World) -> None:
    """`central-hub node replace` revokes the old node's credential and its certificates with
    the reason `replaced`: its recovered disk may still deliver by stick, exactly once."""
    w = world
    node_a = node_of(w.a)
    await intake_offline(w.a, [birth("Người A0", "008090000300")])
    await w.sync(w.a)  # the first dossier reached the hub before the PC died
    await intake_offline(w.a, [birth("Người A1", "008090000301")])
    stick = await w.edge_export("old-disk.bundle")
    code, _, err = await run("central_hub", "node", "replace", "--data", str(w.hub),
                             "--node", node_a)
    assert code == 0, err
    code, _, err = await run("edge_node", "sync", "--data", str(w.a))
    assert code != 0 and "revoked" in err, err  # its live sync is refused ...
    out = await w.hub_import(stick)  # ... its stick is taken, once
    assert "1 new event(s)" in out and "seq 2" in out, out
    assert len(commune_events(w.hub / "hub.db")) == 2
    before = hub_digest(w.hub)
    assert "imported already" in await w.hub_import(stick)
    assert hub_digest(w.hub) == before
    message = await refused("central_hub", "bundle", "export", "--data", str(w.hub), "--node",
                            node_a, str(w.file("old.answer")))
    assert "revoked (or replaced)" in message
