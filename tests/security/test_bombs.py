"""Sixteen 1 GiB zstd bombs at once, three volleys a second apart, with 3,000 fuzzed sync bodies and a real
edge syncing, against a real `central-hub serve` process: every bomb and malformed body is
answered 4xx within 2 s, the edge's sessions keep succeeding meanwhile, the hub's peak RSS grows
by under 64 MiB in all over its warmed-up size, and its RSS comes back down afterwards. A bomb
whose header honestly declares its size is refused from the header at no measurable cost.

The peak is the kernel's own high-water mark (VmHWM), reset after the warm-up through
/proc/PID/clear_refs, so no spike between two samples is missed."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from hypothesis import Phase, given, settings

from central_hub import config as hub_config
from edge_node import config as edge_config
from edge_node.enroll import enroll
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol.messages import SyncRequest, encode_request
from service.hubtime import wall_clock_ms
from tests.harness import birth
from tests.security.bombs import (
    GiB,
    MiB,
    behind_a_valid_frame,
    honest_bomb,
    lying_header,
    pattern_bomb,
    zeros_bomb,
)
from tests.security.memory import ProcessMemory
from tests.security.test_fuzz import FUZZ_SETTINGS, Corpus, mutants, node_bodies
from tests.security.test_limits import hub_cli
from tests.served import Served, serve

SYNC_TYPE = "application/vnd.commune-sync+zstd"
MUTANTS = 3000
WORKERS = 8  # concurrent senders of fuzzed bodies, beside the 16 bombs and the edge
ANSWER_S = 2.0
VOLLEYS, VOLLEY_S = 3, 1.0  # three volleys of sixteen bombs, a second apart


@dataclass
class Hub:
    served: Served
    attacker_token: str
    edge_token: str
    other_token: str

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def memory(self) -> ProcessMemory:
        return ProcessMemory(self.served.proc.pid)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data = tmp_path_factory.mktemp("bombs") / "hub"
    hub_cli("init", "--data", str(data))
    # the attacker is one very busy node: no request-rate limit hides how its bodies are decoded
    hub_config.save(data, dataclasses.replace(hub_config.load(data), node_rate_per_s=0))
    attacker = hub_cli("enroll", "--data", str(data), "--commune", "02245")
    edge = hub_cli("enroll", "--data", str(data), "--commune", "02246")
    other = hub_cli("enroll", "--data", str(data), "--commune", "02245")
    with serve(data) as served:
        yield Hub(served, attacker, edge, other)


@dataclass
class Answer:
    kind: str
    status: int
    seconds: float


class Sender:
    """POSTs sync bodies as one node and records every answer."""

    def __init__(self, http: aiohttp.ClientSession, url: str, credential: str) -> None:
        self.http, self.url, self.credential = http, url + "/v1/sync", credential
        self.answers: list[Answer] = []

    async def post(self, kind: str, body: bytes) -> int:
        started = time.monotonic()
        async with self.http.post(self.url, data=body, headers={
                "Authorization": f"Bearer {self.credential}",
                "Content-Type": SYNC_TYPE}) as resp:
            await resp.read()
        self.answers.append(Answer(kind, resp.status, time.monotonic() - started))
        return resp.status


async def _enroll_attacker(http: aiohttp.ClientSession, hub: Hub) -> tuple[str, str]:
    async with http.post(hub.url + "/v1/enroll", json={"token": hub.attacker_token}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body["node"], body["credential"]


def _draw_mutants(corpus: Corpus, count: int) -> list[bytes]:
    """`count` fuzzed bodies from the fuzz suite's mutators (generated only: no shrinking)."""
    drawn: list[bytes] = []

    @settings(max_examples=count, derandomize=True, phases=[Phase.generate], **FUZZ_SETTINGS)
    @given(mutants(corpus))
    def draw(case: tuple[int, bytes]) -> None:
        drawn.append(case[1])

    draw()
    return drawn


BOMB_KINDS = {  # 1 GiB each; what each must be answered
    "compressed blocks": {413},
    "RLE blocks": {413},
    "honest header": {413},
    "lying header": {400, 413},
    "second frame": {413},
}
# the sixteen sent at once: mostly the kind that costs the hub the most to refuse
VOLLEY = ["compressed blocks"] * 8 + ["second frame"] * 2 + ["RLE blocks"] * 2 \
    + ["honest header"] * 2 + ["lying header"] * 2


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    pattern = pattern_bomb(GiB)
    return {"compressed blocks": pattern, "RLE blocks": zeros_bomb(GiB),
            "honest header": honest_bomb(GiB), "lying header": lying_header(pattern, 1000),
            "second frame": behind_a_valid_frame(pattern)}


async def _edge(hub: Hub, root: Path) -> SyncClient:
    config = dataclasses.replace(await enroll(root, hub.url, hub.edge_token), auto_sync=False)
    store = await EdgeStore.open(root / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    return SyncClient(store, config)


async def _edge_keeps_syncing(client: SyncClient, until: asyncio.Event,
                              sessions: list[float]) -> None:
    """Write a dossier and sync it, again and again until `until` is set (at least twice)."""
    while not until.is_set() or len(sessions) < 2:
        await client.store.dossiers.create(birth(name=f"Lê Văn {len(sessions)}"), "clerk")
        started = time.monotonic()
        result = await client.session_once()
        sessions.append(time.monotonic() - started)
        assert result.pending_after == 0


async def test_sixteen_bombs_with_fuzzed_bodies_cost_little_and_block_nothing(
        hub: Hub, bombs: dict[str, bytes], tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        node, credential = await _enroll_attacker(http, hub)
        attacker = Sender(http, hub.url, credential)

        async def apply(body: bytes) -> None:
            assert await attacker.post("base", body) == 200

        bodies = await node_bodies(tmp_path / "attacker.db", node, "02245", apply)
        bodies.append(encode_request(SyncRequest(node=node, events=[], cursor=3,
                                                 want_bytes=100, clock_ms=wall_clock_ms())))
        cases = _draw_mutants(Corpus.of(1, bodies), MUTANTS)
        client = await _edge(hub, tmp_path / "edge")
        try:
            # warm-up: every code path the attack takes, once or a few times
            for body in cases[:200]:
                await attacker.post("warm-up", body)
            for kind, bomb in bombs.items():
                await attacker.post(f"warm-up {kind}", bomb)
            await _edge_keeps_syncing(client, _set(), [])
            await asyncio.sleep(0.5)
            base = hub.memory.rss()
            hub.memory.reset_peak()

            queue = iter(cases[200:])
            done, sessions, volleys = asyncio.Event(), list[float](), [0]

            async def fuzz() -> None:
                for body in queue:
                    await attacker.post("mutant", body)

            async def bombard() -> None:
                """VOLLEYS times sixteen bombs at once, VOLLEY_S apart, while the fuzzing runs
                (each bomb costs the hub some 25 ms of CPU to refuse: back to back they would
                measure only that)."""
                for _ in range(VOLLEYS):
                    fired = time.monotonic()
                    await asyncio.gather(*(attacker.post(kind, bombs[kind]) for kind in VOLLEY))
                    volleys[0] += 1
                    await asyncio.sleep(max(0.0, fired + VOLLEY_S - time.monotonic()))

            async def attack() -> None:
                await asyncio.gather(bombard(), *(fuzz() for _ in range(WORKERS)))
                done.set()

            started, cpu = time.monotonic(), hub.memory.cpu_s()
            await asyncio.gather(attack(), _edge_keeps_syncing(client, done, sessions))
            attack_s, attack_cpu = time.monotonic() - started, hub.memory.cpu_s() - cpu
            peak = hub.memory.peak()
            await asyncio.sleep(0.5)
            after = hub.memory.rss()
        finally:
            await client.close()
            await client.store.close()

    answers = [a for a in attacker.answers if not a.kind.startswith(("warm-up", "base"))]
    mutant_statuses = [a.status for a in answers if a.kind == "mutant"]
    slowest = max(a.seconds for a in answers)
    print(f"\n{len(answers)} answers ({volleys[0]} volleys of 16 bombs) in {attack_s:.1f} s "
          f"(hub CPU {attack_cpu:.1f} s), "
          f"slowest {slowest * 1000:.0f} ms; "
          f"{sum(400 <= s < 500 for s in mutant_statuses)} mutants refused 4xx, "
          f"{mutant_statuses.count(200)} harmless replays; edge: {len(sessions)} sessions, "
          f"slowest {max(sessions) * 1000:.0f} ms")
    for a in sorted(answers, key=lambda a: -a.seconds)[:8]:
        print(f"  slow: {a.kind} {a.status} {a.seconds * 1000:.0f} ms")
    print(f"hub RSS {base / MiB:.1f} MiB after warm-up, peak +{(peak - base) / MiB:.1f} MiB, "
          f"after +{(after - base) / MiB:.1f} MiB")
    assert len(mutant_statuses) == MUTANTS - 200 and volleys[0] == VOLLEYS
    for answer in answers:
        if answer.kind == "mutant":  # a mutant that still decodes is a harmless replay
            assert answer.status == 200 or 400 <= answer.status < 500, answer
        else:
            assert answer.status in BOMB_KINDS[answer.kind], answer
        assert answer.seconds < ANSWER_S, answer
    assert sum(400 <= s < 500 for s in mutant_statuses) > len(mutant_statuses) // 2
    assert len(sessions) >= 2 and max(sessions) < ANSWER_S, sessions
    assert peak - base < 64 * MiB, (peak - base) / MiB
    assert after - base < 16 * MiB, (after - base) / MiB  # and the memory was given back


def _set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def test_a_bomb_that_declares_its_size_is_refused_from_its_header(
        hub: Hub, bombs: dict[str, bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(hub.url + "/v1/enroll", json={"token": hub.other_token}) as resp:
            credential = (await resp.json())["credential"]
        sender = Sender(http, hub.url, credential)
        for kind in ("honest header", "compressed blocks"):  # warm both paths
            await sender.post(kind, bombs[kind])
        costs = {}
        for kind in ("honest header", "compressed blocks"):
            await asyncio.sleep(0.2)
            hub.memory.reset_peak()
            base, cpu = hub.memory.rss(), hub.memory.cpu_s()
            for _ in range(20):
                assert await sender.post(kind, bombs[kind]) == 413
            costs[kind] = ((hub.memory.cpu_s() - cpu) / 20, hub.memory.peak() - base)
    for kind, (cpu_s, grown) in costs.items():
        print(f"{kind}: {cpu_s * 1000:.1f} ms hub CPU per refusal, peak +{grown / MiB:.1f} MiB")
    cpu_s, grown = costs["honest header"]
    assert grown < 2 * MiB  # nothing was inflated
    assert cpu_s < costs["compressed blocks"][0] / 3  # the header was enough
