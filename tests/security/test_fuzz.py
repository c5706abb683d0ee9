"""Hypothesis mutates valid sync bodies — bit flips, truncation, splicing and insertion of the
compressed bytes and of the msgpack inside, and structural mutations of the decoded request
re-encoded — and sends them to the hub as an authenticated node.

Every base body is one the hub has already applied, and the hub holds three more events of each
node than any body carries: a mutant that still decodes is at most a harmless replay. (Were the
bodies to reach the head of a chain, duplicating their last row would make a genuinely new, valid
event — which the node is entitled to write.) The property: a malformed mutant is answered 4xx,
never 5xx or a crash; nothing is applied (log, dossiers, chain heads, quarantine, nodes
unchanged); the hub keeps serving.
`FUZZ_EXAMPLES` sets the number of in-process examples (10,000 by default; `make fuzz`: 100,000);
a fiftieth of that, at least 200, also goes over real HTTP.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import zstandard
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central_hub.app import build_app, open_accounts
from central_hub.config import HubConfig
from central_hub.exchange import serve
from central_hub.store import HubStore, Node
from edge_node.store import EdgeStore
from protocol.messages import SyncRequest, decode_response, encode_request
from service.hubtime import wall_clock_ms
from service.web import status_of
from tests.harness import birth
from tests.security.tlsnet import APPLIED

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
HELD, CARRIED = 12, 9  # events each node has at the hub; events the base bodies carry
HTTP_EXAMPLES = max(200, EXAMPLES // 50)
SYNC_TYPE = "application/vnd.commune-sync+zstd"
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None, "database": None, "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much, HealthCheck.large_base_example]}


@dataclass
class Corpus:
    """Valid bodies the hub has applied, the msgpack inside each, and each decoded."""

    nodes: int  # how many nodes may send them (the mutants pick one)
    bodies: list[bytes]
    plain: list[bytes]
    trees: list[Any]

    @classmethod
    def of(cls, nodes: int, bodies: list[bytes]) -> Corpus:
        plain = [zstandard.ZstdDecompressor().decompress(b) for b in bodies]
        return cls(nodes, bodies, plain, [msgpack.unpackb(p, raw=False) for p in plain])


@dataclass
class World:
    hub: HubStore
    nodes: list[Node]
    credentials: list[str]
    corpus: Corpus
    digest: Callable[[], dict[str, str]]


async def node_bodies(edge_db: Path, node: str, commune: str,
                      apply: Callable[[bytes], Awaitable[None]]) -> list[bytes]:
    """Write HELD events at `node`, have `apply` deliver all of them to the hub, and return two
    bodies carrying the first CARRIED (from the start and from seq 4)."""
    edge = await EdgeStore.open(edge_db, node, commune, node)
    try:
        for i in range(4):  # 12 events; the bodies carry only the first 9 (see above)
            view = await edge.dossiers.create(birth(name=f"Trần Thị {i}"), "clerk")
            view = await edge.dossiers.edit(view["id"], {"base": view["version"],
                                                "set": {"applicant.address": "Thôn Bản"}},
                                   "clerk")
            await edge.dossiers.comment(view["id"], {"text": "Đủ giấy tờ"}, "clerk")
        full, _, _ = await edge.sync.pending_batch(0, 1 << 20)
        await apply(encode_request(SyncRequest(node=node, events=[], batch=full, cursor=0,
                                               want_bytes=4096, clock_ms=wall_clock_ms())))
        bodies = []
        for after in (0, 4):
            batch, _, _ = await edge.sync.pending_batch(after, 1 << 20)
            batch["ev"] = batch["ev"][:CARRIED - after]
            bodies.append(encode_request(SyncRequest(
                node=node, events=[], batch=batch, cursor=after, want_bytes=4096,
                clock_ms=wall_clock_ms(), stats={"pending_events": 9, "last_error": ""},
                ref={"procedures": 1})))
        return bodies
    finally:
        await edge.close()


async def _world(root: Path) -> World:
    hub = await HubStore.open(root / "hub.db")
    await hub.conn.execute("PRAGMA synchronous=OFF")  # durability is not under test here
    nodes, credentials, bodies = [], [], []
    for commune in ("02245", "02245", "02246"):
        enrolled = await hub.trust.enroll(await hub.trust.create_enroll_token(commune, None))
        node = Node(enrolled.node, enrolled.commune)
        nodes.append(node)
        credentials.append(enrolled.credential)

        async def apply(body: bytes, node: Node = node) -> None:
            outcome = await serve(hub, node, body)
            assert outcome.error is None and decode_response(outcome.body).ack == HELD

        bodies += await node_bodies(root / f"{node.node}.db", node.node, commune, apply)
    bodies.append(encode_request(SyncRequest(node=nodes[0].node, events=[], cursor=3,
                                             want_bytes=100, clock_ms=wall_clock_ms())))
    reader = sqlite3.connect(f"file:{root / 'hub.db'}?mode=ro", uri=True)

    def digest() -> dict[str, str]:
        return {name: repr(list(reader.execute(sql))) for name, sql in APPLIED.items()}

    return World(hub, nodes, credentials, Corpus.of(len(nodes), bodies), digest)


# -- mutations ----------------------------------------------------------------------------------
# Few, cheap draws per example (indices are taken modulo the length), so 10,000 examples fit in
# `make test`; Hypothesis still picks every choice, replays failures and shrinks them.

INDEX = st.integers(0, 1 << 20)


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """A bit flip (or a few), truncation, insertion, deletion or duplication of `data`."""
    n = len(data)
    kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
    at = draw(INDEX) % n
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[at] ^= 1 << draw(st.integers(0, 7))
            at = (at + draw(st.integers(1, 64))) % n
        return bytes(out)
    if kind == "cut":
        return data[:at]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=32)) + data[at:]
    size = draw(st.integers(1, 128))
    if kind == "delete":
        return data[:at] + data[at + size:]
    return data[:at + size] + data[at:]


def splice(a: bytes, b: bytes, i: int, j: int) -> bytes:
    return a[:i % (len(a) + 1)] + b[j % (len(b) + 1):]


LEAVES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2**63, 2**64 - 1, -(2**63), 0.5, float("nan"),
                     b"", "", "create", "set", "02246.01", "hub", "x" * 5000, b"\x00" * 16,
                     b"\x00" * 32]),
    st.integers(-(2**63), 2**64 - 1), st.text(max_size=12), st.binary(max_size=40))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=6)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _paths(value, (*prefix, index))


def _copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_copy(v) for v in tree]
    return tree


@st.composite
def structural(draw: st.DrawFn, tree: Any, paths: list[tuple[Any, ...]]) -> bytes:
    """Replace, delete, wrap, duplicate or add next to one node of the decoded request; then
    re-encode (a second mutation sometimes follows)."""
    for round_ in range(draw(st.integers(1, 2))):
        if round_:
            paths = list(_paths(tree))
        else:
            tree = _copy(tree)
        path = paths[draw(INDEX) % len(paths)]
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "dup", "insert"]))
        if not path:
            tree = draw(VALUES) if op == "replace" else [tree]
            continue
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "replace":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, _copy(parent[key]))
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(VALUES)
    try:
        packed = msgpack.packb(tree, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        packed = b"\xc1"  # not encodable: send a byte msgpack never uses
    return zstandard.ZstdCompressor().compress(packed)


def mutants(corpus: Corpus) -> st.SearchStrategy[tuple[int, bytes]]:
    """(node index, body) pairs: mutated at the compressed, msgpack or structure level."""
    n = len(corpus.bodies)
    paths = [list(_paths(t)) for t in corpus.trees]
    compress = zstandard.ZstdCompressor().compress

    @st.composite
    def one(draw: st.DrawFn) -> tuple[int, bytes]:
        node = draw(st.integers(0, corpus.nodes - 1))
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        level = draw(st.sampled_from(["zstd", "msgpack", "splice", "splice-msgpack", "tree",
                                      "tree", "tree"]))
        if level == "zstd":
            body = draw(byte_mutation(corpus.bodies[i]))
        elif level == "msgpack":
            body = compress(draw(byte_mutation(corpus.plain[i])))
        elif level == "splice":
            body = splice(corpus.bodies[i], corpus.bodies[j], draw(INDEX), draw(INDEX))
        elif level == "splice-msgpack":
            body = compress(splice(corpus.plain[i], corpus.plain[j], draw(INDEX), draw(INDEX)))
        else:
            body = draw(structural(corpus.trees[i], paths[i]))
        return node, body

    return one()


# -- the properties -----------------------------------------------------------------------------

@contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def test_mutated_bodies_apply_nothing_in_process(tmp_path: Path) -> None:
    with event_loop() as loop:
        world = loop.run_until_complete(_world(tmp_path))
        before = world.digest()
        seen = {"refused": 0, "replayed": 0}

        @settings(max_examples=EXAMPLES, **FUZZ_SETTINGS)
        @given(mutants(world.corpus))
        def check(case: tuple[int, bytes]) -> None:
            node, body = case
            outcome = loop.run_until_complete(serve(world.hub, world.nodes[node], body))
            if outcome.error is not None:
                assert 400 <= status_of(outcome.error) < 500, outcome.error
                seen["refused"] += 1
            else:
                decode_response(outcome.body)
                seen["replayed"] += 1
            after = world.digest()
            assert after == before, [k for k in before if after[k] != before[k]]

        try:
            check()
            # still serving: a valid replay is answered as before
            outcome = loop.run_until_complete(serve(world.hub, world.nodes[0], world.corpus.bodies[0]))
            assert outcome.error is None
            assert seen["refused"] > EXAMPLES // 2, seen
        finally:
            loop.run_until_complete(world.hub.close())


def test_mutated_bodies_over_http_get_only_4xx(tmp_path: Path) -> None:
    with event_loop() as loop:
        world = loop.run_until_complete(_world(tmp_path))
        accounts = loop.run_until_complete(open_accounts(tmp_path))
        config = HubConfig(node_rate_per_s=0)  # the fuzzer is one very busy node
        server = TestServer(build_app(world.hub, accounts, config), host="127.0.0.1")
        loop.run_until_complete(server.start_server())

        async def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession()

        http = loop.run_until_complete(session())
        url = str(server.make_url("/v1/sync"))
        before = world.digest()

        async def post(body: bytes, credential: str) -> int:
            async with http.post(url, data=body, headers={
                    "Authorization": f"Bearer {credential}", "Content-Type": SYNC_TYPE}) as resp:
                await resp.read()
                return resp.status

        @settings(max_examples=HTTP_EXAMPLES, **FUZZ_SETTINGS)
        @given(mutants(world.corpus))
        def check(case: tuple[int, bytes]) -> None:
            node, body = case
            status = loop.run_until_complete(post(body, world.credentials[node]))
            assert status == 200 or 400 <= status < 500, status
            assert world.digest() == before

        try:
            check()
            assert loop.run_until_complete(post(world.corpus.bodies[0], world.credentials[0])) == 200
        finally:
            loop.run_until_complete(http.close())
            loop.run_until_complete(server.close())  # closes the store and accounts too
