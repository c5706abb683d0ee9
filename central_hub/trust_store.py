"""The hub's trust records: enrollment, node credentials and certificates, security alerts, and
the log as an auditor reads it.

A node certificate is accepted while its node and the certificate itself are unrevoked. The first
request made with a newer certificate supersedes (revokes) the node's older ones, so a lost
renewal answer never locks a node out, and a key stolen before a renewal stops working after it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from protocol.errors import AuthError, NotFound, ValidationError
from service.eventlog import EventLog
from service.sqlite import transaction

log = logging.getLogger(__name__)

ALERT_EVERY_MS = 60_000
TOKEN_TTL_MS = 72 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Node:
    """An enrolled edge node, as authenticated from its credential."""

    node: str
    commune: str


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What a node receives when it enrolls."""

    node: str
    commune: str
    commune_name: str
    agency: str
    credential: str
    certificate: str = ""  # PEM, when enrolled with a certificate request
    replaces: str = ""  # the node this one replaces (a token of `central-hub node replace`)


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def token_hash(token: str) -> bytes:
    """The stored hash of an enrollment token: of its secret, without the CA fingerprint."""
    return _sha(token.partition(".")[0])


def check_commune(code: str) -> str:
    """A GSO commune code: five digits."""
    if not (isinstance(code, str) and code.isdigit() and len(code) == 5):
        raise ValidationError("commune code must be 5 digits (GSO code, e.g. 02245)",
                              field="commune")
    return code


class TrustStore:
    """Certificates, alerts and audit reads: a part of `HubStore`, over the log's connection."""

    def __init__(self, log: EventLog) -> None:
        self.conn = log.conn
        self.reader = log.reader
        self.lock = log.lock
        self.now_ms = log.time.now_ms

    # -- enrollment and credentials -------------------------------------------------------------

    async def create_enroll_token(self, commune: str, name: str | None,
                                  ca_fingerprint: str | None = None) -> str:
        """A one-time enrollment token bound to one commune (192 random bits, stored hashed,
        72 h). With `ca_fingerprint`, the token ends with `.` and its first 32 hex digits, so
        the node can pin the CA on first contact."""
        check_commune(commune)
        async with self.lock, transaction(self.conn):
            return await self.add_enroll_token(commune, name, ca_fingerprint)

    async def add_enroll_token(self, commune: str, name: str | None,
                               ca_fingerprint: str | None = None) -> str:
        """`create_enroll_token` inside the caller's transaction."""
        token = "enr_" + secrets.token_urlsafe(24)  # never starts with "-": safe as an argument
        pin = f".{ca_fingerprint[:32]}" if ca_fingerprint else ""
        now = self.now_ms()
        await self.conn.execute(
            "INSERT INTO communes(code, name) VALUES (?,?) ON CONFLICT(code) DO UPDATE SET "
            "name=CASE WHEN ? THEN communes.name ELSE excluded.name END",
            (commune, name or f"Xã {commune}", name is None))
        await self.conn.execute("INSERT INTO enroll_tokens VALUES (?,?,?,?,NULL,NULL)",
                                (token_hash(token), commune, now, now + TOKEN_TTL_MS))
        return token + pin

    async def enroll(self, token: str) -> Enrollment:
        """Exchange a one-time token for a node identity and a bearer credential (plain-HTTP
        development hubs)."""
        return await self._enroll(token, None)

    async def enroll_certificate(self, token: str,
                                 issue: Callable[[str], tuple[str, str, int]]) -> Enrollment:
        """Exchange a one-time token for a node identity and a certificate: `issue(node)` signs
        the node's request and returns (PEM, serial, not-after ms). No bearer credential is
        handed out (the stored one is random and never leaves the hub)."""
        return await self._enroll(token, issue)

    async def _enroll(self, token: str,
                      issue: Callable[[str], tuple[str, str, int]] | None) -> Enrollment:
        now = self.now_ms()
        async with self.lock, transaction(self.conn):
            async with self.conn.execute(
                "SELECT commune, expires_at, used_at FROM enroll_tokens WHERE token_hash=?",
                (token_hash(token),)) as cur:
                row = await cur.fetchone()
            if row is None or row[2] is not None or row[1] < now:
                raise AuthError("enrollment token is unknown, used or expired")
            commune = row[0]
            async with self.conn.execute(
                "SELECT count(*) FROM nodes WHERE commune=?", (commune,)) as cur:
                count_row = await cur.fetchone()
            node = f"{commune}.{(count_row[0] if count_row else 0) + 1:02d}"
            credential = secrets.token_urlsafe(32)
            await self.conn.execute(
                "INSERT INTO nodes(node, commune, credential_hash, enrolled_at) VALUES (?,?,?,?)",
                (node, commune, _sha(credential), now))
            await self.conn.execute(
                "UPDATE enroll_tokens SET used_at=?, node=? WHERE token_hash=?",
                (now, node, token_hash(token)))
            # a replacement's token (central_hub/replace.py): the new node is its successor
            async with self.conn.execute(
                    "SELECT node FROM node_replacements WHERE token_hash=?",
                    (token_hash(token),)) as cur:
                replaced = await cur.fetchone()
            if replaced is not None:
                await self.conn.execute(
                    "UPDATE node_replacements SET successor=? WHERE token_hash=?",
                    (node, token_hash(token)))
            certificate = ""
            if issue is not None:
                certificate, serial, not_after = issue(node)
                await self.add_certificate(node, serial, not_after)
                credential = ""
            async with self.conn.execute("SELECT name FROM communes WHERE code=?",
                                         (commune,)) as cur:
                name_row = await cur.fetchone()
        return Enrollment(node, commune, name_row[0] if name_row else commune, node, credential,
                          certificate, str(replaced[0]) if replaced else "")

    async def authenticate(self, credential: str) -> Node:
        """The node a credential belongs to; AuthError if unknown or revoked."""
        async with self.reader.execute(
            "SELECT node, commune FROM nodes WHERE credential_hash=? AND revoked_at IS NULL",
            (_sha(credential),)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise AuthError("unknown or revoked node credential")
        return Node(row[0], row[1])

    async def revoke(self, node: str) -> None:
        """Revoke a node's credential and certificates; its next request is refused."""
        async with self.lock, transaction(self.conn):
            cur = await self.conn.execute(
                "UPDATE nodes SET revoked_at=coalesce(revoked_at, ?) WHERE node=?",
                (self.now_ms(), node))
            if cur.rowcount == 0:
                raise NotFound(f"no node {node}")
            await self.revoke_certificates(node)

    # -- certificates -----------------------------------------------------------------------------

    async def add_certificate(self, node: str, serial: str, not_after_ms: int) -> None:
        """Record a certificate just issued to `node` (inside the caller's transaction)."""
        await self.conn.execute(
            "INSERT INTO node_certs(serial, node, issued_at, not_after) VALUES (?,?,?,?)",
            (serial, node, self.now_ms(), not_after_ms))

    async def record_certificate(self, node: str, serial: str, not_after_ms: int) -> None:
        """Record a renewed certificate in its own transaction."""
        async with self.lock, transaction(self.conn):
            await self.add_certificate(node, serial, not_after_ms)

    async def _cert_row(self, node: str, serial: str) -> tuple[str, Any, Any, Any]:
        async with self.reader.execute(
            "SELECT n.commune, n.revoked_at, c.revoked_at, c.first_used_at FROM node_certs c "
            "JOIN nodes n ON n.node=c.node WHERE c.serial=? AND c.node=?", (serial, node)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise AuthError("unknown node certificate")
        if row[1] is not None:
            raise AuthError(f"node {node} is revoked")
        if row[2] is not None:
            raise AuthError("this certificate is revoked or superseded")
        return row[0], row[1], row[2], row[3]

    async def certificate_node(self, node: str, serial: str) -> str:
        """The commune of a node presenting certificate `serial`; AuthError if the node or the
        certificate is revoked (checked on every request: revocation applies at once). The first
        use of a certificate supersedes the node's older ones."""
        commune, _, _, first_used = await self._cert_row(node, serial)
        if first_used is None:
            async with self.lock, transaction(self.conn):
                now = self.now_ms()
                await self.conn.execute(
                    "UPDATE node_certs SET first_used_at=? WHERE serial=? AND first_used_at IS NULL",
                    (now, serial))
                await self.conn.execute(
                    "UPDATE node_certs SET revoked_at=?, reason='superseded' WHERE node=? AND "
                    "serial<>? AND revoked_at IS NULL AND issued_at <= (SELECT issued_at FROM "
                    "node_certs WHERE serial=?)", (now, node, serial, serial))
        return commune

    async def recoverable_node(self, node: str, serial: str) -> str:
        """The commune of a node renewing with certificate `serial` (maybe expired); AuthError if
        the node or that certificate is revoked or superseded."""
        commune, *_ = await self._cert_row(node, serial)
        return commune

    async def revoke_certificates(self, node: str) -> None:
        """Revoke every certificate of `node` (inside the caller's transaction)."""
        await self.conn.execute(
            "UPDATE node_certs SET revoked_at=?, reason='revoked' WHERE node=? AND "
            "revoked_at IS NULL", (self.now_ms(), node))

    async def certificates(self, node: str) -> list[dict[str, Any]]:
        """A node's certificates, oldest first."""
        async with self.reader.execute(
            "SELECT serial, issued_at, not_after, first_used_at, revoked_at, reason FROM "
            "node_certs WHERE node=? ORDER BY issued_at, serial", (node,)) as cur:
            keys = ("serial", "issued_at", "not_after", "first_used_at", "revoked_at", "reason")
            return [dict(zip(keys, r, strict=True)) for r in await cur.fetchall()]

    # -- security alerts ------------------------------------------------------------------------

    async def alert(self, kind: str, detail: str, *, node: str | None = None,
                    origin: str | None = None, seq: int | None = None) -> None:
        """Record a security alert for operators, in its own transaction (call it outside any
        other; it takes the lock). The same kind for the same node is kept at most once a minute,
        so a node hammering the hub cannot flood the table."""
        now = self.now_ms()
        async with self.lock, transaction(self.conn):
            await self.conn.execute(
                "INSERT INTO security_events(at, kind, node, origin, seq, detail) "
                "SELECT ?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM security_events WHERE "
                "kind=? AND node IS NOT DISTINCT FROM ? AND at>?)",
                (now, kind, node, origin, seq, detail[:500], kind, node, now - ALERT_EVERY_MS))
        log.warning("security alert %s node=%s origin=%s seq=%s: %s", kind, node, origin, seq,
                    detail[:200])

    async def record_alert(self, at: int, kind: str, detail: str, *, node: str, origin: str,
                           seq: int) -> None:
        """Record a security alert inside the caller's transaction (it goes with what it is
        about, e.g. a quarantine), without the once-a-minute limit of `alert`."""
        await self.conn.execute(
            "INSERT INTO security_events(at, kind, node, origin, seq, detail) "
            "VALUES (?,?,?,?,?,?)", (at, kind, node, origin, seq, detail))

    async def security_events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest security alerts, newest first (for the dashboard)."""
        async with self.reader.execute(
            "SELECT id, at, kind, node, origin, seq, detail FROM security_events "
            "ORDER BY id DESC LIMIT ?", (limit,)) as cur:
            keys = ("id", "at", "kind", "node", "origin", "seq", "detail")
            return [dict(zip(keys, r, strict=True)) for r in await cur.fetchall()]

    # -- the log as an auditor reads it ---------------------------------------------------------

    async def audit_origins(self) -> dict[str, tuple[int, bytes] | None]:
        """Every origin in the log or quarantine, with its recorded chain head (or None)."""
        out: dict[str, tuple[int, bytes] | None] = {}
        async with self.reader.execute(
                "SELECT DISTINCT origin FROM events UNION SELECT origin FROM quarantine") as cur:
            for (origin,) in await cur.fetchall():
                out[origin] = None
        async with self.reader.execute("SELECT origin, last_seq, last_hash FROM origins") as cur:
            for origin, seq, digest in await cur.fetchall():
                out[origin] = (int(seq), bytes(digest))
        return out

    async def audit_rows(self, origin: str) -> AsyncIterator[tuple[str, int, int | None, bytes,
                                                                   bytes]]:
        """One origin's stored events and quarantined events merged by seq:
        (table, seq, pos or None, stored hash, stored body)."""
        sql = ("SELECT 'events', seq, pos, hash, body FROM events WHERE origin=? UNION ALL "
               "SELECT 'quarantine', seq, NULL, hash, body FROM quarantine WHERE origin=? "
               "ORDER BY 2, 1")
        async with self.reader.execute(sql, (origin, origin)) as cur:
            async for table, seq, pos, digest, body in cur:
                yield str(table), int(seq), pos, bytes(digest), bytes(body)

    async def audit_summary(self) -> dict[str, Any]:
        """Counts for the audit's report."""
        async with self.reader.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM quarantine)") as cur:
            row = await cur.fetchone()
        return {"events": int(row[0]) if row else 0, "quarantined": int(row[1]) if row else 0}
