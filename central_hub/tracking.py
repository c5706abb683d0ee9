"""Public tracking at the hub: a citizen looks a dossier up by its code and tracking check.

The hub notes each create event that carries a check (`track`) in its own small table, keyed by
code, as the event is appended (by ingest or by the hub's own writes), so a lookup is one index
read whatever the dossier. A lookup does the same work whether the code is unknown or the check is
wrong — one read of that table, one constant-time comparison of 32-byte digests — and both answer
the same 404 with the same body. Failed lookups are counted per client address (a token bucket):
past the budget the address gets 429 with Retry-After, before any lookup. What a match shows is
`protocol.tracking.public_status`, nothing else of the dossier or the applicant.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from central_hub.config import HubConfig
from central_hub.ratelimit import TokenBuckets
from protocol import codec
from protocol.errors import NotFound
from protocol.events import Event
from protocol.tracking import check_digest, normalize_check, public_status
from service.web.errors import RateLimited

if TYPE_CHECKING:
    from central_hub.store import HubStore

log = logging.getLogger(__name__)

TRACKING_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracking (
    code TEXT NOT NULL, dossier TEXT NOT NULL, digest BLOB NOT NULL, PRIMARY KEY (code, dossier)
) WITHOUT ROWID;
"""
NOT_FOUND = "no dossier has this code and tracking check"
# Compared against when the code is unknown, so that path costs what a wrong check costs.
_NOBODY = check_digest("0" * 10)
MAX_ROWS = 4  # codes are unique per issuer; a hostile node could copy one, never many


def tracking_rows(events: list[Event]) -> list[tuple[str, str, bytes]]:
    """The (code, dossier, digest) rows of the creates among `events` that carry a check."""
    return [(str(e.payload["code"]), e.dossier, check_digest(str(e.payload["track"])))
            for e in events
            if e.kind == "create" and e.payload.get("track") and e.payload.get("code")]


async def backfill_tracking(conn: Any) -> None:
    """Note the checks of the creates already in the log (a migration step: edges that wrote
    checks before their hub knew of tracking are trackable once it does)."""
    last = 0
    while True:
        async with conn.execute(
                "SELECT pos, body FROM events WHERE kind='create' AND pos>? ORDER BY pos LIMIT 5000",
                (last,)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        last = rows[-1][0]
        found = tracking_rows([codec.decode_stored(body) for _, body in rows])
        if found:
            await conn.executemany(
                "INSERT INTO tracking VALUES (?,?,?) ON CONFLICT DO NOTHING", found)


def client_address(peer: str, forwarded: str, trusted: frozenset[str]) -> str:
    """Who is asking: the peer, or behind a trusted reverse proxy the last address it names
    in X-Forwarded-For (the one it saw; anything before it the client could have written)."""
    if peer in trusted:
        for address in reversed([a.strip() for a in forwarded.split(",")]):
            if address and address not in trusted:
                return address[:64]
    return peer


class Tracker:
    """Lookups by code and check over the hub store's reader, rate-limited per address."""

    def __init__(self, store: HubStore, config: HubConfig) -> None:
        self.store = store
        self.failures = TokenBuckets(config.track_fail_per_min / 60, config.track_fail_burst)
        self.trusted = frozenset(a.strip() for a in config.trusted_proxies.split(",")
                                 if a.strip())

    def address(self, request: web.Request) -> str:
        """The client address a request counts against."""
        return client_address(request.remote or "?",
                              request.headers.get("X-Forwarded-For", ""), self.trusted)

    async def find(self, code: str, check: str) -> str | None:
        """The dossier with this code and check, or None (the same work either way)."""
        given = check_digest(normalize_check(check) or "")
        async with self.store.reader.execute(
                "SELECT dossier, digest FROM tracking WHERE code=? LIMIT ?",
                (code[:64], MAX_ROWS)) as cur:
            rows = await cur.fetchall()
        found = None
        for dossier, digest in rows or [("", _NOBODY)]:
            if hmac.compare_digest(bytes(digest), given) and dossier:
                found = str(dossier)
        return found

    async def lookup(self, address: str, code: str, check: str, lang: str = "vi"
                     ) -> dict[str, Any]:
        """What tracking shows of the dossier; NotFound for an unknown code or a wrong check
        alike (and the failure counted), RateLimited once the address failed too often."""
        now = time.monotonic()
        wait = self.failures.wait(address, now)
        if wait:
            raise RateLimited("too many lookups that found nothing from this address; "
                              "try again later", wait)
        dossier = await self.find(code, check)
        state = await self.store.dossiers.load_state(dossier, committed=True) if dossier else None
        if dossier is None or state is None or state.header is None:
            self.failures.take(address, now)
            raise NotFound(NOT_FOUND)
        return public_status(state, await self.store.dossiers.history(dossier), lang)

