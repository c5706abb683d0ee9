"""Attachments: content-addressed, resumable, verified, deduplicated, and never ahead of events."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_node.blobsync import BlobMover
from protocol.errors import ValidationError
from service.blobs import BlobStore
from tests.harness import EdgeHandle, Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)
PDF = b"%PDF-1.4\n" + os.urandom(200_000) + b"\n%%EOF\n"


async def upload(api: Any, dossier_id: str, data: bytes, name: str = "giay-chung-sinh.png",
                 label: str = "Giấy chứng sinh (bản chính)") -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("label", label)
    form.add_field("file", io.BytesIO(data), filename=name,
                   content_type="application/octet-stream")
    async with api.http.post(f"{api.base}/api/dossiers/{dossier_id}/attachments", data=form,
                             headers={"Authorization": f"Bearer {api.token}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def download(api: Any, dossier_id: str, sha: str) -> tuple[int, bytes]:
    async with api.http.get(f"{api.base}/api/dossiers/{dossier_id}/attachments/{sha}",
                            headers={"Authorization": f"Bearer {api.token}"}) as resp:
        return resp.status, await resp.read()


async def never() -> bool:
    return False


async def full_sync(edge: EdgeHandle) -> Any:
    await edge.sync()
    return await BlobMover(edge.client).run(never)


async def test_scan_goes_up_and_result_comes_down(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    status, view = await upload(edge.api, d["id"], PNG)
    assert status == 201, view
    sha = hashlib.sha256(PNG).hexdigest()
    [att] = view["attachments"]
    assert att["sha256"] == sha and att["mime"] == "image/png" and att["size"] == len(PNG)
    assert att["label"] == "Giấy chứng sinh (bản chính)"
    _, sync = await edge.api.get("/api/sync")
    assert sync["pending_blobs"] == 1
    moved = await full_sync(edge)
    assert moved.uploaded == 1 and moved.bytes_up == len(PNG)
    status, body = await download(net.hub.api, d["id"], sha)
    assert status == 200 and body == PNG
    _, sync = await edge.api.get("/api/sync")
    assert sync["pending_blobs"] == 0
    # the province attaches the signed result; it reaches the commune after the event
    status, _ = await upload(net.hub.api, d["id"], PDF, name="trich-luc-khai-sinh.pdf",
                             label="Trích lục khai sinh")
    assert status == 201
    await edge.sync()
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert len(view["attachments"]) == 2
    pdf_sha = hashlib.sha256(PDF).hexdigest()
    status, _ = await download(edge.api, d["id"], pdf_sha)
    assert status == 404  # the event is here, the file follows
    moved = await BlobMover(edge.client).run(never)
    assert moved.downloaded == 1 and moved.bytes_down == len(PDF)
    status, body = await download(edge.api, d["id"], pdf_sha)
    assert status == 200 and body == PDF


async def test_same_file_on_two_dossiers_is_stored_and_sent_once(net: Net) -> None:
    edge = await net.add_edge("02245")
    ids = []
    for i in range(2):
        _, d = await edge.api.post("/api/dossiers", birth(f"Người {i}"))
        status, _ = await upload(edge.api, d["id"], PNG)
        assert status == 201
        ids.append(d["id"])
    files = [p for p in Path(edge.data, "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    moved = await full_sync(edge)
    assert moved.bytes_up == len(PNG)
    hub_files = [p for p in Path(net.hub.data, "blobs").rglob("*") if p.is_file()]
    assert len(hub_files) == 1


async def test_upload_resumes_from_last_confirmed_chunk(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    await upload(edge.api, d["id"], PNG)
    await edge.sync()
    mover = BlobMover(edge.client)
    mover.chunk = 32 * 1024
    calls = 0

    async def cut_after_three_chunks() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    first = await mover.run(cut_after_three_chunks)
    assert first.yielded and 0 < first.bytes_up < len(PNG)
    sha = hashlib.sha256(PNG).hexdigest()
    assert net.hub.store.blobs.have(sha) == first.bytes_up
    assert not net.hub.store.blobs.has(sha)
    # a new mover (as after a restart) resumes where the hub stands
    second = await BlobMover(edge.client).run(never)
    assert second.uploaded == 1
    assert first.bytes_up + second.bytes_up == len(PNG)  # not a byte sent twice
    assert net.hub.store.blobs.has(sha)


async def test_events_never_wait_behind_blobs(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    await upload(edge.api, d["id"], PNG)
    await edge.sync()
    await edge.api.post("/api/dossiers", birth("Người đến sau"))

    async def events_waiting() -> bool:
        return (await edge.store.sync.pending_stats())[0] > 0

    stats = await BlobMover(edge.client).run(events_waiting)
    assert stats.yielded and stats.bytes_up == 0


@pytest.mark.parametrize("data, reason", [
    (b"GIF89a" + b"x" * 100, "PDF, JPEG and PNG"),
    (b"", "no file"),
])
async def test_bad_files_are_refused_and_nothing_stored(net: Net, data: bytes,
                                                         reason: str) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    status, body = await upload(edge.api, d["id"], data)
    assert status == 422 and reason in body["message"]
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["attachments"] == [] and len(view["history"]) == 1
    assert not [p for p in Path(edge.data, "blobs").rglob("*") if p.is_file()]


async def test_file_over_20_mb_is_refused(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    status, body = await upload(edge.api, d["id"], PDF[:9] + b"\0" * (20 * 2**20 + 1))
    assert status == 422 and "MB" in body["message"]


async def test_another_commune_cannot_fetch_the_blob(net: Net) -> None:
    a = await net.add_edge("02245")
    b = await net.add_edge("02227")
    _, d = await a.api.post("/api/dossiers", birth())
    await upload(a.api, d["id"], PNG)
    await full_sync(a)
    sha = hashlib.sha256(PNG).hexdigest()
    with pytest.raises(Exception, match="no attachment of this commune"):
        await b.client.request("GET", f"/v1/blobs/{sha}/data", params={"offset": 0, "limit": 10})


def test_a_blob_that_does_not_hash_to_its_name_is_discarded(tmp_path: Path) -> None:
    import asyncio

    store = BlobStore(tmp_path)
    sha = hashlib.sha256(PNG).hexdigest()
    tampered = bytearray(PNG)
    tampered[1000] ^= 0xFF

    async def go() -> None:
        half = len(PNG) // 2
        await store.append(sha, 0, bytes(tampered[:half]), len(PNG))
        with pytest.raises(ValidationError, match="does not match"):
            await store.append(sha, half, bytes(tampered[half:]), len(PNG))

    asyncio.run(go())
    assert store.have(sha) == 0 and not store.has(sha)


def test_asking_what_is_held_while_the_upload_finishes_answers_the_full_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`have` takes no lock: between finding the partial file and reading its size, the upload
    may finish and rename it to the final name (seen once as a 500 on GET /v1/blobs/…)."""
    import asyncio

    store = BlobStore(tmp_path)
    sha = hashlib.sha256(PNG).hexdigest()
    half = len(PNG) // 2
    asyncio.run(store.append(sha, 0, PNG[:half], len(PNG)))
    part = store.partial(sha)

    class FinishesWhileLooked(type(part)):  # type: ignore[misc]
        def is_file(self) -> bool:
            return True

        def stat(self, **_: object) -> os.stat_result:
            monkeypatch.undo()  # the upload's own code sees the real partial file
            asyncio.run(store.append(sha, half, PNG[half:], len(PNG)))  # the upload completes
            return super().stat()

    monkeypatch.setattr(store, "partial", lambda _sha: FinishesWhileLooked(part))
    assert store.have(sha) == len(PNG)
    assert store.has(sha)
