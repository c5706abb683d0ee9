"""`central-hub bundle import|export`: store-and-forward bundles (central_hub/bundles.py)."""

from __future__ import annotations

import logging
from typing import Any

from central_hub import config as hub_config
from central_hub.app import open_store
from central_hub.bundles import export_bundle, import_bundle
from service.cli import EXIT_OK

log = logging.getLogger(__name__)


async def cmd_bundle_import(args: Any) -> int:
    store = await open_store(args.data, hub_config.load(args.data))
    try:
        done = await import_bundle(store, args.data, args.file)
    finally:
        await store.close()
    head = done.header
    if done.again:
        print(f"{head.describe()} was imported already: nothing to do (the hub holds its "
              f"events up to seq {done.ack})")
        return EXIT_OK
    refused = f"; {done.rejected} event(s) refused (kept in quarantine)" if done.rejected else ""
    skipped = (f"; {done.scans_refused} scan(s) not taken (no attachment names them, or "
               "incomplete)" if done.scans_refused else "")
    print(f"imported {head.describe()}: {done.new_events} new event(s), the hub holds its "
          f"events up to seq {done.ack}; {done.scans} scan(s) stored{refused}{skipped}")
    return EXIT_OK


async def cmd_bundle_export(args: Any) -> int:
    store = await open_store(args.data, hub_config.load(args.data))
    try:
        head = await export_bundle(store, args.data, args.node, args.file)
    finally:
        await store.close()
    print(f"wrote {head.describe()} to {args.file}; at the commune: edge-node bundle import "
          f"--data DATA {args.file.name}")
    return EXIT_OK
