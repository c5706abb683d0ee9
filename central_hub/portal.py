"""The province portal's credentials: API keys, a principal of their own beside operators and nodes.

A key (`central-hub portal add`) is 256 random bits, shown once and stored only as its SHA-256. It
may do three things: file a dossier (`POST /api/submissions`), upload the scans a filing refers to,
and read the status of the dossiers it filed itself. Operator routes refuse it (401) like any
unknown token; a revoked key is refused everywhere at once. Its tables come with the hub's
migration 7 (central_hub/schema.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from typing import Any

from aiohttp import web

from protocol.errors import AuthError, NotFound, ValidationError
from service.sqlite import transaction

log = logging.getLogger(__name__)

PORTAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS portals (
    name TEXT PRIMARY KEY, key_hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL,
    revoked_at INTEGER, last_used_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS portal_uploads (
    sha256 TEXT NOT NULL, portal TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (sha256, portal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS submissions (
    dossier TEXT PRIMARY KEY, portal TEXT NOT NULL, code TEXT NOT NULL, commune TEXT NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS submission_codes (day TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
KEY_PREFIX = "psk_"
PAGE_PORTAL = "submit-page"  # the hub's own /submit page files as this (it holds no key)
TOUCH_EVERY_MS = 60_000  # last use is recorded at most this often per key
PORTAL_KEY = web.RequestKey("portal", str)


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check_name(name: str) -> str:
    """A portal's name: lowercase letters, digits, `.`, `_`, `-` (not the page's own)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name == PAGE_PORTAL:
        raise ValidationError("portal name must be 1–32 lowercase letters, digits, '.', '_' "
                              f"or '-' (and not {PAGE_PORTAL})", field="name")
    return name


class Portals:
    """The portal keys, over the hub store's connections."""

    def __init__(self, conn: Any, reader: Any, lock: Any, now_ms: Any) -> None:
        self.conn, self.reader, self.lock, self.now_ms = conn, reader, lock, now_ms
        self._touched: dict[str, int] = {}

    async def add(self, name: str) -> str:
        """A new key for portal `name`; shown once (only its hash is kept)."""
        check_name(name)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.lock, transaction(self.conn):
            async with self.conn.execute("SELECT 1 FROM portals WHERE name=?", (name,)) as cur:
                if await cur.fetchone() is not None:
                    raise ValidationError(f"portal {name} exists: revoke it first, or pick "
                                          "another name", field="name")
            await self.conn.execute(
                "INSERT INTO portals(name, key_hash, created_at) VALUES (?,?,?)",
                (name, _hash(key), self.now_ms()))
        return key

    async def revoke(self, name: str) -> None:
        """Revoke a portal's key: its next request is refused. The name stays taken (its
        filings keep naming it)."""
        async with self.lock, transaction(self.conn):
            cur = await self.conn.execute(
                "UPDATE portals SET revoked_at=coalesce(revoked_at, ?) WHERE name=?",
                (self.now_ms(), name))
            if cur.rowcount == 0:
                raise NotFound(f"no portal {name}")

    async def items(self) -> list[dict[str, Any]]:
        """Every portal: name, when made, revoked, last used, how many filings."""
        async with self.reader.execute(
                "SELECT p.name, p.created_at, p.revoked_at, p.last_used_at, "
                "(SELECT count(*) FROM submissions s WHERE s.portal=p.name) "
                "FROM portals p ORDER BY p.name") as cur:
            keys = ("name", "created_at", "revoked_at", "last_used_at", "submissions")
            return [dict(zip(keys, row, strict=True)) for row in await cur.fetchall()]

    async def authenticate(self, key: str) -> str:
        """The portal a key belongs to; AuthError if unknown or revoked."""
        async with self.reader.execute(
                "SELECT name FROM portals WHERE key_hash=? AND revoked_at IS NULL",
                (_hash(key),)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise AuthError("unknown or revoked portal key (central-hub portal add)")
        name = str(row[0])
        now = self.now_ms()
        if now - self._touched.get(name, 0) > TOUCH_EVERY_MS:
            self._touched[name] = now
            async with self.lock, transaction(self.conn):
                await self.conn.execute("UPDATE portals SET last_used_at=? WHERE name=?",
                                        (now, name))
        return name

    async def of(self, request: web.Request) -> str:
        """The portal calling (Authorization: Bearer KEY), or AuthError."""
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header.startswith("Bearer ") else ""
        if not key:
            raise AuthError("send the portal's key as Authorization: Bearer KEY")
        name = await self.authenticate(key)
        request[PORTAL_KEY] = name
        return name

    async def uploaded(self, portal: str, sha: str) -> None:
        """Remember that `portal` uploaded the blob `sha` (it may refer to it in a filing)."""
        async with self.lock, transaction(self.conn):
            await self.conn.execute(
                "INSERT INTO portal_uploads VALUES (?,?,?) ON CONFLICT DO NOTHING",
                (sha, portal, self.now_ms()))

    async def may_use(self, portal: str, sha: str) -> bool:
        """True iff `portal` uploaded the blob `sha`."""
        async with self.reader.execute(
                "SELECT 1 FROM portal_uploads WHERE sha256=? AND portal=?", (sha, portal)) as cur:
            return await cur.fetchone() is not None

    async def filed_by(self, dossier: str) -> str | None:
        """The portal that filed a dossier (None: not filed online)."""
        async with self.reader.execute(
                "SELECT portal FROM submissions WHERE dossier=?", (dossier,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None
