"""`central-hub commune merge`: the 2025 reorganisation's mergers at the hub (central_hub/mergers.py)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from central_hub import config as hub_config
from central_hub.app import open_store
from central_hub.mergers import merge
from protocol.errors import ValidationError
from service.cli import EXIT_OK

log = logging.getLogger(__name__)


def _day(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(f"--effective {raw!r} is not a date YYYY-MM-DD") from exc


async def cmd_commune_merge(args: Any) -> int:
    """Merge the --from communes into --into (one transaction; running it again changes nothing)."""
    day = _day(args.effective)
    store = await open_store(args.data, hub_config.load(args.data))
    try:
        done = await merge(store, args.into, args.name, list(args.merged), day)
    finally:
        await store.close()
    if not done.merged and not done.version and not done.nodes:
        print(f"nothing to do: {', '.join(args.merged)} already merged into {args.into}")
        return EXIT_OK
    listed = f"commune list version {done.version}" if done.version else "commune list unchanged"
    print(f"merged {', '.join(args.merged)} into {args.into} ({' '.join(args.name.split())}): "
          f"{done.dossiers} dossier(s) now its, {done.nodes} node(s) re-scoped at their next "
          f"sync; {listed}")
    return EXIT_OK
