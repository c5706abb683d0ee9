"""`central-hub portal add|list|revoke`: the province portal's API keys (central_hub/portal.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from central_hub import config as hub_config
from central_hub.app import open_store
from central_hub.portal import Portals
from service.cli import EXIT_OK

log = logging.getLogger(__name__)


async def _portals(data: Path, act: Any) -> Any:
    store = await open_store(data, hub_config.load(data))
    try:
        return await act(Portals(store.conn, store.reader, store.lock, store.now_ms))
    finally:
        await store.close()


async def cmd_portal_add(args: Any) -> int:
    print(await _portals(args.data, lambda portals: portals.add(args.name)))
    return EXIT_OK


async def cmd_portal_revoke(args: Any) -> int:
    await _portals(args.data, lambda portals: portals.revoke(args.name))
    print(f"portal {args.name} revoked")
    return EXIT_OK


async def cmd_portal_list(args: Any) -> int:
    for item in await _portals(args.data, lambda portals: portals.items()):
        state = "revoked" if item["revoked_at"] else "active"
        print(f"{item['name']:20} {state:8} filings={item['submissions']:<6} "
              f"last_used={item['last_used_at'] or '-'}")
    return EXIT_OK
