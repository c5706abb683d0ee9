"""Throwaway PostgreSQL databases for the tests that run the hub on PostgreSQL.

The server is the one `.ci/run` starts (`pg_ctlcluster 15 main start`); `PG_ADMIN_URL` names a
role allowed to create databases (default: this user over the local socket). Without a server the
tests skip with the reason — and in CI (CI=true) that skip is a failure (tests/conftest.py)."""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql:///postgres")


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def create_db() -> str:
    """A new empty database; its URL. Skips the test when no server answers."""
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pytest.skip(f"postgres server not reachable at {ADMIN_URL} ({exc}); start it with "
                    "`pg_ctlcluster 15 main start` or set PG_ADMIN_URL")
    name = f"commune_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    finally:
        await admin.close()
    return _with_db(ADMIN_URL, name)


async def drop_db(url: str) -> None:
    """Drop a database made by `create_db` (closing whatever still uses it)."""
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
