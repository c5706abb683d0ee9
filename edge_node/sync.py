"""The sync client: one round trip carries both ways; a session loops until nothing is pending.

The shell around `protocol/session.py`: it reads what to send from the edge's database, posts it,
and hands the answer to the database, which commits what the session rules say it does. Transport
failures are mapped to `TransportError` (retried with capped, jittered exponential backoff by
tenacity); a refusal is mapped by the error registry (`protocol.errors.from_answer`): protocol,
version and auth errors are not retried blindly, they are shown to staff and the loop waits for a
kick or the cap. The batch size follows the link (`protocol.session.Adaptive`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter
from tenacity.stop import stop_after_attempt, stop_never

from edge_node import config as edge_config
from edge_node import hubtime, lan
from edge_node.clientstore import Batch, ClientStore, Exchange, Outgoing, SessionResult
from edge_node.config import EdgeConfig
from edge_node.disk import DiskGuard
from edge_node.hubtime import HubClock
from edge_node.identity import Identity
from edge_node.identity import recover as recover_certificate
from edge_node.identity import renew as renew_certificate
from edge_node.progress import Progress
from protocol import APP_VERSION
from protocol.errors import (
    AuthError,
    NetworkError,
    ReadTimeout,
    RemoteProtocolError,
    SyncError,
    TransportError,
    ValidationError,
    from_answer,
)
from protocol.messages import (
    CONTENT_TYPE,
    SyncRequest,
    decode_error,
    decode_response,
    encode_request,
)
from protocol.session import MIN_BATCH, Adaptive, next_state, session_done
from service import certclock, crashpoints
from service.loopback import is_loopback_url

log = logging.getLogger(__name__)

MIN_WANT = 1024  # the least the hub sends back (below the hard disk floor)

# Sends a request body, returns the response body; raises TransportError or a protocol error.
Transport = Callable[[bytes], Awaitable[bytes]]
S = TypeVar("S", bound=ClientStore)


def backoff(cap_s: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, capped — but never sooner than the hub's Retry-After
    (a busy hub spreads the communes it turns away over the next seconds)."""
    base = wait_exponential_jitter(initial=1, max=cap_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after_s", None) or 0.0
        return max(base(state), min(float(hint), cap_s))

    return wait


class SyncClient(Generic[S]):
    """Talks to the hub for one edge store."""

    def __init__(self, store: S, config: EdgeConfig,
                 session: aiohttp.ClientSession | None = None,
                 transport: Transport | None = None) -> None:
        self.store = store
        self.transport = transport  # None: HTTP to config.hub_url
        self.config = config
        self._session = session
        self._own_session = session is None
        self.sizes = Adaptive(MIN_BATCH, config.batch_bytes_max)
        self.batch_bytes = config.batch_bytes
        self.state = "offline"  # protocol.session.SESSION_TRANSITIONS
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
            await hubtime.learn(self.hub_clock, self.store.time,
                                await self.store.sync.last_success(), self.identity.ca_file,
                                self.config.hub_url, self.config.request_timeout_s)

    async def ensure_identity(self) -> None:
        """Renew the node certificate when less than a third of its lifetime is left (over
        mTLS), or recover it when it has already expired (signed by the old key). A failed
        renewal of a still-valid certificate is only logged: the next session tries again."""
        identity = self.identity
        if identity is None or self.transport is not None or not identity.exists():
            return
        due = identity.due(self.store.time.now_ms())
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
        return {**await self.store.health(), "disk_free": self.disk.free(),
                "disk_floor": self.config.disk_floor_mb * 1024 * 1024,  # the hub shows a refusal
                "last_error": self.last_error or "", "app_version": APP_VERSION,
                "contact_every_s": max(1, round(self.config.sync_interval_s))}

    async def _batch(self, after: int) -> Batch:
        batch, first, last = await self.store.sync.pending_batch(after, self.batch_bytes)
        return Batch(batch, first, last)

    async def prepare(self, batch: Batch | None = None) -> Outgoing:
        """The next request: `batch` (or the events after the ack) and where this node stands."""
        sync = self.store.sync
        acked = await sync.ack()
        if batch is None:
            batch = await self._batch(acked)
        request = SyncRequest(
            node=self.config.node, events=[], batch=batch.plain, cursor=await sync.cursor(),
            want_bytes=MIN_WANT if self.disk.very_low() else self.config.want_bytes,
            clock_ms=self.store.time.wall(),
            stats=await self.stats(), ref=sync.refdata_held(), epoch=await sync.hub_epoch(),
            units=await sync.units())
        return Outgoing(encode_request(request), batch, acked)

    async def exchange(self, batch: Batch | None = None, prefetch: bool = False,
                       outgoing: Outgoing | None = None) -> tuple[Exchange, Batch | None]:
        """One round trip sending `outgoing` (or `batch`, or the events after the ack). With
        `prefetch`, the batch after this one is read and encoded while the hub works; it is
        returned for the next round trip and is valid if the hub acks everything sent."""
        if outgoing is None:
            outgoing = await self.prepare(batch)
        body, batch = outgoing.body, outgoing.batch
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
        received = await self.store.sync.apply_response(
            response, received_at - started, received_at, sent_after=outgoing.acked)
        self.rejected_total += len(response.rejections)
        if self.store.sync.rescoped is not None:
            self._rescoped(*self.store.sync.rescoped)
        self.batch_bytes = self.sizes.after(self.batch_bytes, time.monotonic() - started,
                                            bool(batch.count))
        if response.ack < batch.last:
            following = None  # the hub holds less than we sent: resend from its ack
        return Exchange(batch.count, received, response.more, len(body), len(payload),
                        max(0, response.ack - outgoing.acked), received_at - started), following

    def _rescoped(self, code: str, name: str) -> None:
        """A merger made this node a desk of `code`: node.toml says so from now on (the database
        already does: `EdgeSync.load_unit` is what counts, should this write be lost)."""
        self.store.sync.rescoped = None
        self.config = replace(self.config, commune=code, commune_name=name)
        if (Path(self.data_dir) / edge_config.CONFIG_FILE).exists():
            edge_config.save(Path(self.data_dir), self.config)

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
            self.batch_bytes = self.sizes.after_timeout(self.batch_bytes)
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
        raise from_answer(status, code, message,
                          float(retry_after) if retry_after.isdigit() else None)

    async def session_once(self, first: Outgoing | None = None,
                           on_trip: Callable[[Exchange], None] | None = None) -> SessionResult:
        """Exchange until nothing is pending either way (or a round trip fails). `first`: the
        first request, prepared beforehand; `on_trip` is told what each round trip did."""
        result = SessionResult()
        sync = self.store.sync
        self.state = next_state(self.state, "start")
        self.progress.begin(self.store.time.now_ms())
        try:
            await self.store.settle_clock()  # a clock gone back is flagged even offline
            await self.learn_hub_time()
            await self.store.settle_clock()
            await self.ensure_identity()
            following: Batch | None = None
            while True:
                ack_before = await sync.ack()
                if following is not None and not following.count:
                    following = None
                step, following = await self.exchange(following, prefetch=True, outgoing=first)
                first = None
                if on_trip is not None:
                    on_trip(step)
                result.sent += step.sent
                result.received += step.received
                result.round_trips += 1
                result.bytes_up += step.bytes_up
                result.bytes_down += step.bytes_down
                self.hub_clock.raise_floor(self.store.time.now_ms())  # on a date-checked link
                if await self.store.settle_clock():
                    continue  # flags for stamps now known to be off: send them too
                pending, _ = await sync.pending_stats()
                pull = not (step.more and self.disk.very_low())
                if session_done(sent=step.sent, more=step.more, ack_before=ack_before,
                                ack_after=await sync.ack(), pending=pending, pull=pull):
                    if step.more:
                        log.warning("disk below the hard floor: not pulling the hub's events")
                    break
        except TransportError as exc:
            self.state, self.last_error = next_state(self.state, "transport"), exc.message
            raise
        except SyncError as exc:
            self.state, self.last_error = next_state(self.state, "refused"), exc.message
            raise
        finally:
            self.progress.end(self.store.time.now_ms())
        self.state, self.last_error = next_state(self.state, "done"), None
        result.pending_after, _ = await sync.pending_stats()
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
