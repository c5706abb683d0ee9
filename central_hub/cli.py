"""`central-hub`: init, serve, enroll, operator add, node revoke, nodes (CONTRACT §6)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from central_hub import config as hub_config
from central_hub.app import make_app, node_items, open_accounts
from central_hub.config import HubConfig
from central_hub.store import HubStore
from protocol.errors import ValidationError
from protocol.refdata import (
    catalogue_to_plain,
    holidays_to_plain,
    import_holidays,
    import_procedures,
)
from service.cli import EXIT_OK, Parser, read_password
from service.cli import run as run_cli

log = logging.getLogger(__name__)

DB_FILE = "hub.db"


def parser() -> Parser:
    """The command line of CONTRACT §6."""
    p = Parser(prog="central-hub", description="Provincial hub for commune sync.")
    sub = p.add_subparsers(metavar="COMMAND")

    def cmd(parent: Any, name: str, key: str, help_text: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        c.set_defaults(handler=key)
        c.add_argument("--data", required=True, type=Path, help="data directory")
        return c

    init = cmd(sub, "init", "init", "create a hub data dir")
    init.add_argument("--db", default="sqlite", help="sqlite (default, inside DIR)")
    serve = cmd(sub, "serve", "serve", "sync endpoint, operator API and dashboard")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    enroll = cmd(sub, "enroll", "enroll", "print a one-time enrollment token for a commune")
    enroll.add_argument("--commune", required=True, help="GSO commune code (5 digits)")
    enroll.add_argument("--name", default=None, help="commune name, e.g. 'Xã Côn Lôn'")
    ops = sub.add_parser("operator", help="operator accounts").add_subparsers(metavar="ACTION")
    add = cmd(ops, "add", "operator add", "add an operator (password read from stdin)")
    add.add_argument("--username", required=True)
    add.add_argument("--role", default="operator", choices=("operator", "admin"))
    node = sub.add_parser("node", help="enrolled nodes").add_subparsers(metavar="ACTION")
    revoke = cmd(node, "revoke", "node revoke", "revoke a node's credential")
    revoke.add_argument("--node", required=True)
    for kind, what in (("procedures", "the procedure catalogue"),
                       ("holidays", "the holiday calendar")):
        group = sub.add_parser(kind, help=what).add_subparsers(metavar="ACTION")
        imp = cmd(group, "import", f"{kind} import", f"publish {what} from a TOML or CSV file")
        imp.add_argument("file", type=Path)
    nodes = cmd(sub, "nodes", "nodes", "list nodes and their health")
    nodes.add_argument("--json", action="store_true")
    return p


async def _open(data: Path) -> HubStore:
    hub_config.load(data)
    return await HubStore.open(data / DB_FILE)


async def cmd_init(args: Any) -> int:
    data: Path = args.data
    if (data / hub_config.CONFIG_FILE).exists():
        raise ValidationError(f"{data} is already a hub data dir")
    db = args.db
    if db.startswith(("postgresql://", "postgres://")):
        raise ValidationError("PostgreSQL is not available in this version; use the default "
                              "embedded SQLite store")
    if db not in ("sqlite", "") and not db.startswith("sqlite"):
        raise ValidationError(f"--db must be sqlite or a postgresql:// URL, not {db!r}")
    config = HubConfig()
    data.mkdir(parents=True, exist_ok=True)
    hub_config.save(data, config)
    store = await HubStore.open(data / DB_FILE)
    await store.close()
    accounts = await open_accounts(data)
    await accounts.conn.close()
    print(f"hub initialized in {data} (SQLite)")
    return EXIT_OK


def cmd_serve(args: Any) -> int:
    config = hub_config.load(args.data)
    host, port = args.host or config.host, args.port or config.port
    logging.getLogger().setLevel(logging.INFO)
    print(f"central hub serving on http://{host}:{port}/", flush=True)
    web.run_app(make_app(args.data, config), host=host, port=port, print=None, access_log=None)
    return EXIT_OK


async def cmd_enroll(args: Any) -> int:
    store = await _open(args.data)
    try:
        print(await store.create_enroll_token(args.commune, args.name))
    finally:
        await store.close()
    return EXIT_OK


async def cmd_operator_add(args: Any) -> int:
    hub_config.load(args.data)
    password = read_password()
    accounts = await open_accounts(args.data)
    try:
        await accounts.add_user(args.username, password, args.role)
    finally:
        await accounts.conn.close()
    print(f"operator {args.username} saved")
    return EXIT_OK


async def cmd_revoke(args: Any) -> int:
    store = await _open(args.data)
    try:
        await store.revoke(args.node)
    finally:
        await store.close()
    print(f"node {args.node} revoked")
    return EXIT_OK


async def cmd_nodes(args: Any) -> int:
    store = await _open(args.data)
    try:
        items = await node_items(store)
    finally:
        await store.close()
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        for item in items:
            why = "; ".join(item["reasons"])
            print(f"{item['node']:12} {item['health']:8} pending={item['pending_events']:<6} "
                  f"last_success={item['last_success_at'] or '-'} {why}")
    return EXIT_OK


def _read(path: Path) -> tuple[str, str]:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("toml", "csv"):
        raise ValidationError(f"{path}: use a .toml or .csv file")
    try:
        return path.read_text(encoding="utf-8-sig"), fmt
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from exc


async def cmd_procedures_import(args: Any) -> int:
    text, fmt = _read(args.file)
    store = await _open(args.data)
    try:
        catalogue = import_procedures(text, fmt, store.catalogue)
        version = await store.publish("procedures", catalogue_to_plain(catalogue))
    finally:
        await store.close()
    print(f"published {len(catalogue.procedures)} procedures as version {version}")
    return EXIT_OK


async def cmd_holidays_import(args: Any) -> int:
    text, fmt = _read(args.file)
    holidays = import_holidays(text, fmt)
    store = await _open(args.data)
    try:
        version = await store.publish("holidays", holidays_to_plain(holidays))
    finally:
        await store.close()
    print(f"published {len(holidays)} holidays as version {version}")
    return EXIT_OK


HANDLERS = {"procedures import": cmd_procedures_import, "holidays import": cmd_holidays_import,
"init": cmd_init, "serve": cmd_serve, "enroll": cmd_enroll,
            "operator add": cmd_operator_add, "node revoke": cmd_revoke, "nodes": cmd_nodes}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    return run_cli("central-hub", parser(), HANDLERS, sys.argv[1:] if argv is None else argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
