"""Open SQLite the way every store here needs it, and run transactions that map errors to ours."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from protocol.errors import StoreError
from service.db import DB_ERRORS, is_postgres

log = logging.getLogger(__name__)


async def connect(path: Path, *, synchronous: str = "FULL") -> aiosqlite.Connection:
    """Open `path` in WAL mode with the given durability; the caller owns closing it. A new
    database file is created readable by its owner only (it holds citizens' personal data); SQLite
    gives its -wal and -shm files the same mode."""
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot create database {path}: {exc}") from exc
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    return conn


@asynccontextmanager
async def transaction(conn: Any) -> AsyncIterator[Any]:
    """BEGIN IMMEDIATE … COMMIT (PostgreSQL: BEGIN … COMMIT, see service.db); roll back on
    any error so nothing is half-applied.

    Cancellation-safe: aiosqlite runs each statement in its own thread, so a statement whose
    awaiting task is cancelled still runs; the rollback is queued behind it and shielded."""
    try:
        if is_postgres(conn):
            await conn.begin()
        else:
            await conn.execute("BEGIN IMMEDIATE")
    except DB_ERRORS as exc:
        raise StoreError(f"cannot start a transaction: {exc}") from exc
    except asyncio.CancelledError:
        await asyncio.shield(_rollback(conn))
        raise
    try:
        yield conn
    except DB_ERRORS as exc:
        await asyncio.shield(_rollback(conn))
        raise StoreError(f"database error, nothing applied: {exc}") from exc
    except BaseException:
        await asyncio.shield(_rollback(conn))
        raise
    try:
        await conn.commit()
    except DB_ERRORS as exc:
        await asyncio.shield(_rollback(conn))
        raise StoreError(f"commit failed: {exc}") from exc


async def _rollback(conn: Any) -> None:
    try:
        await conn.rollback()
    except DB_ERRORS:  # nothing to roll back
        pass


async def integrity_ok(conn: aiosqlite.Connection) -> bool:
    """True iff `PRAGMA integrity_check` says ok."""
    async with conn.execute("PRAGMA integrity_check") as cur:
        row = await cur.fetchone()
    return row is not None and row[0] == "ok"
