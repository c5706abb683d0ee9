"""`edge-node`: init (enroll), serve, sync, status, backup, restore, bundle export|import,
user add|list|disable|enable|passwd|role."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_node import backup, lan, restore
from edge_node import config as edge_config
from edge_node.app import make_app, open_accounts, sync_status
from edge_node.bundle_cli import cmd_bundle_export, cmd_bundle_import
from edge_node.enroll import enroll, replaced_node
from edge_node.identity import Identity
from edge_node.roles import ROLES
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol.calendar import iso
from service import pki
from service.accounts import Accounts
from service.cli import EXIT_ERROR, EXIT_OK, Parser, add_account, read_password
from service.cli import run as run_cli
from service.loopback import is_loopback_url

log = logging.getLogger(__name__)


def parser() -> Parser:
    """The command line of CONTRACT §6."""
    p = Parser(prog="edge-node", description="Commune edge node: intake offline, sync with the hub.")
    sub = p.add_subparsers(metavar="COMMAND")

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text)
        c.set_defaults(handler=name)
        c.add_argument("--data", required=True, type=Path, help="data directory")
        return c

    init = cmd("init", "enroll this node with the hub")
    init.add_argument("--hub", required=True, help="hub URL, e.g. https://hub.example:8700")
    init.add_argument("--token", required=True, help="one-time token from `central-hub enroll`")
    init.add_argument("--ca-cert", type=Path, default=None,
                      help="the province's CA certificate (PEM) to pin, when the token carries "
                           "no CA fingerprint")
    init.add_argument("--insecure-http", action="store_true",
                      help="allow a plain http:// hub that is not on this machine "
                           "(development only)")
    init.add_argument("--lan-name", action="append", default=[], metavar="NAME",
                      help="another host name or LAN address of this PC for its HTTPS "
                           "certificate (its host name and addresses are found by themselves)")
    serve = cmd("serve", "staff UI + API + background sync")
    serve.add_argument("--host", default=None,
                       help="0.0.0.0 to serve the office LAN (over HTTPS); default 127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--tls", choices=("auto", "on", "off"), default="auto",
                       help="auto: HTTPS with the LAN certificate unless on loopback; on: "
                            "always; off: plain HTTP even on the LAN (not for production)")
    cmd("sync", "one full sync session now; exit 0 when nothing is pending")
    cmd("backup", "copy the database, scans, settings and identity to DIR (also while "
        "serving)").add_argument("dest", type=Path, metavar="DIR", help="a new directory")
    restore = cmd("restore", "put a backup back (edge stopped); takes back from the hub the "
                  "events written after it")
    restore.add_argument("src", type=Path, metavar="DIR", help="a directory written by backup")
    restore.add_argument("--force", action="store_true",
                         help="restore although the edge's port answers")
    status = cmd("status", "show sync state")
    status.add_argument("--json", action="store_true")
    bun = sub.add_parser("bundle", help="store-and-forward bundles for a link dead for weeks "
                         "(docs/operations.md)").add_subparsers(metavar="ACTION")
    for name, what in (("export", "write what the hub has not acknowledged (events, scans)"),
                       ("import", "apply the hub's answer bundle")):
        c = bun.add_parser(name, help=what)
        c.set_defaults(handler=f"bundle {name}")
        c.add_argument("--data", required=True, type=Path, help="data directory")
        c.add_argument("file", type=Path, metavar="FILE")
    user = sub.add_parser("user", help="staff accounts").add_subparsers(metavar="ACTION")
    add = user.add_parser("add", help="add a user (password read from stdin)")
    add.set_defaults(handler="user add")
    add.add_argument("--data", required=True, type=Path)
    add.add_argument("--username", required=True)
    add.add_argument("--role", default="clerk", choices=ROLES)

    def user_cmd(name: str, help_text: str, username: bool = True) -> argparse.ArgumentParser:
        c = user.add_parser(name, help=help_text)
        c.set_defaults(handler=f"user {name}")
        c.add_argument("--data", required=True, type=Path)
        if username:
            c.add_argument("--username", required=True)
        return c

    user_cmd("list", "every staff account", username=False).add_argument("--json",
                                                                          action="store_true")
    user_cmd("disable", "lock an account out (its sessions end at once)")
    user_cmd("enable", "let a disabled account log in again")
    user_cmd("passwd", "set a new password (read from stdin); the user's sessions end")
    user_cmd("role", "give an account another role").add_argument("--role", required=True,
                                                                   choices=ROLES)
    return p


async def cmd_init(args: Any) -> int:
    config = await enroll(args.data, args.hub, args.token, args.ca_cert, args.insecure_http,
                          ",".join(args.lan_name))
    how = "with a certificate" if not config.credential else "with a bearer credential (plain HTTP)"
    print(f"enrolled as node {config.node} of commune {config.commune} ({config.commune_name}) "
          f"{how}")
    if replaces := await replaced_node(args.data, config):
        print(f"this PC replaces node {replaces}: the commune's dossiers come from the hub at "
              "the first sync (`edge-node serve` starts it; the desk works meanwhile, scans "
              "follow last)")
    return EXIT_OK


async def cmd_backup(args: Any) -> int:
    return await backup.cmd_backup(args.data, args.dest)


async def cmd_restore(args: Any) -> int:
    return await restore.cmd_restore(args.data, args.src, args.force)


def cmd_serve(args: Any) -> int:
    config = edge_config.load(args.data)
    host = args.host or config.host
    port = args.port or config.port
    https = args.tls == "on" or (args.tls == "auto" and not is_loopback_url(f"http://{host}/"))
    ssl_context = lan.server_context(args.data) if https else None
    if not https and not is_loopback_url(f"http://{host}/"):
        log.warning("serving the LAN in plain HTTP (--tls off): passwords travel in clear text")
    logging.getLogger().setLevel(logging.INFO)
    print(f"edge node {config.node} serving on {'https' if https else 'http'}://{host}:{port}/",
          flush=True)
    web.run_app(make_app(args.data, config), host=host, port=port, print=None,
                access_log=None, ssl_context=ssl_context)
    return EXIT_OK


async def cmd_sync(args: Any) -> int:
    config = edge_config.load(args.data)
    store = await EdgeStore.open(args.data / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    client = SyncClient(store, config)
    client.data_dir = str(args.data)
    try:
        result = await client.session(attempts=3, cap_s=5)
        print(f"sent {result.sent} events, received {result.received} in "
              f"{result.round_trips} round trips; {result.pending_after} pending")
        return EXIT_OK if result.pending_after == 0 else EXIT_ERROR
    finally:
        await client.close()
        await store.close()


async def cmd_status(args: Any) -> int:
    config = edge_config.load(args.data)
    store = await EdgeStore.open(args.data / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    try:
        client = SyncClient(store, config)
        client.state = "unknown"
        status = await sync_status(store, client)
        status.pop("state")
        status.update(node=config.node, commune=config.commune, hub=config.hub_url,
                      dossiers=await store.dossier_count(), ack=await store.sync.ack(),
                      cursor=await store.sync.cursor(),
                      conflicts_open=await store.dossiers.count_conflicts())
        identity = Identity(args.data)
        if identity.exists():
            status["certificate_expires_at"] = iso(pki.expires_ms(identity.certificate()))
    finally:
        await store.close()
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        print("\n".join(status_lines(status)))
    return EXIT_OK


def status_lines(status: dict[str, Any]) -> list[str]:
    """`edge-node status` as text: one `key value` line each, the optional ones when present."""
    lines = [f"{key:22} {status[key]}" for key in (
        "node", "commune", "hub", "dossiers", "pending_events", "oldest_pending_age_s",
        "last_success_at", "clock_offset_ms", "conflicts_open", "ack", "cursor")]
    if "certificate_expires_at" in status:
        lines.append(f"{'certificate_expires_at':22} {status['certificate_expires_at']}")
    if status["rejected"]:
        lines.append(f"{'rejected':22} {len(status['rejected'])} events refused by the hub")
    if warning := status.get("warning"):
        lines.append(f"{'warning':22} {warning['code']} since {iso(warning['at'])}: "
                     f"{warning['message']}")
    return lines


async def cmd_user_add(args: Any) -> int:
    edge_config.load(args.data)
    await add_account(lambda: open_accounts(args.data), args.username, args.role)
    print(f"user {args.username} ({args.role}) saved")
    return EXIT_OK


async def _with_accounts(data: Path, action: Callable[[Accounts], Awaitable[None]]) -> None:
    edge_config.load(data)
    accounts = await open_accounts(data)
    try:
        await action(accounts)
    finally:
        await accounts.conn.close()


async def cmd_user_list(args: Any) -> int:
    users: list[dict[str, Any]] = []

    async def read(accounts: Accounts) -> None:
        users.extend(await accounts.users())

    await _with_accounts(args.data, read)
    if args.json:
        print(json.dumps([{**u, "created_at": iso(u["created_at"] * 1000)} for u in users],
                         ensure_ascii=False, indent=2))
    for u in [] if args.json else users:
        state = "disabled" if u["disabled"] else "active"
        print(f"{u['username']:32} {u['role']:7} {state:8} since {iso(u['created_at'] * 1000)}")
    return EXIT_OK


async def cmd_user_disable(args: Any) -> int:
    await _with_accounts(args.data, lambda a: a.set_disabled(args.username, True))
    print(f"user {args.username} disabled; their sessions have ended")
    return EXIT_OK


async def cmd_user_enable(args: Any) -> int:
    await _with_accounts(args.data, lambda a: a.set_disabled(args.username, False))
    print(f"user {args.username} enabled")
    return EXIT_OK


async def cmd_user_passwd(args: Any) -> int:
    password = read_password("New password: ")
    await _with_accounts(args.data, lambda a: a.reset_password(args.username, password))
    print(f"password of {args.username} set; their sessions have ended")
    return EXIT_OK


async def cmd_user_role(args: Any) -> int:
    await _with_accounts(args.data, lambda a: a.set_role(args.username, args.role))
    print(f"user {args.username} is now {args.role}")
    return EXIT_OK


HANDLERS = {"init": cmd_init, "serve": cmd_serve, "sync": cmd_sync, "status": cmd_status,
            "backup": cmd_backup, "restore": cmd_restore,
            "bundle export": cmd_bundle_export, "bundle import": cmd_bundle_import,
            "user add": cmd_user_add, "user list": cmd_user_list,
            "user disable": cmd_user_disable, "user enable": cmd_user_enable,
            "user passwd": cmd_user_passwd, "user role": cmd_user_role}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    return run_cli("edge-node", parser(), HANDLERS, sys.argv[1:] if argv is None else argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
