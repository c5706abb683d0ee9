"""Learn the hub's time before trusting a certificate date: the time probe and the edge's TimeView.

An edge whose clock is wrong cannot judge the hub's certificate by it (`service.certclock`). So,
before its first exchange in a process, it asks `GET /v1/time` over TLS verified against the
pinned CA with only the floor applied to the dates (the time of its last successful exchange), and
without its client certificate (one the hub finds expired would fail the handshake): the request
carries nothing, and the answer anchors corrected time (`DossierStore.set_hub_time`). From then on
every handshake is judged by the hub's time. A hub that predates `/v1/time` still answers with a
`Date` header (whole seconds), which is used instead.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from protocol.errors import AuthError, NetworkError, RemoteProtocolError
from service import certclock
from service.certclock import TimeView
from service.dossier_store import DossierStore

if TYPE_CHECKING:
    from edge_node.identity import Identity

log = logging.getLogger(__name__)

PROBE_PATH = "/v1/time"
PROBE_SAMPLES = 3
CLOCK_WARNING_MS = 2 * 60 * 1000  # GET /api/sync's clock_warning, the hub's clock warning


class HubClock:
    """The time a node's TLS contexts judge certificate dates by (`view`)."""

    def __init__(self, store: DossierStore | None = None) -> None:
        self.store = store
        self.floor_ms = 0  # the hub's time at the last successful exchange (kept in meta)
        self._anchor: tuple[int, float] | None = None  # (hub ms, monotonic s) without a store

    async def load(self, store: DossierStore) -> None:
        """Read the floor kept by the last successful exchange."""
        self.store = store
        self.floor_ms = max(self.floor_ms, int(await store.get_meta("last_success_at", 0) or 0))

    def raise_floor(self, hub_ms: int) -> None:
        """An exchange succeeded on a checked connection at `hub_ms`: that time has passed."""
        self.floor_ms = max(self.floor_ms, hub_ms)

    @property
    def known(self) -> bool:
        """True once this process knows the hub's time."""
        if self.store is not None:
            return self.store.hub_time_known
        return self._anchor is not None

    def now_ms(self) -> int | None:
        """The hub's time now, if known."""
        if self.store is not None:
            return self.store.now_ms() if self.store.hub_time_known else None
        if self._anchor is None:
            return None
        hub_ms, mono = self._anchor
        return hub_ms + int((time.monotonic() - mono) * 1000)

    def view(self) -> TimeView:
        """What the handshake checks dates against."""
        return TimeView(self.now_ms(), self.floor_ms)

    def floor_view(self) -> TimeView:
        """Only the floor: for the probe, before the hub's time is known."""
        return TimeView(None, self.floor_ms)

    def anchor(self, hub_ms: int, rtt_s: float, at_mono: float) -> None:
        """Adopt the hub's time read about half a round trip before `at_mono`."""
        if self.store is not None:
            self.store.set_hub_time(hub_ms, rtt_s, at_mono)
        else:
            self._anchor = (hub_ms + int(rtt_s * 500), at_mono)


def _hub_ms(status: int, body: Any, date_header: str) -> int:
    if status == 200 and isinstance(body, dict) and type(body.get("time")) is int:
        return int(body["time"])
    try:  # an older hub: no /v1/time, but every answer is dated (to the second)
        return int(parsedate_to_datetime(date_header).timestamp() * 1000) + 500
    except (TypeError, ValueError, IndexError) as exc:
        raise RemoteProtocolError(f"the hub's answer to {PROBE_PATH} carries no time") from exc


async def probe(hub: str, ca_pem: str, clock: HubClock, timeout_s: float) -> int:
    """Ask the hub its time over a connection that sends nothing secret, anchor `clock` on it,
    and return the estimated offset of this machine's clock (ms, negative: behind)."""
    ctx = certclock.dated_context(ca_pem, None, clock.floor_view)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            # The first round trip pays the handshake; of the next ones on that connection the
            # quickest is kept (as NTP does): the hub's reading then sits nearest its middle.
            samples: list[tuple[float, float, int]] = []
            for _ in range(1 + PROBE_SAMPLES):
                started = time.monotonic()
                async with http.get(hub.rstrip("/") + PROBE_PATH, timeout=timeout) as resp:
                    status, date_header = resp.status, resp.headers.get("Date", "")
                    body = await resp.json(content_type=None) if status == 200 else None
                received = time.monotonic()
                samples.append((received - started, received, _hub_ms(status, body,
                                                                      date_header)))
    except aiohttp.ClientConnectorCertificateError as exc:
        raise cert_refusal(exc, clock) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NetworkError(f"cannot reach the hub for its time: {exc or type(exc).__name__}") \
            from exc
    except ValueError as exc:
        raise NetworkError("the hub's time answer is not JSON") from exc
    rtt, received, hub_ms = min(samples[1:] or samples)
    clock.anchor(hub_ms, rtt, received)
    wall = int(time.time() * 1000)
    offset = wall - (clock.now_ms() or wall)
    log.info("hub time learned: this machine's clock is %+d ms off the hub's", offset)
    return offset


def offset_text(offset_ms: int) -> str:
    """`3 d 4 h behind`, `12 min ahead`, `40 s behind`."""
    s = abs(offset_ms) // 1000
    if s >= 86400:
        amount = f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 >= 3600 else "")
    elif s >= 3600:
        amount = f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 >= 60 else "")
    elif s >= 60:
        amount = f"{s // 60} min"
    else:
        amount = f"{s} s"
    return f"{amount} {'behind' if offset_ms < 0 else 'ahead of'}"


def cert_refusal(exc: BaseException, clock: HubClock) -> AuthError:
    """Say why a handshake refused the hub's certificate: its dates by the hub's clock (the
    certificate really is out of date: the province must act), or its issuer (not the pinned CA);
    when OpenSSL itself refused dates, the likely cause is this machine's clock."""
    dated = certclock.date_error(exc)
    if dated is not None:
        return AuthError(f"refusing the hub: {dated.describe()} — the province must renew the "
                         "hub's certificate (this is not this machine's clock)")
    if certclock.openssl_date_failure(exc):
        now = clock.now_ms()
        guess = f" (this machine's clock is {offset_text(int(time.time() * 1000) - now)} the " \
                "hub's)" if now is not None else ""
        return AuthError(f"the hub's certificate dates do not fit this machine's clock{guess}: "
                         f"the clock is probably wrong: {exc}")
    return AuthError("the hub's certificate is not from the pinned CA (the province's, pinned "
                     f"at enrollment): {exc}")


async def learn(clock: HubClock, store: DossierStore, ca_file: Path, hub: str,
                timeout_s: float) -> None:
    """Once per process: load the floor, then probe the hub's time (no-op once it is known)."""
    if clock.store is None:
        await clock.load(store)
    if clock.known:
        return
    offset = await probe(hub, ca_file.read_text("ascii"), clock, timeout_s)
    if abs(offset) > CLOCK_WARNING_MS:
        log.warning("this machine's clock is %s the hub's: dossier times use the hub's",
                    offset_text(offset))


def our_certificate_refused(exc: BaseException, identity: Identity | None,
                            clock: HubClock) -> AuthError:
    """The hub's TLS refused this node's certificate for its dates (judged by the hub's clock,
    the reference): say whether the hub's time agrees, or the hub's clock is off."""
    now = clock.now_ms()
    if identity is None or now is None:
        return AuthError(f"the hub refused this node's certificate for its dates: {exc}")
    if identity.due(now) == "expired":
        return AuthError("the hub refused this node's expired certificate; it is renewed at the "
                         f"next session: {exc}")
    return AuthError("the hub refused this node's certificate for its dates, though by the "
                     "hub's own time learned here it is valid: the hub's clock may have "
                     f"changed; tell the province: {exc}")
