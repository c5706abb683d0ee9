"""The sync client: one round trip carries both ways; a session loops until nothing is pending.

Transport failures are mapped to `TransportError` (retried with capped, jittered exponential
backoff by tenacity); protocol, version and auth errors are not retried blindly: they are shown to
staff and the loop waits for a kick or the cap. The batch size follows the link: it doubles after a
quick success and halves after a timeout or a slow round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter
from tenacity.stop import stop_after_attempt, stop_never

from edge_node import hubtime, lan
from edge_node.config import EdgeConfig
from edge_node.disk import DiskGuard
from edge_node.hubtime import HubClock
from edge_node.identity import Identity
from edge_node.identity import recover as recover_certificate
from edge_node.identity import renew as renew_certificate
from edge_node.progress import Progress
from edge_node.store import EdgeStore
from protocol import APP_VERSION
from protocol.errors import (
    AuthError,
    Conflict,
    NetworkError,
    NotFound,
    ReadTimeout,
    RemoteProtocolError,
    ServerBusy,
    SyncError,
    TransportError,
    ValidationError,
    VersionMismatch,
)
from protocol.messages import SyncRequest, decode_error, decode_response, encode_request
from service import certclock, clock_flags, crashpoints
from service.loopback import is_loopback_url

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.commune-sync+zstd"
MIN_BATCH = 4 * 1024
SLOW_S = 10.0
QUICK_S = 2.0
MIN_WANT = 1024  # the least the hub sends back (below the hard disk floor)


# Sends a request body, returns the response body; raises TransportError or a protocol error.
Transport = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Batch:
    """Own events in compact wire form, ready to send."""

    plain: dict[str, Any]
    first: int
    last: int

    @property
    def count(self) -> int:
        """How many events."""
        return self.last - self.first + 1 if self.last else 0


class Exchange(NamedTuple):
    """What one round trip did."""

    sent: int
    received: int
    more: bool
    bytes_up: int
    bytes_down: int


@dataclass(slots=True)
class SessionResult:
    """What one sync session did."""

    sent: int = 0
    received: int = 0
    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    pending_after: int = 0


def backoff(cap_s: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, capped — but never sooner than the hub's Retry-After
    (a busy hub spreads the communes it turns away over the next seconds)."""
    base = wait_exponential_jitter(initial=1, max=cap_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after_s", None) or 0.0
        return max(base(state), min(float(hint), cap_s))

    return wait


class SyncClient:
    """Talks to the hub for one edge store."""

    def __init__(self, store: EdgeStore, config: EdgeConfig,
                 session: aiohttp.ClientSession | None = None,
                 transport: Transport | None = None) -> None:
        self.store = store
        self.transport = transport  # None: HTTP to config.hub_url
        self.config = config
        self._session = session
        self._own_session = session is None
        self.batch_bytes = config.batch_bytes
        self.state = "offline"
        self.last_error: str | None = None
        self.rejected_total = 0
        self.progress = Progress()  # what the attempt under way does, for the desk
        self.data_dir = "."
        self._identity: Identity | None = None
        self.hub_clock = HubClock()  # what certificate dates are judged by (service.certclock)

    @property
    def disk(self) -> DiskGuard:
        """The free-space floors of this node's data disk."""
        return DiskGuard(Path(self.data_dir), self.config.disk_floor_mb,
                         self.config.disk_hard_floor_mb)

    @property
    def identity(self) -> Identity | None:
        """The node's certificate identity when the hub is HTTPS (mutual TLS), else None."""
        if not self.config.hub_url.startswith("https://"):
            return None
        if self._identity is None:
            self._identity = Identity(Path(self.data_dir))
        return self._identity

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            identity = self.identity
            connector = None
            if identity is not None:
                if not identity.exists():
                    raise AuthError("this node has no certificate for an https:// hub: enroll "
                                    "again with `edge-node init`")
                connector = aiohttp.TCPConnector(
                    ssl=identity.context(time_source=self.hub_clock.view))
            elif not self.config.insecure_http and not is_loopback_url(self.config.hub_url):
                raise ValidationError("refusing plain http:// to a hub that is not on this "
                                      "machine; use https:// or set insecure_http", field="hub_url")
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                trace_configs=[self.progress.trace()])
            self._own_session = True
        return self._session

    async def _reconnect(self) -> None:
        """Drop pooled connections so the next request presents the current certificate."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def learn_hub_time(self) -> None:
        """Over HTTPS, before this process's first exchange: learn the hub's time by a probe
        that sends nothing, so certificate dates are judged by it (edge_node.hubtime)."""
        if self.transport is None and self.identity is not None and self.identity.exists():
            await hubtime.learn(self.hub_clock, self.store, self.identity.ca_file,
                                self.config.hub_url, self.config.request_timeout_s)

    async def ensure_identity(self) -> None:
        """Renew the node certificate when less than a third of its lifetime is left (over
        mTLS), or recover it when it has already expired (signed by the old key). A failed
        renewal of a still-valid certificate is only logged: the next session tries again."""
        identity = self.identity
        if identity is None or self.transport is not None or not identity.exists():
            return
        due = identity.due(self.store.now_ms())
        if due == "ok":
            return
        hub = self.config.hub_url.rstrip("/")
        if due == "expired":
            await recover_certificate(hub, identity, self.config.node,
                                      self.config.request_timeout_s, self.hub_clock.view)
        else:
            data = Path(self.data_dir)
            lan_key, lan_body = lan.request_body(hub, self.config.lan_names)
            try:  # the LAN certificate is renewed with it (or got, by a node enrolled before)
                await renew_certificate(
                    await self._http(), hub, identity, self.config.node,
                    self.config.request_timeout_s, extra=lan_body,
                    on_answer=lambda a: lan.accept(data, identity.ca(), lan_key,
                                                   a.get("lan_certificate")))
            except SyncError as exc:
                log.warning("certificate renewal failed (will retry): %s", exc.message)
                return
        await self._reconnect()

    async def close(self) -> None:
        """Close the HTTP session if we made it."""
        if self._own_session and self._session is not None:
            await self._session.close()

    async def stats(self) -> dict[str, Any]:
        """Health figures sent to the hub with every request."""
        pending, oldest = await self.store.pending_stats()
        disk_free = self.disk.free()
        return {
            "pending_events": pending,
            "pending_blobs": await self.store.pending_blobs(),
            "oldest_pending_age_s": oldest,
            "disk_free": disk_free,
            "disk_floor": self.config.disk_floor_mb * 1024 * 1024,  # the hub shows a refusal
            "clock_offset_ms": self.store.clock_offset_ms,
            "conflicts_open": await self.store.count_conflicts(),
            "dossiers": await self.store.dossier_count(),
            "last_error": self.last_error or "",
            "app_version": APP_VERSION,
            "contact_every_s": max(1, round(self.config.sync_interval_s)),
        }

    async def _batch(self, after: int) -> Batch:
        batch, first, last = await self.store.pending_batch(after, self.batch_bytes)
        return Batch(batch, first, last)

    async def exchange(self, batch: Batch | None = None,
                       prefetch: bool = False) -> tuple[Exchange, Batch | None]:
        """One round trip sending `batch` (or the events after the ack). With `prefetch`, the
        batch after this one is read and encoded while the hub works; it is returned for the
        next round trip and is valid if the hub acks everything sent."""
        acked = await self.store.ack()
        if batch is None:
            batch = await self._batch(acked)
        request = SyncRequest(
            node=self.config.node, events=[], batch=batch.plain, cursor=await self.store.cursor(),
            want_bytes=MIN_WANT if self.disk.very_low() else self.config.want_bytes,
            clock_ms=self.store.wall(),
            stats=await self.stats(), ref=dict(self.store.ref_versions),
            epoch=await self.store.hub_epoch())
        body = encode_request(request)
        self.progress.sending(batch.count)
        started = time.monotonic()
        post = asyncio.ensure_future(self._post(body))
        following: Batch | None = None
        try:
            if prefetch and batch.count:
                following = await self._batch(batch.last)
            payload = await post
        finally:
            if not post.done():
                post.cancel()
        received_at = time.monotonic()
        crashpoints.hit("edge.after_request")
        try:
            response = decode_response(payload)
        except RemoteProtocolError as exc:  # a body garbled in transit: safe to retry
            raise NetworkError(f"response garbled in transit: {exc.message}") from exc
        received = await self.store.apply_response(response, received_at - started, received_at,
                                                   sent_after=acked)
        self.rejected_total += len(response.rejections)
        self._adapt(time.monotonic() - started, bool(batch.count))
        if response.ack < batch.last:
            following = None  # the hub holds less than we sent: resend from its ack
        return Exchange(batch.count, received, response.more, len(body), len(payload)), following

    def _adapt(self, elapsed: float, sent_any: bool) -> None:
        if elapsed > SLOW_S:
            self.batch_bytes = max(MIN_BATCH, self.batch_bytes // 2)
        elif sent_any and elapsed < QUICK_S:
            self.batch_bytes = min(self.config.batch_bytes_max, self.batch_bytes * 2)

    async def _post(self, body: bytes) -> bytes:
        if self.transport is not None:
            return await self.transport(body)
        _, payload = await self.request("POST", "/v1/sync", body)
        return payload

    async def request(self, method: str, path: str, body: bytes | None = None,
                      params: dict[str, int] | None = None) -> tuple[int, bytes]:
        """One HTTP request to the hub with the node credential; errors mapped to ours (2xx
        answers are returned, everything else raises)."""
        http = await self._http()
        limit = self.config.request_timeout_s  # connecting too: a refused connection fails at once
        timeout = aiohttp.ClientTimeout(total=limit, connect=min(15.0, limit))
        headers = {"Content-Type": CONTENT_TYPE}
        if self.config.credential:  # plain-HTTP development hubs; over HTTPS the certificate
            headers["Authorization"] = f"Bearer {self.config.credential}"
        url = self.config.hub_url.rstrip("/") + path
        try:
            async with http.request(method, url, data=body, params=params, headers=headers,
                                    timeout=timeout) as resp:
                payload = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After", "")
        except TimeoutError as exc:
            self.batch_bytes = max(MIN_BATCH, self.batch_bytes // 2)
            self.progress.failed("timeout")
            raise ReadTimeout(f"hub did not answer within {self.config.request_timeout_s:.0f} s") \
                from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise hubtime.cert_refusal(exc, self.hub_clock) from exc
        except (aiohttp.ClientError, OSError) as exc:
            if certclock.openssl_date_failure(exc):  # the hub's alert: our certificate's dates
                raise hubtime.our_certificate_refused(exc, self.identity,
                                                      self.hub_clock) from exc
            if isinstance(exc, aiohttp.ClientConnectorError):
                self.progress.lost(exc.os_error)
                raise NetworkError(f"cannot reach the hub at {self.config.hub_url}: "
                                   f"{exc.os_error}") from exc
            raise NetworkError(f"link to the hub failed: {exc.__class__.__name__}: {exc}") from exc
        if 200 <= status < 300:
            return status, payload
        code, message = decode_error(payload)
        if status == 404:
            raise NotFound(message)
        if status == 409:
            raise Conflict(message)
        if status >= 500 or status == 429:
            raise ServerBusy(f"hub answered {status}: {message}",
                             float(retry_after) if retry_after.isdigit() else None)
        if status in (401, 403):
            raise AuthError(f"hub refused this node's credential: {message}")
        if status == 426 or code == "version":
            raise VersionMismatch(message)
        raise RemoteProtocolError(f"hub refused the request ({status} {code}): {message}")

    async def session_once(self) -> SessionResult:
        """Exchange until nothing is pending either way (or a round trip fails)."""
        result = SessionResult()
        self.state = "syncing"
        self.progress.begin(self.store.now_ms())
        try:
            await clock_flags.settle(self.store)  # a clock gone back is flagged even offline
            await self.learn_hub_time()
            await clock_flags.settle(self.store)
            await self.ensure_identity()
            following: Batch | None = None
            while True:
                ack_before = await self.store.ack()
                if following is not None and not following.count:
                    following = None
                step, following = await self.exchange(following, prefetch=True)
                sent, received, more, up, down = step
                result.sent += sent
                result.received += received
                result.round_trips += 1
                result.bytes_up += up
                result.bytes_down += down
                self.hub_clock.raise_floor(self.store.now_ms())  # on a date-checked link
                if await clock_flags.settle(self.store):
                    continue  # flags for stamps now known to be off: send them too
                pending, _ = await self.store.pending_stats()
                ack_after = await self.store.ack()
                stalled = sent > 0 and ack_after == ack_before
                rewound = ack_after < ack_before  # a restored hub: send the rest again
                if not more and not rewound and (pending == 0 or sent == 0 or stalled):
                    break
                if more and not rewound and (pending == 0 or stalled) and self.disk.very_low():
                    log.warning("disk below the hard floor: not pulling the hub's events")
                    break
        except TransportError as exc:
            self.state, self.last_error = "offline", exc.message
            raise
        except SyncError as exc:
            self.state, self.last_error = "error", exc.message
            raise
        finally:
            self.progress.end(self.store.now_ms())
        self.state, self.last_error = "online", None
        result.pending_after, _ = await self.store.pending_stats()
        return result

    async def session(self, attempts: int | None = None,
                      cap_s: float | None = None) -> SessionResult:
        """A session retried on transport errors (`attempts` None: until it succeeds)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransportError),
            wait=backoff(cap_s or self.config.backoff_cap_s),
            stop=stop_never if attempts is None else stop_after_attempt(attempts),
            reraise=True,
            before_sleep=self._log_retry,
        )
        async for attempt in retrying:
            with attempt:
                return await self.session_once()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("sync attempt %d failed (%s); retrying", state.attempt_number, exc)
