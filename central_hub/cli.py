"""`central-hub`: init, serve, enroll, operator add, node revoke, nodes (CONTRACT §6); portal
add|list|revoke, communes import, bundle import|export (CONTRACT additions)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from aiohttp import web

from central_hub import backup, replace, restore, tls
from central_hub import config as hub_config
from central_hub.app import make_app, node_items, open_accounts, open_store
from central_hub.bundle_cli import cmd_bundle_export, cmd_bundle_import
from central_hub.config import HubConfig
from central_hub.portal_cli import cmd_portal_add, cmd_portal_list, cmd_portal_revoke
from central_hub.refdata_cli import (
    cmd_communes_import,
    cmd_holidays_import,
    cmd_procedures_import,
)
from central_hub.reorg_cli import cmd_commune_merge
from central_hub.store import HubStore
from central_hub.verify import audit
from protocol.errors import StoreError, ValidationError
from service import gctune, pki
from service.cli import EXIT_ERROR, EXIT_OK, Parser, add_account
from service.cli import run as run_cli
from service.db import is_pg_url, redact
from service.hubtime import wall_clock_ms
from service.loopback import is_loopback

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
    init.add_argument("--db", default="sqlite",
                      help="sqlite (default: a file inside DIR) or a postgresql://user@host/db "
                           "URL (the database must exist; tables are created)")
    init.add_argument("--host", action="append", default=[], dest="hosts", metavar="NAME",
                      help="a name or IP address of the hub for its server certificate "
                           "(repeat; 127.0.0.1 and localhost are always included)")
    init.add_argument("--ca-cert", type=Path, default=None,
                      help="import the province's CA certificate (PEM) instead of creating one")
    init.add_argument("--ca-key", type=Path, default=None, help="the imported CA's key (PEM)")
    serve = cmd(sub, "serve", "serve", "sync endpoint, operator API and dashboard")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1,
                       help="serve with N processes sharing the port (SO_REUSEPORT) and the "
                            "database; one of them runs the monitor")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP with node bearer tokens even though the data dir "
                            "has TLS material or the address is not loopback (development only)")
    cmd(sub, "verify", "verify", "audit the whole log; exit 1 naming the first bad event")
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
    cmd(node, "replace", "node replace", "a dead PC: revoke its node as replaced and print a "
        "one-time token for the new PC (docs/operations.md)").add_argument("--node", required=True)
    for kind, what in (("procedures", "the procedure catalogue"),
                       ("holidays", "the holiday calendar")):
        group = sub.add_parser(kind, help=what).add_subparsers(metavar="ACTION")
        imp = cmd(group, "import", f"{kind} import", f"publish {what} from a TOML or CSV file")
        imp.add_argument("file", type=Path)
    com = sub.add_parser("communes", help="the province's commune list")
    imp = cmd(com.add_subparsers(metavar="ACTION"), "import", "communes import",
              "publish the commune list from a TOML or CSV file (code,name,merged_into,effective)")
    imp.add_argument("file", type=Path)
    unit = sub.add_parser("commune", help="the reorganisation: mergers of communes")
    mrg = cmd(unit.add_subparsers(metavar="ACTION"), "merge", "commune merge",
              "merge communes into one (docs/reorganisation.md)")
    mrg.add_argument("--into", required=True, help="the code of the commune they form (5 digits)")
    mrg.add_argument("--name", required=True, help="its name, e.g. 'Xã Côn Lôn'")
    mrg.add_argument("--from", required=True, nargs="+", dest="merged", metavar="CODE",
                     help="the codes of the communes merged into it")
    mrg.add_argument("--effective", default=None, metavar="YYYY-MM-DD",
                     help="the day it takes effect (default: today; not later)")
    portal = sub.add_parser("portal", help="the province portal's API keys (online intake)")
    portal_sub = portal.add_subparsers(metavar="ACTION")
    cmd(portal_sub, "add", "portal add",
        "print a new API key for a portal, once").add_argument("--name", required=True)
    cmd(portal_sub, "revoke", "portal revoke",
        "revoke a portal's API key").add_argument("--name", required=True)
    cmd(portal_sub, "list", "portal list", "list the portals and their use")
    bun = sub.add_parser("bundle", help="store-and-forward bundles for a commune whose link is "
                         "dead (docs/operations.md)").add_subparsers(metavar="ACTION")
    cmd(bun, "import", "bundle import", "apply a commune's bundle exactly as a sync would"
        ).add_argument("file", type=Path, metavar="FILE")
    bexp = cmd(bun, "export", "bundle export", "write the answer for a node: the hub's ack and "
               "the node's scope after what it has")
    bexp.add_argument("--node", required=True)
    bexp.add_argument("file", type=Path, metavar="FILE")
    nodes = cmd(sub, "nodes", "nodes", "list nodes and their health")
    nodes.add_argument("--json", action="store_true")
    bak = cmd(sub, "backup", "backup", "copy the database, blobs, config and TLS files to DEST "
              "(while the hub runs; docs/backup.md)")
    bak.add_argument("dest", type=Path, help="a new directory")
    res = cmd(sub, "restore", "restore", "put a backup back (hub stopped) and rotate the log epoch")
    res.add_argument("src", type=Path, nargs="?", help="a directory written by backup")
    res.add_argument("--epoch-only", action="store_true",
                     help="only rotate the log epoch (after pg_restore of a PostgreSQL hub)")
    res.add_argument("--force", action="store_true", help="restore although the port answers")
    res.add_argument("--trust-from-backup", action="store_true",
                     help="keep the backup's nodes, revocations, enrollment tokens and operator "
                     "accounts (by default they are carried over from the database replaced)")
    return p


async def _open(data: Path) -> HubStore:
    return await open_store(data, hub_config.load(data))


async def cmd_init(args: Any) -> int:
    data: Path = args.data
    if (data / hub_config.CONFIG_FILE).exists():
        raise ValidationError(f"{data} is already a hub data dir")
    db = args.db or "sqlite"
    if db != "sqlite" and not is_pg_url(db):
        raise ValidationError(f"--db must be sqlite or a postgresql:// URL, not {db!r}")
    config = HubConfig(db=db)
    created = not data.exists()
    data.mkdir(parents=True, exist_ok=True)
    try:
        fingerprint = tls.init_tls(data, args.hosts, wall_clock_ms(), args.ca_cert, args.ca_key,
                                   config.province)
    except BaseException:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        raise
    try:  # create the tables now: a wrong URL or an unreachable server fails init, not serve
        store = await open_store(data, config)
        await store.close()
        accounts = await open_accounts(data, config.db)
        await accounts.conn.close()
    except BaseException:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        raise
    hub_config.save(data, config)
    where = "SQLite" if config.db == "sqlite" else f"PostgreSQL {redact(config.db)}"
    print(f"hub initialized in {data} ({where}); CA fingerprint (SHA-256) {fingerprint}")
    return EXIT_OK


def cmd_serve(args: Any) -> int:
    config = hub_config.load(args.data)
    host, port = args.host or config.host, args.port or config.port
    logging.getLogger().setLevel(logging.INFO)
    authority, ssl_context = None, None
    if tls.has_tls(args.data) and not args.insecure_http:
        authority = tls.Authority.load(args.data, config.node_cert_days, config.recover_max_days)
        ssl_context = tls.server_context(args.data)
    elif not is_loopback(host) and not args.insecure_http:
        raise ValidationError(
            f"refusing plain HTTP on {host}, which is not a loopback address: the data dir has "
            "no TLS material (run `central-hub init`), or pass --insecure-http to force it")
    scheme = "https" if ssl_context else "http"
    if not 1 <= args.workers <= 64:
        raise ValidationError("--workers must be 1–64")
    if args.workers > 1:
        asyncio.run(_upgrade_once(args.data))
        if config.db == "sqlite":
            log.warning("several workers on SQLite share one writer lock: for throughput across "
                        "processes use PostgreSQL (docs/deployment.md)")
        print(f"central hub serving on {scheme}://{host}:{port}/ with {args.workers} workers",
              flush=True)
        return supervise(args, host, port)
    if not args.worker:
        print(f"central hub serving on {scheme}://{host}:{port}/", flush=True)
    web.run_app(_serving(make_app(args.data, config, authority)), host=host, port=port, print=None,
                access_log=None, ssl_context=ssl_context, reuse_port=args.worker)
    return EXIT_OK


async def _serving(app: Awaitable[web.Application]) -> web.Application:
    """The app, with the server's GC settings applied once it has started (service/gctune.py)."""
    built = await app

    async def tune(_: web.Application) -> None:
        gctune.tune_for_server()

    built.on_startup.append(tune)
    return built


async def _upgrade_once(data: Path) -> None:
    """Open the database once before the workers do: its migrations run here, and a database
    this program refuses stops the supervisor with its message instead of killing every worker
    it would restart (workers opening together would also be safe: service/migrations.py)."""
    store = await _open(data)
    await store.close()


def supervise(args: Any, host: str, port: int) -> int:
    """Run `args.workers` copies of this server on one port (the kernel spreads connections
    among them: SO_REUSEPORT), restart one that dies, and stop them all on SIGTERM/SIGINT."""
    argv = [sys.executable, "-c", "from central_hub.cli import run; run()", "serve",
            "--data", str(args.data), "--host", host, "--port", str(port), "--worker"]
    if args.insecure_http:
        argv.append("--insecure-http")
    stopping = failed = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [subprocess.Popen(argv) for _ in range(args.workers)]
    restarts: list[float] = []
    try:
        while not stopping:
            time.sleep(0.2)
            for i, child in enumerate(children):
                code = child.poll()
                if code is None or stopping:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 5 * args.workers:
                    log.error("workers keep dying (last exit code %s): giving up", code)
                    stopping = failed = True
                    break
                log.warning("worker %d exited with code %s: restarting it", child.pid, code)
                children[i] = subprocess.Popen(argv)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return EXIT_ERROR if failed else EXIT_OK


def _ca_fingerprint(data: Path) -> str | None:
    """The CA fingerprint a token carries (None: a plain-HTTP development hub)."""
    if not tls.has_tls(data):
        return None
    return pki.fingerprint(pki.load_cert((tls.tls_dir(data) / tls.CA_CERT).read_bytes()))


async def cmd_enroll(args: Any) -> int:
    store = await _open(args.data)
    try:
        print(await store.trust.create_enroll_token(args.commune, args.name,
                                                    _ca_fingerprint(args.data)))
    finally:
        await store.close()
    return EXIT_OK


async def cmd_replace(args: Any) -> int:
    return await replace.cmd_replace(await _open(args.data), args.node,
                                     _ca_fingerprint(args.data))


async def cmd_operator_add(args: Any) -> int:
    config = hub_config.load(args.data)
    await add_account(lambda: open_accounts(args.data, config.db), args.username, args.role)
    print(f"operator {args.username} saved")
    return EXIT_OK


async def cmd_revoke(args: Any) -> int:
    store = await _open(args.data)
    try:
        await store.trust.revoke(args.node)
    finally:
        await store.close()
    print(f"node {args.node} revoked")
    return EXIT_OK


async def cmd_verify(args: Any) -> int:
    store = await _open(args.data)
    try:
        report = await audit(store)
        first = report.first
        if first is not None:
            await store.trust.alert("audit_failed", first.describe(), origin=first.origin,
                              seq=first.seq)
    finally:
        await store.close()
    print(f"checked {report.origins} origins, {report.events} logged and "
          f"{report.quarantined} quarantined events")
    if first is None:
        print("the log is intact")
        return EXIT_OK
    for finding in sorted(report.findings, key=lambda f: (f.pos is None, f.pos or 0)):
        print(f"BAD {finding.describe()}")
    raise StoreError(f"the log has been altered: first bad event: {first.describe()}")


async def cmd_backup(args: Any) -> int:
    return await backup.cmd_backup(args.data, args.dest)


async def cmd_restore(args: Any) -> int:
    return await restore.cmd_restore(args.data, args.src, args.epoch_only, args.force, _open,
                                      trust_from_backup=args.trust_from_backup)


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


HANDLERS = {"procedures import": cmd_procedures_import, "holidays import": cmd_holidays_import,
            "communes import": cmd_communes_import, "commune merge": cmd_commune_merge,
            "portal add": cmd_portal_add,
            "portal revoke": cmd_portal_revoke, "portal list": cmd_portal_list,
            "bundle import": cmd_bundle_import, "bundle export": cmd_bundle_export,
            "init": cmd_init, "serve": cmd_serve, "enroll": cmd_enroll,
            "operator add": cmd_operator_add, "node revoke": cmd_revoke, "nodes": cmd_nodes,
            "node replace": cmd_replace,
            "verify": cmd_verify, "backup": cmd_backup, "restore": cmd_restore}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    return run_cli("central-hub", parser(), HANDLERS, sys.argv[1:] if argv is None else argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
