"""Schema migrations: the previous release's databases upgrade and sync losing nothing, a newer
database is refused in one line, a failed migration leaves the previous version, on both stores."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from central_hub import config as hub_config
from central_hub.app import open_accounts as open_hub_accounts
from central_hub.schema import MIGRATIONS as HUB
from central_hub.store import HubStore
from edge_node import config as edge_config
from edge_node.cli import main as edge_main
from edge_node.schema import MIGRATIONS as EDGE
from protocol.errors import SchemaTooNew, StoreError, ValidationError
from service.accounts import Profile, SessionIdle
from service.db import PgConnection, is_pg_url
from service.migrations import Migration, Plan, statements, tables, upgrade, version_of
from service.sqlite import connect
from tests.harness import Net
from tests.served import free_port

FIXTURE = Path(__file__).parents[1] / "fixtures" / "prev_release"
PREVIOUS_ONLY = {"schema_migrations", "session_activity"}  # v1 has them, the release had not


async def open_db(kind: str, tmp_path: Path) -> Any:
    """A writer connection on an empty database of `kind` (sqlite, or a PostgreSQL URL)."""
    if is_pg_url(kind):
        writer, _ = await PgConnection.open(kind, pool_size=1)
        return writer
    return await connect(tmp_path / "x.db")


async def scalar(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> Any:
    async with conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def load_dump(url: str, path: Path) -> None:
    """Replay a plain SQL dump (made by pg_dump --inserts) into the database at `url`."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(path.read_text())
    finally:
        await conn.close()


@pytest.fixture
async def previous(tmp_path: Path, hub_db: str) -> AsyncIterator[tuple[Path, Path, dict[str, Any]]]:
    """The previous release's hub and edge data dirs (copies), and what was done in them."""
    kind = "sqlite" if hub_db == "sqlite" else "postgres"
    src = FIXTURE / kind
    hub_dir, edge_dir = tmp_path / "hub", tmp_path / "edge"
    shutil.copytree(src / "hub", hub_dir)
    shutil.copytree(src / "edge", edge_dir)
    if kind == "postgres":
        await load_dump(hub_db, hub_dir / "hub.sql")
    config = hub_config.load(hub_dir)
    hub_config.save(hub_dir, dataclasses.replace(config, db=hub_db))
    yield hub_dir, edge_dir, json.loads((src / "facts.json").read_text())


def sqlite_schema(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return {name: sql for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")}


# -- the previous release's databases ----------------------------------------------------------


@pytest.mark.both_stores
async def test_previous_release_databases_migrate_and_sync_losing_nothing(
        tmp_path: Path, hub_db: str, previous: tuple[Path, Path, dict[str, Any]]) -> None:
    hub_dir, edge_dir, facts = previous
    with closing(sqlite3.connect(edge_dir / "edge.db")) as raw:  # as the release left it
        assert "schema_migrations" not in {r[0] for r in raw.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
    node = facts["node"]
    net = Net(tmp_path / "net", db=hub_db)
    try:
        hub = await net.serve_hub(hub_dir)
        edge = await net.serve_edge(edge_dir, edge_config.load(edge_dir))
        assert await version_of(hub.store.conn) == HUB.latest
        assert await version_of(edge.store.conn) == EDGE.latest
        assert edge.store.own_seq == facts["edge_own_seq"]
        assert await edge.store.ack() == facts["edge_ack"]
        assert (await edge.store.pending_stats())[0] == facts["edge_pending"]
        assert await scalar(hub.store.conn, "SELECT last_seq FROM origins WHERE origin=?",
                            (node,)) == facts["hub_holds_of_edge"]

        result = await edge.sync()
        # the acked events are not sent again; those whose ack was lost once more, and only once
        assert result.sent == facts["edge_pending"]
        assert result.pending_after == 0
        assert (await edge.store.pending_stats())[0] == 0
        assert await edge.store.ack() == facts["edge_own_seq"]
        assert await scalar(hub.store.conn, "SELECT last_seq FROM origins WHERE origin=?",
                            (node,)) == facts["edge_own_seq"]
        async with hub.store.conn.execute(
                "SELECT seq, count(*) FROM events WHERE origin=? GROUP BY seq ORDER BY seq",
                (node,)) as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [
                (seq, 1) for seq in range(1, facts["edge_own_seq"] + 1)]
        hub_total = await scalar(hub.store.conn, "SELECT count(*) FROM events")
        assert hub_total == facts["hub_events"] + facts["edge_own_seq"] - facts["hub_holds_of_edge"]

        for dossier in facts["acked"] + facts["ack_lost"] + facts["unsent"]:
            status, body = await hub.api.get(f"/api/dossiers/{dossier}")
            assert status == 200, body
        _, at_hub = await hub.api.get(f"/api/dossiers/{facts['edited_offline']}")
        assert at_hub["applicant"]["phone"] == "0987654321"
        _, at_edge = await edge.api.get(f"/api/dossiers/{facts['edited_at_hub']}")
        assert at_edge["applicant"]["address"] == "Thôn Bản Chang, xã Côn Lôn"
        assert await edge.store.cursor() > 0

        again = await edge.sync()
        assert (again.sent, again.received) == (0, 0)
        assert await scalar(hub.store.conn, "SELECT count(*) FROM events") == hub_total
    finally:
        await net.close()


@pytest.mark.parametrize("kind", ["edge", "hub"])
async def test_version_1_is_the_previous_release_schema_and_both_paths_end_alike(
        tmp_path: Path, kind: str) -> None:
    """Migration 1 creates exactly what the release had (plus the desk's session table that
    was on the way to it), and a fresh database ends with the schema an upgraded one has."""
    plan, name = (EDGE, "edge/edge.db") if kind == "edge" else (HUB, "hub/hub.db")
    released = FIXTURE / "sqlite" / name
    fresh1, fresh, upgraded = tmp_path / "v1.db", tmp_path / "new.db", tmp_path / "old.db"
    shutil.copy(released, upgraded)
    for path, target in ((fresh1, 1), (fresh, None), (upgraded, None)):
        conn = await connect(path)
        try:
            await upgrade(conn, plan, str(path), target=target)
        finally:
            await conn.close()
    v1 = sqlite_schema(fresh1)
    assert {k: v for k, v in v1.items() if k not in PREVIOUS_ONLY} == sqlite_schema(released)
    assert sqlite_schema(fresh) == sqlite_schema(upgraded)
    assert "session_activity" not in sqlite_schema(fresh)


async def test_postgres_fresh_and_upgraded_hub_databases_end_alike(pg_url: str) -> None:
    """On PostgreSQL too: the previous release's dump, upgraded, has a fresh database's columns."""
    fresh_url = pg_url
    from tests.pg import create_db, drop_db

    old_url = await create_db()
    try:
        await load_dump(old_url, FIXTURE / "postgres" / "hub" / "hub.sql")
        shapes = []
        for url in (fresh_url, old_url):
            conn = await open_db(url, Path())
            try:
                await upgrade(conn, HUB, url)
                async with conn.execute(
                        "SELECT table_name, column_name, data_type, is_nullable, "
                        "coalesce(column_default, '') FROM information_schema.columns "
                        "WHERE table_schema = current_schema() ORDER BY 1, 2") as cur:
                    shapes.append([tuple(r) for r in await cur.fetchall()])
            finally:
                await conn.close()
        assert shapes[0] == shapes[1]
        assert any(r[:2] == ("sessions", "last_seen_at") for r in shapes[0])
        assert not any(r[0] == "session_activity" for r in shapes[0])
    finally:
        await drop_db(old_url)


# -- the first real migrations ------------------------------------------------------------------


@pytest.mark.both_stores
async def test_session_activity_table_folds_into_a_column(tmp_path: Path, hub_db: str) -> None:
    """A database of the unreleased version-1 schema kept activity in its own table: the
    migration moves it into `sessions`, and idle logout keeps judging by it."""
    conn = await open_db(hub_db, tmp_path)
    try:
        await upgrade(conn, HUB, "test", target=1)
        now = int(time.time())
        await conn.execute("INSERT INTO users VALUES ('op', 'x', 'operator', ?, 0)", (now,))
        for token, seen in ((b"idle", (now - 3600) * 1000), (b"busy", now * 1000),
                            (b"never", None)):
            await conn.execute("INSERT INTO sessions VALUES (?, 'op', ?)", (token, now + 3600))
            if seen is not None:
                await conn.execute("INSERT INTO session_activity VALUES (?,?)", (token, seen))
        await conn.commit()
        assert await upgrade(conn, HUB, "test") == 1
        async with conn.execute("SELECT token_hash, last_seen_at FROM sessions ORDER BY 1") as cur:
            rows = {bytes(r[0]): r[1] for r in await cur.fetchall()}
        assert rows == {b"busy": now * 1000, b"idle": (now - 3600) * 1000, b"never": None}
        assert "session_activity" not in await tables(conn)
    finally:
        await conn.close()


@pytest.mark.both_stores
async def test_idle_logout_and_profile_on_the_migrated_accounts(tmp_path: Path,
                                                                hub_db: str) -> None:
    hub_config.save(tmp_path, hub_config.HubConfig(db=hub_db))
    accounts = await open_hub_accounts(tmp_path, hub_db)
    try:
        await accounts.add_user("op", "correct-horse-1", "operator")
        token = await accounts.login("op", "correct-horse-1")
        assert (await accounts.check(token)).username == "op"
        assert await accounts.profile("op") == Profile("op", "", "")
        saved = await accounts.set_profile("op", "  Nguyễn Thị Hoà ", "Công chức Tư pháp")
        assert (saved.full_name, saved.position) == ("Nguyễn Thị Hoà", "Công chức Tư pháp")
        assert await accounts.profile("op") == saved
        assert [(u["full_name"], u["position"]) for u in await accounts.users()] == [
            ("Nguyễn Thị Hoà", "Công chức Tư pháp")]
        assert (await accounts.check(token)).username == "op"  # the session goes on
        for bad in ("x" * 101, "two\nlines"):
            with pytest.raises(ValidationError) as err:
                await accounts.set_profile("op", bad, "")
            assert err.value.field == "full_name"
        with pytest.raises(ValidationError):
            await accounts.set_profile("nobody", "A", "B")
        with pytest.raises(ValidationError):
            await accounts.profile("nobody")
        accounts.idle_s = 60
        await accounts.conn.execute("UPDATE sessions SET last_seen_at = last_seen_at - 120000")
        await accounts.conn.commit()
        with pytest.raises(SessionIdle):
            await accounts.check(token)
    finally:
        await accounts.conn.close()


# -- refusing a newer database -------------------------------------------------------------------


def bump(path: Path, version: int) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", (version,))
        conn.commit()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(module: str, *args: str) -> tuple[int, str]:
    """Run `python -m module args` to its end (its process group killed if it overstays: a
    serve that was not refused, and the workers it started); (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, err


def one_line_refusal(err: str, found: int, latest: int) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"schema version {found}, newer than the {latest}" in err, err
    assert "upgrade the program" in err, err


def test_edge_refuses_a_newer_database_in_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "edge"
    shutil.copytree(FIXTURE / "sqlite" / "edge", data)
    assert edge_main(["status", "--data", str(data)]) == 0  # upgrades it
    bump(data / "edge.db", EDGE.latest + 1)
    before = digest(data / "edge.db")
    capsys.readouterr()
    assert edge_main(["status", "--data", str(data)]) == 1
    one_line_refusal(capsys.readouterr().err, EDGE.latest + 1, EDGE.latest)
    assert edge_main(["user", "list", "--data", str(data)]) == 1  # accounts open it too
    one_line_refusal(capsys.readouterr().err, EDGE.latest + 1, EDGE.latest)
    assert digest(data / "edge.db") == before  # nothing written

    code, err = run_cli("edge_node", "serve", "--data", str(data), "--port", str(free_port()))
    assert code == 1, err
    one_line_refusal(err, EDGE.latest + 1, EDGE.latest)


@pytest.mark.both_stores
async def test_hub_refuses_a_newer_database_in_one_line(
        tmp_path: Path, hub_db: str, previous: tuple[Path, Path, dict[str, Any]]) -> None:
    hub_dir, _, _ = previous
    store = await HubStore.open(hub_dir / "hub.db", hub_db)
    try:
        await store.conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)",
                                 (HUB.latest + 2,))
        await store.conn.commit()
    finally:
        await store.close()
    with pytest.raises(SchemaTooNew):
        await HubStore.open(hub_dir / "hub.db", hub_db)
    for args in (["enroll", "--data", str(hub_dir), "--commune", "02245"],
                 ["serve", "--data", str(hub_dir), "--port", str(free_port()), "--workers", "2"]):
        code, err = await asyncio.to_thread(run_cli, "central_hub", *args)
        assert code == 1, (args, err)
        one_line_refusal(err, HUB.latest + 2, HUB.latest)


# -- the runner ---------------------------------------------------------------------------------


async def fail(conn: Any) -> None:
    raise RuntimeError("the disk came loose")


@pytest.mark.both_stores
async def test_a_migration_that_fails_midway_leaves_the_previous_version(
        tmp_path: Path, hub_db: str) -> None:
    conn = await open_db(hub_db, tmp_path)
    try:
        assert await upgrade(conn, EDGE, "test") == 0
        broken = Plan("edge", (*EDGE.migrations, Migration(EDGE.latest + 1, "half of it", (
            "ALTER TABLE users ADD COLUMN nickname TEXT; CREATE TABLE extra (a INTEGER);",
            "UPDATE users SET nickname = 'x'", fail))))
        with pytest.raises(StoreError) as err:
            await upgrade(conn, broken, "test.db")
        assert err.value.message.startswith(
            f"test.db: schema migration {EDGE.latest + 1} (half of it) failed, the database "
            f"stays at version {EDGE.latest}: RuntimeError: the disk came loose")
        assert await version_of(conn) == EDGE.latest
        assert "extra" not in await tables(conn)
        await conn.execute("SELECT full_name FROM users")  # the earlier migrations stay
        with pytest.raises(Exception, match="nickname"):
            await conn.execute("SELECT nickname FROM users")
        fixed = Plan("edge", (*EDGE.migrations, Migration(EDGE.latest + 1, "whole", (
            "ALTER TABLE users ADD COLUMN nickname TEXT",))))
        assert await upgrade(conn, fixed, "test") == EDGE.latest
        assert await version_of(conn) == EDGE.latest + 1
    finally:
        await conn.close()


async def test_hub_processes_opening_together_apply_each_migration_once(pg_url: str) -> None:
    writers = [await open_db(pg_url, Path()) for _ in range(4)]
    try:
        assert await asyncio.gather(*(upgrade(w, HUB, "test") for w in writers)) == [0] * 4
        async with writers[0].execute("SELECT version FROM schema_migrations ORDER BY 1") as cur:
            assert [r[0] for r in await cur.fetchall()] == list(range(1, HUB.latest + 1))
    finally:
        for w in writers:
            await w.close()


def test_statements_split_where_sqlite_ends_them() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT ';');
    CREATE TABLE b (y INTEGER) -- trailing; comment
    ;
    INSERT INTO a VALUES ('it''s; fine')
    """
    parts = statements(script)
    assert len(parts) == 3
    with closing(sqlite3.connect(":memory:")) as conn:
        for part in parts:
            conn.execute(part)
        assert conn.execute("SELECT x FROM a").fetchall() == [("it's; fine",)]
    with pytest.raises(ValueError):
        statements("INSERT INTO a VALUES ('unterminated")


def test_a_plan_is_numbered_without_gaps() -> None:
    one = Migration(1, "one", ("SELECT 1",))
    with pytest.raises(ValueError):
        Plan("x", (one, Migration(3, "three", ("SELECT 1",))))
    with pytest.raises(ValueError):
        Migration(2, "empty", ())
    assert Plan("x", (one,)).latest == 1
