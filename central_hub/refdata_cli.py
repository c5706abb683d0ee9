"""`central-hub procedures|holidays|communes import`: publish the province's reference data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from central_hub import config as hub_config
from central_hub.app import open_store
from central_hub.store import HubStore
from protocol.communes import communes_to_plain
from protocol.errors import ValidationError
from protocol.refdata import (
    catalogue_to_plain,
    holidays_to_plain,
    import_communes,
    import_holidays,
    import_procedures,
)
from service.cli import EXIT_OK

log = logging.getLogger(__name__)


def _read(path: Path) -> tuple[str, str]:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("toml", "csv"):
        raise ValidationError(f"{path}: use a .toml or .csv file")
    try:
        return path.read_text(encoding="utf-8-sig"), fmt
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from exc


async def _publish(args: Any, kind: str,
                   parse: Callable[[str, str, HubStore], tuple[dict[str, Any], int]]) -> int:
    """Read the file, parse it (every check before the store changes), publish it as the next
    version of `kind` and say how many items it holds."""
    text, fmt = _read(args.file)
    store = await open_store(args.data, hub_config.load(args.data))
    try:
        plain, count = parse(text, fmt, store)
        version = await store.publish(kind, plain)
    finally:
        await store.close()
    print(f"published {count} {kind} as version {version}")
    return EXIT_OK


async def cmd_procedures_import(args: Any) -> int:
    def parse(text: str, fmt: str, store: HubStore) -> tuple[dict[str, Any], int]:
        catalogue = import_procedures(text, fmt, store.dossiers.catalogue)
        return catalogue_to_plain(catalogue), len(catalogue.procedures)
    return await _publish(args, "procedures", parse)


async def cmd_holidays_import(args: Any) -> int:
    def parse(text: str, fmt: str, _: HubStore) -> tuple[dict[str, Any], int]:
        holidays = import_holidays(text, fmt)
        return holidays_to_plain(holidays), len(holidays)
    return await _publish(args, "holidays", parse)


async def cmd_communes_import(args: Any) -> int:
    citizens_url = hub_config.load(args.data).citizens_url

    def parse(text: str, fmt: str, _: HubStore) -> tuple[dict[str, Any], int]:
        communes = import_communes(text, fmt, citizens_url)
        return communes_to_plain(communes), len(communes.items)
    return await _publish(args, "communes", parse)
