"""Moving attachments: our blobs up to the hub, the hub's down, in resumable verified chunks.

Dossier events always go first: the mover checks between chunks whether events are waiting and
yields to them. A transfer resumes from the last byte the other side confirmed (upload) or the last
byte on our disk (download); nothing counts until the whole blob hashes to its name.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol.errors import Conflict, NotFound, RemoteProtocolError
from protocol.session import BLOB_CHUNK, BLOB_CHUNK_START
from service import crashpoints

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BlobStats:
    """What the mover did."""

    uploaded: int = 0
    downloaded: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    yielded: bool = False


class BlobMover:
    """Uploads and downloads the blobs an edge store has queued."""

    def __init__(self, client: SyncClient[EdgeStore]) -> None:
        self.client = client
        self.store = client.store
        self.chunk = BLOB_CHUNK_START

    async def _json(self, method: str, path: str, body: bytes | None = None,
                    params: dict[str, int] | None = None) -> dict[str, object]:
        _, payload = await self.client.request(method, path, body, params)
        try:
            value = json.loads(payload)
        except ValueError as exc:
            raise RemoteProtocolError("hub answered a blob request with something else") from exc
        if not isinstance(value, dict):
            raise RemoteProtocolError("hub answered a blob request with something else")
        return value

    async def run(self, should_yield: Callable[[], Awaitable[bool]]) -> BlobStats:
        """Move everything queued, or until `should_yield` says events are waiting."""
        stats = BlobStats()
        for sha, size in await self.store.queue.to_move("up"):
            if not await self._upload(sha, size, stats, should_yield):
                stats.yielded = True
                return stats
        if self.client.disk.low():  # a scan may be megabytes: keep the space for intake
            log.warning("disk below the floor: not fetching scans from the hub")
            return stats
        for sha, size in await self.store.queue.to_move("down"):
            try:
                if not await self._download(sha, size, stats, should_yield):
                    stats.yielded = True
                    return stats
            except NotFound:
                log.info("blob %s not at the hub yet; will retry", sha[:12])
        return stats

    async def _upload(self, sha: str, size: int, stats: BlobStats,
                      should_yield: Callable[[], Awaitable[bool]]) -> bool:
        have = int(str((await self._json("GET", f"/v1/blobs/{sha}"))["have"]))
        while have < size:
            if await should_yield():
                return False
            chunk = await self.store.blobs.read(sha, have, self.chunk)
            started = time.monotonic()
            try:
                answer = await self._json("PUT", f"/v1/blobs/{sha}", chunk,
                                          {"offset": have, "size": size})
            except Conflict:  # the hub holds a different amount (a reply was lost): ask again
                have = int(str((await self._json("GET", f"/v1/blobs/{sha}"))["have"]))
                continue
            stats.bytes_up += len(chunk)
            crashpoints.hit("edge.blob.after_chunk")
            self.chunk = BLOB_CHUNK.after(self.chunk, time.monotonic() - started)
            have = int(str(answer["have"]))
        await self.store.queue.done(sha, "up")
        stats.uploaded += 1
        return True

    async def _download(self, sha: str, size: int, stats: BlobStats,
                        should_yield: Callable[[], Awaitable[bool]]) -> bool:
        if self.store.blobs.has(sha):
            await self.store.queue.done(sha, "down")
            return True
        have = self.store.blobs.have(sha)
        while have < size:
            if await should_yield():
                return False
            started = time.monotonic()
            _, data = await self.client.request(
                "GET", f"/v1/blobs/{sha}/data",
                params={"offset": have, "limit": min(self.chunk, size - have)})
            if not data:
                raise RemoteProtocolError("hub sent an empty blob chunk")
            stats.bytes_down += len(data)
            self.chunk = BLOB_CHUNK.after(self.chunk, time.monotonic() - started)
            have = await self.store.blobs.append(sha, have, data, size)
        await self.store.queue.done(sha, "down")
        stats.downloaded += 1
        return True
