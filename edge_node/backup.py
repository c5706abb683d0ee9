"""Local backups of the edge, while it serves: by hand (`edge-node backup --data D DIR`) and daily
to a configured folder (a second disk, a USB stick) with retention.

A backup directory holds:
- `edge.db`: the database copied through SQLite's online backup API (one read snapshot while the
  desk and the sync go on writing), checked with `PRAGMA integrity_check` — dossiers, the event log,
  staff accounts, the sync position;
- `blobs/`: the verified scans;
- `node.toml` and `tls/`: the node's settings and identity (its key: keep backups locked away);
- last, `backup.json`: when, which node, its chain's head, the database's SHA-256. A directory
  without it is unfinished and `edge-node restore` refuses it (edge_node/restore.py).
The daily one (`backup_dir` in node.toml) makes `edge-<node>-<YYYYmmdd-HHMMSS>` there once
`backup_every_h` has passed since the newest, then keeps the newest `backup_keep` of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_node import config as edge_config
from edge_node.config import EdgeConfig
from protocol import APP_VERSION
from protocol.errors import ValidationError
from service import atomic, snapshot
from service.hubtime import wall_clock_ms

log = logging.getLogger(__name__)

MANIFEST = "backup.json"
FORMAT = 1
KIND = "edge"
BLOBS = "blobs"
TLS_DIR = "tls"
CHECK_EVERY_S = 600.0  # how often the serving edge looks whether a daily backup is due
NAME_PREFIX = "edge-"


def settings_files(data: Path) -> list[Path]:
    """The node's settings and identity files, relative to `data`."""
    found = [Path(edge_config.CONFIG_FILE)] if (data / edge_config.CONFIG_FILE).is_file() else []
    tls = data / TLS_DIR
    if tls.is_dir():
        found += sorted(p.relative_to(data) for p in tls.iterdir() if p.is_file())
    return found


def _describer(node: str) -> snapshot.Describe:
    def describe(conn: sqlite3.Connection) -> dict[str, Any]:
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events WHERE origin=?",
                           (node,)).fetchone()[0]
        ack = conn.execute("SELECT value FROM meta WHERE key='ack'").fetchone()
        dossiers = conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
        return {"own_seq": int(seq), "ack": int(ack[0]) if ack else 0,
                "dossiers": int(dossiers)}
    return describe


def backup(data: Path, dest: Path, now_ms: int) -> dict[str, Any]:
    """Back up the edge in `data` (serving or not) into the new or empty directory `dest`;
    return the manifest."""
    config = edge_config.load(data)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValidationError(f"{dest} exists and is not an empty directory: back up into a new "
                              "one (e.g. named by the date)")
    if dest.resolve().is_relative_to(data.resolve()):
        raise ValidationError(f"{dest} is inside the data directory: back up to another disk")
    snapshot.private_dir(dest)
    manifest: dict[str, Any] = {"format": FORMAT, "kind": KIND, "node": config.node,
                                "commune": config.commune, "created_at": now_ms,
                                "app_version": APP_VERSION, "database": edge_config.DB_FILE}
    manifest.update(snapshot.copy_database(data / edge_config.DB_FILE,
                                           dest / edge_config.DB_FILE, _describer(config.node)))
    manifest["sha256"] = snapshot.sha256_of(dest / edge_config.DB_FILE)
    # after the database: a scan it names that is still arriving is fetched again
    manifest["blobs"], manifest["blob_bytes"] = snapshot.copy_blobs(data / BLOBS, dest / BLOBS,
                                                                    False)
    manifest["settings"] = snapshot.copy_files(data, dest, settings_files(data), False)[0]
    atomic.write(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the edge backup in `src`, its database checked against it;
    ValidationError if it is not a whole edge backup."""
    manifest = snapshot.load_manifest(src, MANIFEST, "edge")
    if manifest.get("format") != FORMAT or manifest.get("kind") != KIND:
        raise ValidationError(f"{src / MANIFEST}: not an edge backup this version can restore")
    db = src / edge_config.DB_FILE
    if not db.is_file() or snapshot.sha256_of(db) != manifest.get("sha256"):
        raise ValidationError(f"{db} is missing or damaged (its SHA-256 is not the manifest's)")
    return manifest


# -- the daily backup ---------------------------------------------------------------------------


def backups_in(folder: Path, node: str) -> list[tuple[int, Path]]:
    """The finished backups of `node` in `folder`, oldest first: (created_at ms, directory)."""
    found = []
    if not folder.is_dir():
        return []
    for child in folder.iterdir():
        if not child.is_dir() or not child.name.startswith(f"{NAME_PREFIX}{node}-"):
            continue
        try:
            manifest = json.loads((child / MANIFEST).read_text(encoding="utf-8"))
            found.append((int(manifest["created_at"]), child))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unfinished (or not ours): left alone
    return sorted(found)


def due(config: EdgeConfig, now_ms: int) -> bool:
    """Whether the daily backup should run now."""
    if not config.backup_dir:
        return False
    found = backups_in(Path(config.backup_dir), config.node)
    return not found or now_ms - found[-1][0] >= config.backup_every_h * 3600 * 1000


def daily(data: Path, config: EdgeConfig, now_ms: int) -> Path | None:
    """Make the daily backup if it is due, then prune to `backup_keep`; the new directory or
    None. A failure leaves no half directory counted (it has no manifest) and is raised."""
    if not due(config, now_ms):
        return None
    folder = Path(config.backup_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_ms / 1000))
    dest = folder / f"{NAME_PREFIX}{config.node}-{stamp}"
    try:
        manifest = backup(data, dest, now_ms)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    log.info("daily backup in %s (%d dossiers, %d scans)", dest, manifest["dossiers"],
             manifest["blobs"])
    for _, old in backups_in(folder, config.node)[:-config.backup_keep]:
        shutil.rmtree(old, ignore_errors=True)
        log.info("old backup %s removed (keeping %d)", old, config.backup_keep)
    return dest


async def run_daily(data: Path, config: EdgeConfig, every_s: float = CHECK_EVERY_S) -> None:
    """While the edge serves: make the daily backup whenever it is due (a failure — the USB
    stick unplugged, say — is logged and tried again at the next check)."""
    while True:
        try:
            await asyncio.to_thread(daily, data, config, wall_clock_ms())
        except Exception as exc:  # the backup must never stop the desk
            log.error("daily backup to %s failed: %s", config.backup_dir,
                      getattr(exc, "message", None) or exc)
        await asyncio.sleep(every_s)


def daily_backups(data: Path, config: EdgeConfig) -> Callable[[web.Application],
                                                             AsyncIterator[None]]:
    """The serving app's context for the daily backup (`app.cleanup_ctx`)."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(run_daily(data, config))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return context


async def cmd_backup(data: Path, dest: Path) -> int:
    """`edge-node backup --data D DIR`."""
    manifest = await asyncio.to_thread(backup, data, dest, wall_clock_ms())
    print(f"backup of node {manifest['node']} complete in {dest}: {manifest['dossiers']} "
          f"dossiers, own events up to seq {manifest['own_seq']}, {manifest['blobs']} scans "
          f"({manifest['blob_bytes']} bytes), integrity ok")
    return 0
