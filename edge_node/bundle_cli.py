"""`edge-node bundle export|import`: store-and-forward bundles (edge_node/bundles.py)."""

from __future__ import annotations

import logging
from typing import Any

from edge_node import config as edge_config
from edge_node.bundles import export_bundle, import_bundle
from edge_node.store import EdgeStore
from service.cli import EXIT_OK

log = logging.getLogger(__name__)


async def _store(args: Any) -> EdgeStore:
    config = edge_config.load(args.data)
    return await EdgeStore.open(args.data / edge_config.DB_FILE, config.node, config.commune,
                                config.agency)


async def cmd_bundle_export(args: Any) -> int:
    store = await _store(args)
    try:
        head = await export_bundle(store, args.data, args.file)
    finally:
        await store.close()
    first, last = head.ranges["first"], head.ranges["last"]
    count = last - first + 1 if last else 0
    print(f"wrote {head.describe()} to {args.file}: {count} event(s) the hub has not "
          f"acknowledged; at the province: central-hub bundle import --data DATA "
          f"{args.file.name}")
    return EXIT_OK


async def cmd_bundle_import(args: Any) -> int:
    store = await _store(args)
    try:
        done = await import_bundle(store, args.data, args.file)
    finally:
        await store.close()
    head = done.header
    if done.again:
        print(f"{head.describe()} was imported already: nothing to do")
        return EXIT_OK
    stays = "" if done.cursor_moved else " (it starts past this node's position: kept)"
    print(f"applied {head.describe()}: {done.new_events} new event(s) from the hub; the hub "
          f"holds this node's events up to seq {done.ack}{stays}")
    return EXIT_OK
