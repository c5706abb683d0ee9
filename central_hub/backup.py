"""Backup and restore of the hub, and the log epoch that tells the edges a restore happened.

`central-hub backup --data DIR DEST` copies, while the hub may be serving:
- the SQLite database through SQLite's online backup API (one read transaction, so a consistent
  snapshot while writers go on), checked with `PRAGMA integrity_check`;
- the verified blobs (`blobs/ab/…`; blobs still being received are left out: senders resume them);
- the configuration (`hub.toml`) and the TLS material (`tls/`, the province CA's key included);
- last, a manifest (`backup.json`): when, what, the log's end and epoch, the database's SHA-256. A
  directory without it is an unfinished backup and is refused by restore.
On PostgreSQL the database is dumped with pg_dump instead (docs/backup.md); the rest is the same.

`central-hub restore --data DIR SRC` (hub stopped) moves the current database aside, puts the
backup's in its place, adds the blobs and any missing config/TLS files, and rotates the log epoch.
`--epoch-only` only rotates it (after a pg_restore). Why: positions in a restored log restart
lower, so a cursor an edge kept from before would skip what the hub receives next. A new epoch makes
every edge read its scope again from the start; events it holds are skipped by id. Its own events
the hub lost it sends again, because the hub's ack is now lower than the one it kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from central_hub import config as hub_config
from central_hub.store import ORIGIN_KEY, HubStore
from central_hub.tls import TLS_DIR
from protocol import APP_VERSION, HUB_ORIGIN
from protocol.calendar import iso
from protocol.errors import StoreError, ValidationError
from service.blobs import SHA_RE
from service.hubtime import wall_clock_ms
from service.sqlite import transaction

log = logging.getLogger(__name__)

EPOCH_KEY = "log_epoch"
RESTORED_KEY = "restored_at"
MANIFEST = "backup.json"
FORMAT = 1
DB_FILE = "hub.db"
DUMP_FILE = "hub.dump"  # PostgreSQL: pg_dump -Fc writes it into DEST just before the backup
BLOBS = "blobs"
REFDATA_STEP = 1000  # more publications than a hub makes between two backups

Opener = Callable[[Path], Awaitable[HubStore]]


# -- the log epoch --------------------------------------------------------------------------------


async def committed_meta(store: HubStore, key: str) -> Any:
    """A meta value through the reader: every exchange asks, and should not wait on writes."""
    async with store.reader.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def log_epoch(store: HubStore) -> str:
    """This log's epoch, created on first need (the same one whichever process creates it)."""
    epoch = await committed_meta(store, EPOCH_KEY)
    if epoch:
        return str(epoch)
    async with store.lock, transaction(store.conn):
        # Several hub processes (PostgreSQL) may get here at once: the first insert wins.
        await store.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
            (EPOCH_KEY, secrets.token_hex(8)))
        epoch = await store.log.get_meta(EPOCH_KEY)
    return str(epoch)


async def rotate_epoch(store: HubStore) -> str:
    """Give the log a new epoch, mark the hub restored, and have it write under a new origin
    (`hub.<epoch>`): the ids after the backup's last hub event may be held by edges with
    content the restored hub lost, and must not be reused. Return the epoch."""
    epoch = secrets.token_hex(8)
    origin = f"{HUB_ORIGIN}.{epoch}"
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(EPOCH_KEY, epoch)
        await store.log.set_meta(RESTORED_KEY, store.now_ms())
        await store.log.set_meta(ORIGIN_KEY, origin)
    store.log.write_as(origin, (0, b""))
    log.warning("log epoch rotated to %s: every edge reads the log again from the start", epoch)
    return epoch


async def reissue_refdata(store: HubStore) -> dict[str, int]:
    """Publish the restored reference data again, at versions past any published after the
    backup: an edge keeps the highest version it was sent, so a version number the restored hub
    would reuse for other data would be ignored there. Return the new versions."""
    current = await store.refdata_newer({})
    fresh = {kind: ref["version"] + REFDATA_STEP for kind, ref in current.items()}
    async with store.lock, transaction(store.conn):
        for kind, ref in current.items():
            await store.dossiers.save_refdata(kind, fresh[kind], ref["data"])
    for kind, ref in current.items():
        store.dossiers.use_refdata(kind, fresh[kind], ref["data"])
    return fresh


# -- backup ---------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)  # citizens' personal data and the CA's key


def _describe_db(conn: sqlite3.Connection) -> dict[str, Any]:
    """Integrity, log end and epoch of an opened copy of the hub database."""
    row = conn.execute("PRAGMA integrity_check").fetchone()
    if row is None or row[0] != "ok":
        raise StoreError(f"the database copy fails its integrity check: {row[0] if row else '?'}")
    end = conn.execute("SELECT coalesce(max(pos), 0) FROM events").fetchone()[0]
    epoch = conn.execute("SELECT value FROM meta WHERE key=?", (EPOCH_KEY,)).fetchone()
    return {"log_end": int(end), "log_epoch": str(epoch[0]) if epoch else ""}


def copy_database(src: Path, dst: Path) -> dict[str, Any]:
    """Copy the SQLite database `src` (live or not) to the new file `dst`, consistently; check
    the copy and return its log end and epoch."""
    if not src.is_file():
        raise ValidationError(f"no database at {src}")
    tmp = dst.with_name(dst.name + ".partial")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with closing(sqlite3.connect(src, timeout=30)) as source, \
                closing(sqlite3.connect(tmp)) as target:
            source.execute("PRAGMA busy_timeout=30000")
            source.backup(target)  # all pages in one step: one read snapshot of the source
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            facts = _describe_db(target)
        _fsync(tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return facts


def _copy_blobs(src: Path, dst: Path, only_missing: bool) -> tuple[int, int]:
    """Copy verified blobs (never `partial/`); return (files, bytes) copied."""
    files = size = 0
    if not src.is_dir():
        return 0, 0
    for sub in sorted(src.iterdir()):
        if not sub.is_dir() or len(sub.name) != 2 or sub.name == "partial":
            continue
        for blob in sorted(sub.iterdir()):
            if not SHA_RE.fullmatch(blob.name) or not blob.is_file():
                continue
            target = dst / sub.name / blob.name
            if only_missing and target.is_file():
                continue
            _private_dir(target.parent)
            shutil.copy2(blob, target)
            files += 1
            size += blob.stat().st_size
    return files, size


def _settings(data: Path) -> list[Path]:
    """The configuration and TLS files of a data dir, relative to it."""
    found = [Path(hub_config.CONFIG_FILE)] if (data / hub_config.CONFIG_FILE).is_file() else []
    tls_dir = data / TLS_DIR
    if tls_dir.is_dir():
        found += sorted(p.relative_to(data) for p in tls_dir.iterdir() if p.is_file())
    return found


def _copy_settings(src: Path, dst: Path, only_missing: bool) -> tuple[list[str], list[str]]:
    """Copy config and TLS files; return (copied, kept because `dst` has them)."""
    copied, kept = [], []
    for rel in _settings(src):
        target = dst / rel
        if only_missing and target.exists():
            kept.append(str(rel))
            continue
        _private_dir(target.parent)
        shutil.copy2(src / rel, target)
        target.chmod(0o600)
        copied.append(str(rel))
    return copied, kept


def backup(data: Path, dest: Path, now_ms: int) -> dict[str, Any]:
    """Back up the hub in `data` to the new (or empty) directory `dest`; return the manifest."""
    config = hub_config.load(data)
    allowed = {DUMP_FILE} if config.db != "sqlite" else set()
    if dest.exists() and (not dest.is_dir() or {p.name for p in dest.iterdir()} - allowed):
        raise ValidationError(f"{dest} exists and is not an empty directory: back up into a new "
                              "one (e.g. named by the date)")
    _private_dir(dest)
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": now_ms, "app_version": APP_VERSION,
        "store": "sqlite" if config.db == "sqlite" else "postgresql", "database": None}
    if config.db == "sqlite":
        manifest.update(copy_database(data / DB_FILE, dest / DB_FILE))
        manifest.update(database=DB_FILE, sha256=_sha256(dest / DB_FILE))
    elif (dest / DUMP_FILE).is_file():
        manifest.update(dump=DUMP_FILE, dump_sha256=_sha256(dest / DUMP_FILE))
    # After the database: a blob it names that is not complete yet is re-sent by its edge.
    manifest["blobs"], manifest["blob_bytes"] = _copy_blobs(data / BLOBS, dest / BLOBS, False)
    manifest["settings"] = _copy_settings(data, dest, False)[0]
    tmp = dest / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, dest / MANIFEST)
    return manifest


# -- restore --------------------------------------------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup in `src`, checked; ValidationError if it is not a whole one."""
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError(f"{src} is not a finished hub backup (no {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {src / MANIFEST}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationError(f"{src / MANIFEST}: not a backup this version can restore")
    for name, key in ((manifest.get("database"), "sha256"), (manifest.get("dump"), "dump_sha256")):
        if name is None:
            continue
        if name not in (DB_FILE, DUMP_FILE) or not (src / name).is_file() or \
                _sha256(src / name) != manifest.get(key):
            raise StoreError(f"{src / str(name)} is missing or damaged (its SHA-256 is not the "
                             "manifest's)")
    return manifest


def hub_running(data: Path) -> str | None:
    """Where a server answers on the hub's configured port, if one does (best effort)."""
    try:
        config = hub_config.load(data)
    except ValidationError:
        return None
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    try:
        with socket.create_connection((host, config.port), timeout=0.5):
            return f"{host}:{config.port}"
    except OSError:
        return None


def restore(data: Path, src: Path, *, force: bool = False,
            trust_from_backup: bool = False) -> dict[str, Any]:
    """Put the backup in `src` back into the (stopped) hub in `data`: the database (the current
    one is moved aside, never deleted, and who may reach the hub is carried over from it unless
    `trust_from_backup`), the blobs it lacks, the config and TLS files it lacks. Return what was
    done; the caller then rotates the epoch through the store."""
    where = None if force else hub_running(data)
    if where is not None:
        raise ValidationError(f"something answers on the hub's port ({where}): stop the hub "
                              "before restoring (or pass --force if that is not the hub)")
    manifest = read_manifest(src)
    _private_dir(data)
    copied, kept = _copy_settings(src, data, True)
    config = hub_config.load(data)
    report: dict[str, Any] = {"manifest": manifest, "settings_restored": copied,
                              "settings_kept": kept, "moved_aside": None}
    if config.db == "sqlite":
        if manifest.get("database") is None:
            raise ValidationError(f"{src} holds no SQLite database (a backup of a PostgreSQL hub)")
        current = [data / (DB_FILE + suffix) for suffix in ("", "-wal", "-shm")]
        if any(p.exists() for p in current):
            aside = data / time.strftime("pre-restore-%Y%m%dT%H%M%S")
            _private_dir(aside)
            for p in current:
                if p.exists():
                    os.replace(p, aside / p.name)
            report["moved_aside"] = str(aside)
        tmp = data / (DB_FILE + ".partial")
        shutil.copyfile(src / DB_FILE, tmp)
        tmp.chmod(0o600)
        _fsync(tmp)
        os.replace(tmp, data / DB_FILE)
        report["trust"] = None
        if report["moved_aside"] and not trust_from_backup:
            try:
                report["trust"] = carry_trust(data / DB_FILE, Path(report["moved_aside"]) / DB_FILE)
            except ValidationError as exc:
                report["trust_error"] = exc.message
    elif manifest.get("database") is not None:
        raise ValidationError(f"{src} holds a SQLite database but this hub uses PostgreSQL")
    report["blobs_added"], _ = _copy_blobs(src / BLOBS, data / BLOBS, True)
    return report


# Who may reach the hub, carried from the database a restore replaces into the restored one:
# (table, key, columns, what an existing row takes from the replaced database). The replaced
# database is the newer: nodes enrolled, revoked or re-keyed, certificates issued or revoked,
# enrollment tokens issued or used, operator accounts added or changed since the backup.
TRUST_CARRY = (
    ("communes", "code", ("code", "name"), ""),
    ("nodes", "node", ("node", "commune", "credential_hash", "enrolled_at", "revoked_at"),
     "credential_hash=excluded.credential_hash, "
     "revoked_at=coalesce(nodes.revoked_at, excluded.revoked_at)"),
    ("node_certs", "serial",
     ("serial", "node", "issued_at", "not_after", "first_used_at", "revoked_at", "reason"),
     "first_used_at=coalesce(node_certs.first_used_at, excluded.first_used_at), "
     "revoked_at=coalesce(node_certs.revoked_at, excluded.revoked_at), "
     "reason=coalesce(node_certs.reason, excluded.reason)"),
    ("enroll_tokens", "token_hash",
     ("token_hash", "commune", "created_at", "expires_at", "used_at", "node"),
     "used_at=coalesce(enroll_tokens.used_at, excluded.used_at), "
     "node=coalesce(enroll_tokens.node, excluded.node)"),
    ("users", "username", ("username", "password_hash", "role", "created_at", "disabled"),
     "password_hash=excluded.password_hash, role=excluded.role, disabled=excluded.disabled"),
)

# What the carry-over changes, counted before it (for the operator's report).
TRUST_NEWS = {
    "nodes enrolled": "SELECT count(*) FROM replaced.nodes p WHERE NOT EXISTS "
                      "(SELECT 1 FROM main.nodes m WHERE m.node=p.node)",
    "nodes revoked": "SELECT count(*) FROM replaced.nodes p JOIN main.nodes m USING (node) "
                     "WHERE p.revoked_at IS NOT NULL AND m.revoked_at IS NULL",
    "node credentials changed": "SELECT count(*) FROM replaced.nodes p JOIN main.nodes m "
                                "USING (node) WHERE p.credential_hash != m.credential_hash",
    "certificates issued or revoked": (
        "SELECT count(*) FROM replaced.node_certs p LEFT JOIN main.node_certs m USING (serial) "
        "WHERE m.serial IS NULL OR (p.revoked_at IS NOT NULL AND m.revoked_at IS NULL)"),
    "enrollment tokens issued or used": (
        "SELECT count(*) FROM replaced.enroll_tokens p LEFT JOIN main.enroll_tokens m "
        "USING (token_hash) WHERE m.token_hash IS NULL "
        "OR (p.used_at IS NOT NULL AND m.used_at IS NULL)"),
    "operator accounts added or changed": (
        "SELECT count(*) FROM replaced.users p LEFT JOIN main.users m USING (username) "
        "WHERE m.username IS NULL OR m.password_hash != p.password_hash OR m.role != p.role "
        "OR m.disabled != p.disabled"),
}


def carry_trust(db: Path, replaced: Path) -> dict[str, int]:
    """Bring who may reach the hub from `replaced` (the database the restore moved aside) into
    the restored `db`, in one transaction: nodes enrolled after the backup keep working, nodes
    revoked after it stay revoked, used enrollment tokens stay used, operators keep their
    accounts and passwords. Return what changed (`TRUST_NEWS`); ValidationError (and nothing
    changed) if `replaced` cannot be read whole."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise ValidationError(f"could not open {db}: {exc}") from exc
    try:
        conn.execute("ATTACH DATABASE ? AS replaced", (f"file:{replaced}?mode=ro",))
        check = conn.execute("PRAGMA replaced.quick_check").fetchone()
        if not check or check[0] != "ok":
            raise ValidationError(f"{replaced} fails its integrity check: {check}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            carried = {what: int(conn.execute(query).fetchone()[0])
                       for what, query in TRUST_NEWS.items()}
            for table, key, columns, update in TRUST_CARRY:
                cols = ", ".join(columns)
                conn.execute(
                    f"INSERT INTO main.{table}({cols}) SELECT {cols} FROM replaced.{table} "
                    f"WHERE true ON CONFLICT({key}) DO "
                    + (f"UPDATE SET {update}" if update else "NOTHING"))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return carried
    except sqlite3.Error as exc:
        raise ValidationError(f"could not read {replaced}: {exc}") from exc
    finally:
        conn.close()


# -- the commands ---------------------------------------------------------------------------------


async def cmd_backup(data: Path, dest: Path) -> int:
    """`central-hub backup --data DIR DEST`."""
    manifest = await asyncio.to_thread(backup, data, dest, wall_clock_ms())
    if manifest["database"] is not None:
        print(f"database copied to {dest / DB_FILE} (log end {manifest['log_end']}, "
              f"integrity ok)")
    elif "dump" in manifest:
        print(f"PostgreSQL dump {dest / DUMP_FILE} recorded in the manifest")
    else:
        print(f"the database is in PostgreSQL and {dest / DUMP_FILE} is missing: dump it first "
              "(pg_dump -Fc; docs/backup.md)")
    print(f"{manifest['blobs']} blobs ({manifest['blob_bytes']} bytes), "
          f"{len(manifest['settings'])} config/TLS files; backup complete in {dest}")
    return 0


async def cmd_restore(data: Path, src: Path | None, epoch_only: bool, force: bool,
                      open_store: Opener, trust_from_backup: bool = False) -> int:
    """`central-hub restore --data DIR SRC` and `… --epoch-only`."""
    if epoch_only == (src is not None):
        raise ValidationError("give either a backup directory to restore or --epoch-only")
    if epoch_only and trust_from_backup:
        raise ValidationError("--trust-from-backup goes with a backup directory, not --epoch-only")
    trusted_now = False
    if src is not None:
        report = await asyncio.to_thread(restore, data, src, force=force,
                                         trust_from_backup=trust_from_backup)
        manifest = report["manifest"]
        if manifest["database"] is not None:
            print(f"database restored from the backup of {iso(manifest['created_at'])} "
                  f"(log end {manifest['log_end']})")
        else:
            print(f"PostgreSQL: the database is what pg_restore put back (from {src / DUMP_FILE}"
                  ", before this command; docs/backup.md)")
        if report["moved_aside"]:
            print(f"the previous database was moved to {report['moved_aside']}")
        if report.get("trust") is not None:
            trusted_now = True
            changes = [f"{what}: {n}" for what, n in report["trust"].items() if n]
            print("who may reach the hub carried over from the previous database: "
                  + (", ".join(changes) if changes else "nothing had changed since the backup"))
        elif report.get("trust_error"):
            print(f"NOT carried over from the previous database ({report['trust_error']}): "
                  "repeat enrollments, revocations and account changes made after the backup")
        print(f"{report['blobs_added']} blobs added; config/TLS restored: "
              f"{', '.join(report['settings_restored']) or 'none'}; kept: "
              f"{', '.join(report['settings_kept']) or 'none'}")
    store = await open_store(data)
    try:
        epoch = await rotate_epoch(store)
        versions = await reissue_refdata(store)
        end = await store.log_size()
        origin = store.origin
    finally:
        await store.close()
    print(f"log epoch rotated to {epoch} (log end {end}): at their next sync the edges send "
          "again what this hub lacks and read the log again")
    print(f"the hub now writes its own edits as {origin}, so no id of an edit it lost is reused")
    print("reference data published again as " +
          ", ".join(f"{k} version {v}" for k, v in sorted(versions.items())) +
          ": import any published after the backup once more")
    lost_edits = ("hub-side edits made after it (the edges holding them name the dossiers in "
                  "their sync warning: redo them here)")
    if trusted_now:
        print(f"not in the backup, so not back: {lost_edits}")
    else:
        print(f"not in the backup, so not back: {lost_edits}; nodes enrolled after it (refused "
              "until enrolled again); revocations made after it (repeat them)")
    return 0
