"""Restore of the hub from a backup, and the carry-over of who may reach it.

`central-hub restore --data DIR SRC` (hub stopped) moves the current database aside, puts the
backup's in its place, carries over from the replaced database who may reach the hub (nodes,
certificates, enrollment tokens, operator accounts; `--trust-from-backup` keeps the backup's),
adds the blobs and any missing config/TLS files, rotates the log epoch (`central_hub.epoch`) and
publishes the reference data again. `--epoch-only` only rotates the epoch and republishes (after
a pg_restore).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from central_hub import config as hub_config
from central_hub.backup import (
    BLOBS,
    DB_FILE,
    DUMP_FILE,
    FORMAT,
    MANIFEST,
    copy_blobs,
    copy_settings,
    private_dir,
    sha256_of,
)
from central_hub.epoch import rotate_epoch
from central_hub.store import HubStore
from protocol.calendar import iso
from protocol.errors import StoreError, ValidationError
from service import atomic
from service.snapshot import answering, load_manifest
from service.sqlite import transaction

log = logging.getLogger(__name__)

REFDATA_STEP = 1000  # more publications than a hub makes between two backups

Opener = Callable[[Path], Awaitable[HubStore]]


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup in `src`, checked; ValidationError if it is not a whole one."""
    manifest = load_manifest(src, MANIFEST, "hub")
    if manifest.get("format") != FORMAT:
        raise ValidationError(f"{src / MANIFEST}: not a backup this version can restore")
    for name, key in ((manifest.get("database"), "sha256"), (manifest.get("dump"), "dump_sha256")):
        if name is None:
            continue
        if name not in (DB_FILE, DUMP_FILE) or not (src / name).is_file() or \
                sha256_of(src / name) != manifest.get(key):
            raise StoreError(f"{src / str(name)} is missing or damaged (its SHA-256 is not the "
                             "manifest's)")
    return manifest


def hub_running(data: Path) -> str | None:
    """Where a server answers on the hub's configured port, if one does (best effort)."""
    try:
        config = hub_config.load(data)
    except ValidationError:
        return None
    return answering(config.host, config.port)


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
    private_dir(data)
    copied, kept = copy_settings(src, data, True)
    config = hub_config.load(data)
    report: dict[str, Any] = {"manifest": manifest, "settings_restored": copied,
                              "settings_kept": kept, "moved_aside": None}
    if config.db == "sqlite":
        if manifest.get("database") is None:
            raise ValidationError(f"{src} holds no SQLite database (a backup of a PostgreSQL hub)")
        current = [data / (DB_FILE + suffix) for suffix in ("", "-wal", "-shm")]
        if any(p.exists() for p in current):
            aside = data / time.strftime("pre-restore-%Y%m%dT%H%M%S")
            private_dir(aside)
            for p in current:
                if p.exists():
                    os.replace(p, aside / p.name)
            report["moved_aside"] = str(aside)
        tmp = data / (DB_FILE + ".partial")
        shutil.copyfile(src / DB_FILE, tmp)
        tmp.chmod(0o600)
        atomic.move(tmp, data / DB_FILE)
        report["trust"] = None
        if report["moved_aside"] and not trust_from_backup:
            try:
                report["trust"] = carry_trust(data / DB_FILE, Path(report["moved_aside"]) / DB_FILE)
            except ValidationError as exc:
                report["trust_error"] = exc.message
    elif manifest.get("database") is not None:
        raise ValidationError(f"{src} holds a SQLite database but this hub uses PostgreSQL")
    report["blobs_added"], _ = copy_blobs(src / BLOBS, data / BLOBS, True)
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
    ("node_replacements", "node", ("node", "commune", "token_hash", "replaced_at", "successor"),
     "token_hash=excluded.token_hash, replaced_at=excluded.replaced_at, "
     "successor=coalesce(node_replacements.successor, excluded.successor)"),
)
# tables a backup of an older release may lack: carried when both databases have them
OPTIONAL = {"node_replacements"}

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
                if table in OPTIONAL and not all(conn.execute(
                        f"SELECT 1 FROM {db}.sqlite_master WHERE type='table' AND name=?",
                        (table,)).fetchone() for db in ("main", "replaced")):
                    continue
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
