"""Schema versions: the numbered migrations that bring a database to the version this code writes.

Theory. A database lists the migrations applied to it in `schema_migrations`, one row per version;
its version is the highest. Each kind of database (the edge's, the hub's) has a `Plan`: migrations
1, 2, 3… Opening a database runs, in order, every migration above its version, each in one
transaction together with its version row, so an error or a crash leaves the previous version
whole and the next open starts that migration again. A database newer than the code is refused
before anything is written (`SchemaTooNew`): an older program must not guess at tables it does not
know.

Migration 1 is the first release's tables, written `CREATE … IF NOT EXISTS`. A database made by
that release has tables and no version row; migration 1 runs on it like on an empty file, creating
only what it lacks (that release made some tables lazily), and versions it. A released migration
never changes: a change of schema is a new migration at the end of its kind's plan.

A step is SQL in SQLite's dialect, translated for PostgreSQL by `service.db.pg_ddl`, or an async
function of the connection for data that SQL alone cannot move. SQLite's `ALTER TABLE` adds,
renames and drops columns; anything else (a constraint, a column's type) is the twelve-step table
rebuild, in SQL, inside the migration's transaction (foreign keys cannot be switched off there:
rebuild a referenced table with care). On PostgreSQL every step is transactional DDL, and several
hub processes may open the database at once: each migration takes the schema advisory lock and
reads the version again under it, so exactly one process applies it and the others see it done.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from protocol import APP_VERSION
from protocol.errors import SchemaTooNew, StoreError
from service.db import advisory_lock, is_postgres
from service.sqlite import transaction

log = logging.getLogger(__name__)

Step = str | Callable[[Any], Awaitable[None]]
VERSIONS = "schema_migrations"
VERSIONS_TABLE = (f"CREATE TABLE IF NOT EXISTS {VERSIONS} (version INTEGER NOT NULL PRIMARY KEY, "
                  "name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
LOCK = "schema"  # the advisory lock that service.db's executescript takes too


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered change of schema: its steps run in one transaction."""

    version: int
    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"migration version must be 1 or more, not {self.version}")
        if not self.name.strip():
            raise ValueError(f"migration {self.version} needs a name")
        if not self.steps:
            raise ValueError(f"migration {self.version} ({self.name}) has no steps")


@dataclass(frozen=True, slots=True)
class Plan:
    """The migrations of one kind of database, numbered 1…n without gaps."""

    kind: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.kind} migrations must be numbered 1…n in order: {numbers}")

    @property
    def latest(self) -> int:
        """The version this code writes."""
        return len(self.migrations)


def statements(script: str) -> list[str]:
    """The statements of a SQL script (SQLite's tokenizer decides where each one ends, so a `;`
    inside a string or a comment does not split it); comments alone are dropped."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            body = "\n".join(line for line in pending.splitlines()
                             if not line.strip().startswith("--")).strip()
            if body != ";":
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n\t;"):
        raise ValueError(f"unterminated SQL statement: {pending.strip()[:60]!r}")
    return out


async def run_script(conn: Any, script: str) -> None:
    """Run a schema script inside the caller's transaction (sqlite3's executescript would
    commit it first; PostgreSQL runs the translated script as one query within it)."""
    if is_postgres(conn):
        await conn.executescript(script)
        return
    for statement in statements(script):
        await conn.execute(statement)


async def _scalar(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> Any:
    async with conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


async def tables(conn: Any) -> set[str]:
    """The names of the database's own tables."""
    if is_postgres(conn):
        sql = ("SELECT table_name FROM information_schema.tables "
               "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    async with conn.execute(sql) as cur:
        return {str(r[0]) for r in await cur.fetchall()}


async def version_of(conn: Any) -> int:
    """The database's schema version: 0 when it has none (empty, or the first release's)."""
    if VERSIONS not in await tables(conn):
        return 0
    return int(await _scalar(conn, f"SELECT max(version) FROM {VERSIONS}") or 0)


def refuse_newer(found: int, plan: Plan, where: str) -> None:
    """SchemaTooNew when the database was written by a newer program."""
    if found > plan.latest:
        raise SchemaTooNew(
            f"{where} has schema version {found}, newer than the {plan.latest} this program "
            f"(commune-sync {APP_VERSION}) knows: a newer release wrote it; upgrade the program "
            "to that release or later")


async def upgrade(conn: Any, plan: Plan, where: str, target: int | None = None) -> int:
    """Bring the database on `conn` (the writer, outside a transaction) to `target`, the plan's
    latest by default; return the version it had. `where` names it in messages."""
    goal = plan.latest if target is None else target
    found = await version_of(conn)
    refuse_newer(found, plan, where)
    if found >= goal:
        return found
    first_release = found == 0 and bool(await tables(conn))
    for migration in plan.migrations[found:goal]:
        await _apply(conn, plan, migration, where)
    if first_release:
        log.info("%s upgraded from schema version 1 (the first release's, unversioned) to %d",
                 where, goal)
    elif found:
        log.info("%s upgraded from schema version %d to %d", where, found, goal)
    else:
        log.info("%s created at schema version %d", where, goal)
    return found


async def upgraded(conn: Any, plan: Plan, where: str) -> Any:
    """`conn` once its database is at the plan's latest version (`upgrade`); closed when that
    fails, so a refused database leaves no connection (nor its thread) behind."""
    try:
        await upgrade(conn, plan, where)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _apply(conn: Any, plan: Plan, migration: Migration, where: str) -> None:
    before = migration.version - 1
    try:
        async with transaction(conn):
            await advisory_lock(conn, LOCK)
            now = await version_of(conn)  # another process may have applied it meanwhile
            refuse_newer(now, plan, where)
            if now >= migration.version:
                return
            if now != before:
                raise StoreError(f"at version {now}, expected {before}")
            log.info("%s: schema migration %d (%s)", where, migration.version, migration.name)
            await run_script(conn, VERSIONS_TABLE)
            for step in migration.steps:
                if isinstance(step, str):
                    await run_script(conn, step)
                else:
                    await step(conn)
            await conn.execute(f"INSERT INTO {VERSIONS} VALUES (?,?,?)",
                               (migration.version, migration.name, int(time.time() * 1000)))
    except SchemaTooNew:
        raise
    except Exception as exc:  # a step's own error too: the transaction rolled back
        reason = exc.message if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
        raise StoreError(f"{where}: schema migration {migration.version} ({migration.name}) "
                         f"failed, the database stays at version {before}: {reason}") from exc
