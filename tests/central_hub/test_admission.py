"""Admission control at `/v1/sync`: past the slots and the queue the hub answers 503 with a
Retry-After at once, applies nothing of a refused exchange, and the edges get through later."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from central_hub.admission import Admission, HubBusy
from protocol.errors import ServerBusy
from protocol.messages import SyncRequest, encode_request
from tests.central_hub.operator import start_hub
from tests.harness import Net, birth


async def test_one_slot_one_waiting_and_the_third_is_refused_at_once() -> None:
    admission = Admission(1, 1, retry_s=(2.0, 5.0), rng=random.Random(1))
    release = asyncio.Event()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with admission.slot():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)
    assert admission.waiting == 1
    with pytest.raises(HubBusy) as refused:
        async with admission.slot():
            raise AssertionError("admitted past the queue")
    assert 2.0 <= refused.value.retry_after_s <= 5.0
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and admission.refused == 1
    async with admission.slot():  # free again
        pass


def test_retry_after_grows_with_the_crowd_turned_away() -> None:
    admission = Admission(4, 12, retry_s=(1.0, 60.0), rng=random.Random(2))
    admission.hold_s = 0.12  # four slots: about 30 ms of hub time per exchange
    few = [admission.retry_after(0.0, f"0224{i}.01") for i in range(5)]
    assert all(1.0 <= w <= 2.0 for w in few)  # a small overload: back within two seconds
    crowd = [admission.retry_after(1.0, f"{i:05d}.01") for i in range(1000)]
    assert admission.crowd == 1005
    # the last ones are spread over the ~30 s the hub needs for the thousand ahead of them
    assert all(1.0 <= w <= 31.0 for w in crowd) and max(crowd[-200:]) > 20
    # a node retrying counts once: its retries do not grow the crowd
    for _ in range(50):
        admission.retry_after(2.0, "00001.01")
    assert admission.crowd == 1005
    # gone once past the time it was given plus the grace: a later refusal is short again
    assert 1.0 <= admission.retry_after(200.0, "00042.01") <= 2.0
    assert admission.crowd == 1


async def test_a_node_admitted_leaves_the_crowd() -> None:
    admission = Admission(1, 0, retry_s=(1.0, 60.0), rng=random.Random(3))
    admission.hold_s = 1.0
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot("02245.01"):
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    for i in range(10):
        with pytest.raises(HubBusy):
            async with admission.slot(f"0225{i}.01"):
                raise AssertionError("admitted past a full slot and an empty queue")
    assert admission.crowd == 10
    release.set()
    await first
    async with admission.slot("02250.01"):  # served: it no longer counts as waiting outside
        assert admission.crowd == 9


async def test_zero_turns_admission_off() -> None:
    admission = Admission(0, 0)
    async with admission.slot(), admission.slot():
        pass


@pytest.fixture
async def bare(tmp_path: Any) -> AsyncIterator[Net]:
    network = Net(tmp_path)
    try:
        yield network
    finally:
        await network.close()


async def test_a_burst_past_the_queue_gets_503_with_retry_after_and_nothing_half_applied(
        bare: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = await start_hub(bare, sync_inflight=1, sync_waiting=1)
    edges = [await bare.add_edge(f"022{40 + i}") for i in range(6)]
    for edge in edges:
        for i in range(3):
            await edge.api.post("/api/dossiers", birth(f"Nguyễn Văn {i}"))
    slow = hub.store.ingest.accept

    async def ingest_slowly(*args: Any, **kw: Any) -> Any:
        await asyncio.sleep(0.3)  # an exchange that takes a while: the others pile up
        return await slow(*args, **kw)

    monkeypatch.setattr(hub.store.ingest, "accept", ingest_slowly)
    statuses: list[int] = []
    assert bare.http is not None

    async def push(edge: Any) -> None:
        batch = await edge.store.sync.pending(1 << 20)
        body = encode_request(SyncRequest(edge.config.node, batch, 0, 1 << 20,
                                          edge.store.now_ms()))
        async with bare.http.post(hub.url + "/v1/sync", data=body, headers={
                "Authorization": f"Bearer {edge.config.credential}"}) as resp:
            statuses.append(resp.status)
            if resp.status == 503:
                assert 1 <= int(resp.headers["Retry-After"]) <= 30

    await asyncio.gather(*(push(e) for e in edges))
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    async with hub.store.reader.execute("SELECT count(*) FROM events") as cur:
        applied = (await cur.fetchone() or (0,))[0]
    assert applied == 3 * statuses.count(200)  # a refused exchange applied nothing
    # the refused ones come back later and everything lands once
    monkeypatch.setattr(hub.store.ingest, "accept", slow)
    for edge in edges:
        for _ in range(5):
            try:
                result = await edge.sync()
            except ServerBusy:
                await asyncio.sleep(0.1)
                continue
            if not result.pending_after:
                break
        assert (await edge.store.sync.pending_stats())[0] == 0
    async with hub.store.reader.execute("SELECT count(*) FROM dossiers") as cur:
        assert (await cur.fetchone()) == (18,)
