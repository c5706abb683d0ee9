"""The background sync loop: events right after local writes, then blobs, backoff while the hub is down."""

from __future__ import annotations

import asyncio
import logging

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edge_node.blobsync import BlobMover, BlobStats
from edge_node.sync import SyncClient, backoff
from protocol.errors import SyncError, TransportError

log = logging.getLogger(__name__)


class SyncLoop:
    """Background sync: right after local writes, every interval, and with backoff when down."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.mover = BlobMover(client)
        self.kicked = asyncio.Event()
        self._not_before = 0.0  # loop time before which the hub asked not to be called again
        self._task: asyncio.Task[None] | None = None
        self.sessions = 0

    def kick(self) -> None:
        """Sync as soon as possible (after a local write or a button press)."""
        self.kicked.set()

    def requested(self) -> bool:
        """True iff a session was asked for and the running loop has not begun it yet."""
        return self._task is not None and not self._task.done() and self.kicked.is_set()

    def start(self) -> None:
        """Start the loop as a task."""
        self._task = asyncio.create_task(self._run(), name="sync-loop")

    async def stop(self) -> None:
        """Stop the loop and wait for it."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _move_blobs(self) -> BlobStats:
        """Move blobs; a refused blob (e.g. one that failed its hash) is logged and retried next
        cycle, without holding up the events."""
        try:
            return await self.mover.run(self._events_waiting)
        except TransportError:
            raise
        except SyncError as exc:
            log.warning("blob transfer refused: %s", exc.message)
            self.client.last_error = f"attachment: {exc.message}"
            return BlobStats()

    async def _events_waiting(self) -> bool:
        pending, _ = await self.client.store.pending_stats()
        return pending > 0 or self.kicked.is_set()

    def _note_retry_after(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after_s", None)
        self._not_before = asyncio.get_running_loop().time() + hint if hint else 0.0

    async def _sleep(self, seconds: float) -> None:
        """Between retries: a local write cuts the wait short, except the part the hub asked
        for (Retry-After), which is honoured whatever happens here."""
        floor = self._not_before - asyncio.get_running_loop().time()
        if floor > 0:
            await asyncio.sleep(floor)
            seconds -= floor
        await self._wait(max(0.0, seconds))

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.kicked.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self.kicked.clear()

    async def _run(self) -> None:
        config = self.client.config
        while True:
            self.kicked.clear()
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(TransportError),
                wait=backoff(config.backoff_cap_s),
                sleep=self._sleep,
                before_sleep=self._note_retry_after,
                reraise=True,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        await self.client.session_once()
                        moved = await self._move_blobs()
                self.sessions += 1
                if moved.yielded or await self._events_waiting():
                    continue  # events came in while blobs moved: they go first
                await self._wait(config.sync_interval_s)
            except asyncio.CancelledError:
                raise
            except SyncError as exc:
                log.warning("sync stopped: %s", exc.message)
                await self._wait(config.backoff_cap_s)
            except Exception:
                log.exception("sync loop error")
                self.client.state, self.client.last_error = "error", "internal error; see the log"
                await self._wait(config.backoff_cap_s)
