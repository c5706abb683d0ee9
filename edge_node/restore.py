"""`edge-node restore --data D SRC`: put an edge backup back (the edge stopped), and continue the
node's chain where the hub has it.

The backup's database is copied next to the current one and opened; the own events the hub holds
past the backup's head are taken back into it (edge_node/recover.py) — only then does it replace
the current database, which is moved aside, never deleted. So the restored node writes on at the
hub's head: nothing the hub acknowledged is lost, nothing is sent twice, no receipt code is
reused. If the hub cannot be reached, nothing is changed (a node that wrote on from an old head
would fork its chain, and the hub would refuse it). Settings and identity files (node.toml, tls/)
are taken from the backup only where the data directory lacks them (a new disk): the current key
and certificate are kept, since a renewal since the backup superseded the backup's. Scans are
added where missing; those lost with the disk come down from the hub later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from edge_node import config as edge_config
from edge_node.backup import BLOBS, read_manifest, settings_files
from edge_node.recover import take_back
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol.errors import ValidationError
from service import atomic, snapshot

log = logging.getLogger(__name__)

PARTIAL = "edge.db.restoring"
SUFFIXES = ("", "-wal", "-shm")


def _same_node(manifest: dict[str, Any], config: edge_config.EdgeConfig, src: Path) -> None:
    if manifest.get("node") != config.node:
        raise ValidationError(f"{src} is a backup of node {manifest.get('node')}, this data "
                              f"directory is node {config.node}'s")


def _discard(path: Path) -> None:
    for suffix in SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def restore(data: Path, src: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore the backup in `src` into the (stopped) edge in `data`; return what was done."""
    manifest = await asyncio.to_thread(read_manifest, src)
    if (data / edge_config.CONFIG_FILE).is_file():
        _same_node(manifest, edge_config.load(data), src)
    snapshot.private_dir(data)
    copied, kept = snapshot.copy_files(src, data, settings_files(src), True)
    config = edge_config.load(data)
    _same_node(manifest, config, src)
    where = None if force else snapshot.answering(config.host, config.port)
    if where is not None:
        raise ValidationError(f"something answers on the edge's port ({where}): stop the edge "
                              "before restoring (or pass --force if that is not the edge)")
    partial = data / PARTIAL
    _discard(partial)
    await asyncio.to_thread(snapshot.copy_database, src / edge_config.DB_FILE, partial,
                            lambda conn: {})
    try:
        store = await EdgeStore.open(partial, config.node, config.commune, config.agency)
        client = SyncClient(store, config)
        client.data_dir = str(data)
        try:
            taken = await take_back(store, client)
            head = store.log.own_seq
        finally:
            await client.close()
            await store.close()
    except BaseException:
        _discard(partial)
        raise
    report: dict[str, Any] = {"manifest": manifest, "taken_back": taken, "own_seq": head,
                              "settings_restored": copied, "settings_kept": kept,
                              "moved_aside": None}
    current = [Path(f"{data / edge_config.DB_FILE}{s}") for s in SUFFIXES]
    if any(p.exists() for p in current):
        aside = data / time.strftime("pre-restore-%Y%m%dT%H%M%S")
        snapshot.private_dir(aside)
        for p in current:
            if p.exists():
                os.replace(p, aside / p.name)
        report["moved_aside"] = str(aside)
    for suffix in SUFFIXES[1:]:  # a clean close leaves none; if one is left it goes along
        if Path(f"{partial}{suffix}").exists():
            os.replace(f"{partial}{suffix}", f"{data / edge_config.DB_FILE}{suffix}")
    atomic.move(partial, data / edge_config.DB_FILE)
    report["blobs_added"], _ = await asyncio.to_thread(snapshot.copy_blobs, src / BLOBS,
                                                       data / BLOBS, True)
    return report


async def cmd_restore(data: Path, src: Path, force: bool) -> int:
    """`edge-node restore --data D SRC`."""
    report = await restore(data, src, force=force)
    manifest = report["manifest"]
    print(f"restored node {manifest['node']} from the backup of "
          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(manifest['created_at'] / 1000))} "
          f"({manifest['dossiers']} dossiers, own events up to seq {manifest['own_seq']})")
    print(f"took back {report['taken_back']} of this node's events from the hub: its chain goes "
          f"on at seq {report['own_seq']}; nothing is sent twice")
    if report["moved_aside"]:
        print(f"the previous database was moved to {report['moved_aside']}")
    print(f"{report['blobs_added']} scans added (those lost come down from the hub); settings "
          f"restored: {', '.join(report['settings_restored']) or 'none'}; kept: "
          f"{', '.join(report['settings_kept']) or 'none'}")
    return 0
