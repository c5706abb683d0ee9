"""The edge's side of store-and-forward bundles (`protocol/bundle.py`): export what the hub has
not acknowledged, import the hub's answer.

The export is what the next sync requests would carry — own events after the hub's ack, as sync
request bodies, the cursor, the reference data held — plus every scan not yet confirmed, signed
with the node's key (`DATA/tls/node.pem`: a node enrolled over https://). The import is what a
sync answer does: each section is a sync response body applied by `EdgeSync.apply_response`,
the edge's one apply path (events folded if not held, the ack and the cursor only forward, the
warnings a restored hub raises), except that a bundle's hub time says nothing of the clocks now
(`live=False`), and that a bundle reading the scope from further on than this node stands gives
its events but not its cursor (`protocol.bundle.moves_cursor`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from edge_node.identity import Identity
from edge_node.store import EdgeStore
from protocol import bundle, codec, is_hub_origin
from protocol.bundle import BundleRefused, Header, Seen
from protocol.messages import SyncRequest, decode_response, encode_request
from service import bundlefile, pki
from service.bundlefile import Imported
from service.sqlite import transaction

log = logging.getLogger(__name__)

SEEN_KEY = "bundle_seen"  # meta: the last hub bundle imported (protocol.bundle.Seen)
SENT_KEY = "bundle_sent"  # meta: the serial of the last bundle exported
BATCH_BYTES = 2 * 1024 * 1024  # of own events per section (far under the codec's limits)


def _identity(data: Path) -> Identity:
    identity = Identity(data)
    if not identity.exists():
        raise BundleRefused("this node has no certificate (it was enrolled with a development "
                            "hub over http://): bundles are signed by the node's certificate")
    return identity


async def export_bundle(store: EdgeStore, data: Path, path: Path) -> Header:
    """Write to `path` what the hub has not acknowledged: events and scans (see the module)."""
    identity = _identity(data)
    sync, node = store.sync, store.origin
    ack, cursor, epoch = await sync.ack(), await sync.cursor(), await sync.hub_epoch()
    writer = bundlefile.Writer(path)
    try:
        after, first, last = ack, 0, 0
        while True:  # at least one section: it carries the cursor even with no events
            batch, lo, hi = await sync.pending_batch(after, BATCH_BYTES)
            writer.add(bundle.EVENTS, encode_request(SyncRequest(
                node=node, events=[], batch=batch, cursor=cursor, want_bytes=0,
                clock_ms=store.time.wall(), ref=sync.refdata_held(), epoch=epoch)))
            if not hi:
                break
            first, last, after = first or lo, hi, hi
        scans = await store.queue.to_move("up")
        for sha, size in scans:
            for off in range(0, size, bundle.BLOB_CHUNK):
                chunk = await store.blobs.read(sha, off, bundle.BLOB_CHUNK)
                writer.add(bundle.BLOB, codec.encode_body(
                    {"sha": sha, "off": off, "size": size, "data": chunk}))
        sent = int(await store.log.get_meta(SENT_KEY, 0) or 0)
        serial = bundle.next_serial(sent, store.now_ms())
        header = writer.finish(lambda length, sha, count: Header(
            bundle.EDGE, node, node, pki.fingerprint(identity.ca()), epoch, serial,
            store.now_ms(), {"first": first, "last": last, "ack": ack, "cursor": cursor},
            length, sha, count, pki.cert_pem(identity.certificate()).decode("ascii"),
            [sha for sha, _ in scans]), identity.key())
    except BaseException:
        writer.discard()
        raise
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(SENT_KEY, serial)
    return header


async def _check(header: Header, kind: int, body: bytes) -> None:
    """Decode a section as the import will (nothing is applied until every one decodes)."""
    if kind != bundle.EVENTS:
        raise BundleRefused("bundle corrupted: a hub bundle carries no scans")
    decode_response(body)


async def import_bundle(store: EdgeStore, data: Path, path: Path) -> Imported:
    """Check the hub's bundle at `path` whole, then apply it (see the module's docstring)."""
    identity = _identity(data)
    ca = identity.ca()
    opened = await bundlefile.open_bundle(path, lambda header: bundle.check_addressed(
        header, kind=bundle.HUB, hub=pki.fingerprint(ca), node=store.origin), _check)
    header = opened.header
    bundlefile.verify_issued(opened.signer, ca, "node")
    if not is_hub_origin(header.origin):
        raise BundleRefused(f"bundle names origin {header.origin}, not the hub's: nothing applied")
    session = await store.sync.session()
    bundle.check_epoch(header, session.epoch)
    raw = await store.log.get_meta(SEEN_KEY)
    if not bundle.order(Seen.from_plain(json.loads(raw) if raw else None), header,
                        opened.digest):
        return Imported(header, again=True, ack=session.ack)
    moves = bundle.moves_cursor(header, session.cursor, session.epoch)
    reset = bool(header.ranges.get("reset")) and bool(session.epoch) and \
        header.epoch != session.epoch
    new, first = 0, True
    async for _, body in bundlefile.sections(opened):
        resp = decode_response(body)
        resp = replace(resp, reset=reset and first, cursor=resp.cursor if moves else 0)
        new += await store.sync.apply_response(resp, 0.0, 0.0, sent_after=0, live=False)
        first = False
    for sha in header.blobs:
        await store.queue.done(sha, "up")
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(SEEN_KEY, json.dumps(
            Seen(header.serial, opened.digest, store.now_ms()).to_plain()))
    if not moves:
        log.warning("bundle #%d reads the hub's log from %d, past this node's position %d: its "
                    "events are applied, the position stays", header.serial,
                    header.ranges.get("from", 0), session.cursor)
    return Imported(header, False, new, await store.sync.ack(), cursor_moved=moves)
