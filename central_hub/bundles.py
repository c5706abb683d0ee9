"""The hub's side of store-and-forward bundles (`protocol/bundle.py`): import a commune's, export
the answer.

An imported bundle is applied as a live exchange would be: each events section is a sync request
body, taken by `central_hub.exchange.take` (the node check, the hold-back after a restore, the
chain and scope rules of `Ingest.accept`, committed before anything is reported); its scans are
appended to the blob store, which verifies them by hash, and only if an attachment of the node's
commune names them (as `PUT /v1/blobs` requires). Who may deliver one: the node its signing
certificate names, issued by this hub's CA and recorded for it — an active node, or one revoked
*as replaced* (`central-hub node replace`: its recovered old disk delivers its unsynced events,
once, by the chain rule); never one revoked for cause, nor a certificate revoked or superseded.

What the hub learns from a node's bundle (its cursor, the log epoch it is of, the reference data
it holds, the scans it sent, the rejections) is kept in the meta table under `bundle:<node>`, so
`export` answers from where the node stands, like a live response.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cryptography import x509

from central_hub import tls
from central_hub.epoch import log_epoch
from central_hub.exchange import take
from central_hub.replace import bundle_node
from central_hub.store import HubStore, Node
from protocol import bundle, codec
from protocol.bundle import BundleRefused, Header, Seen
from protocol.errors import AuthError, RemoteProtocolError, SyncError
from protocol.messages import Rejection, SyncResponse, decode_request, encode_response
from protocol.session import read_from
from service import bundlefile, pki
from service.blobs import MAX_BLOB, check_sha
from service.bundlefile import Imported
from service.sqlite import transaction

log = logging.getLogger(__name__)

STATE_KEY = "bundle:{node}"
WANT_BYTES = 2 * 1024 * 1024  # of events per answer section (far under the codec's limits)


def _ca(data: Path) -> x509.Certificate:
    if not tls.has_tls(data):
        raise BundleRefused("this hub has no CA (TLS material of `central-hub init`): bundles are "
                            "signed by certificates it issues")
    return pki.load_cert((tls.tls_dir(data) / tls.CA_CERT).read_bytes())


def _blob(body: bytes) -> tuple[str, int, int, bytes]:
    """A scan's chunk section: (sha256, offset, size, data)."""
    obj = codec.decode_body(body)
    if not isinstance(obj, dict):
        raise RemoteProtocolError("a scan section must be a map")
    sha, off, size, data = obj.get("sha"), obj.get("off"), obj.get("size"), obj.get("data")
    if not (isinstance(sha, str) and type(off) is int and type(size) is int
            and isinstance(data, bytes) and 0 <= off and off + len(data) <= size <= MAX_BLOB):
        raise RemoteProtocolError("a scan section needs sha, off, size and data within limits")
    return check_sha(sha), off, size, data


async def _state(store: HubStore, node: str) -> dict[str, Any]:
    raw = await store.log.get_meta(STATE_KEY.format(node=node))
    return json.loads(raw) if raw else {}


async def sender(store: HubStore, node: str, serial: str) -> Node:
    """The node that may deliver a bundle signed by its certificate `serial`: the rule of
    `central_hub.replace.bundle_node` (an active node, or one revoked as replaced, and a
    certificate the hub issued to it, revoked by nothing but the replacement). AuthError
    otherwise, saying that nothing was applied."""
    try:
        return await bundle_node(store.trust, node, serial)
    except AuthError as exc:
        raise AuthError(f"{exc.message}; nothing applied") from exc


async def import_bundle(store: HubStore, data: Path, path: Path) -> Imported:
    """Check the bundle at `path` whole, then apply it (see the module's docstring)."""
    ca = _ca(data)
    opened = await bundlefile.open_bundle(path, lambda header: bundle.check_addressed(
        header, kind=bundle.EDGE, hub=pki.fingerprint(ca)), _check)
    header = opened.header
    bundlefile.verify_issued(opened.signer, ca, "hub")
    if pki.node_of(opened.signer) != header.node or header.origin != header.node:
        raise BundleRefused(f"bundle names node {header.node} but is signed by "
                            f"{pki.node_of(opened.signer)}'s certificate: nothing applied")
    node = await sender(store, header.node, pki.serial_of(opened.signer))
    state = await _state(store, node.node)
    if not bundle.order(Seen.from_plain(state.get("seen")), header, opened.digest):
        return Imported(header, again=True, ack=int(state.get("ack", 0)))
    return await _apply(store, node, opened, state)


async def _check(header: Header, kind: int, body: bytes) -> None:
    """Decode a section as the import will (nothing is applied until every one decodes)."""
    if kind == bundle.BLOB:
        _blob(body)
    elif decode_request(body).node != header.node:
        raise BundleRefused("bundle corrupted: a section names another node than its header")


async def _apply(store: HubStore, node: Node, opened: bundlefile.Opened,
                 state: dict[str, Any]) -> Imported:
    header = opened.header
    before = await _head(store, node.node)
    ack, rejections, learned = before, [], {}
    scans: dict[str, bool] = {}
    async for kind, body in bundlefile.sections(opened):
        if kind == bundle.EVENTS:
            req = decode_request(body)
            ack, rejected = await take(store, node, req)
            rejections += rejected
            learned = {"cursor": req.cursor, "epoch": req.epoch, "ref": req.ref}
        else:
            sha, off, size, chunk = _blob(body)
            scans[sha] = await _scan(store, node, sha, off, size, chunk) and scans.get(sha, True)
    kept = _merge(state, learned)
    kept.update(seen=Seen(header.serial, opened.digest, store.now_ms()).to_plain(), ack=ack,
                blobs=sorted(set(header.blobs)),
                rejected=[[r.seq, r.code, r.reason] for r in rejections]
                or state.get("rejected", []))
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(STATE_KEY.format(node=node.node), json.dumps(kept))
    log.warning("bundle #%d of %s imported: %d new events (ack %d), %d scans", header.serial,
                node.node, max(0, ack - before), ack, sum(scans.values()))
    return Imported(header, False, max(0, ack - before), ack, len(rejections),
                    sum(scans.values()), sum(not ok for ok in scans.values()))


def _merge(state: dict[str, Any], learned: dict[str, Any]) -> dict[str, Any]:
    """The node's position as the hub knows it: a bundle's, unless an earlier one of the same
    log epoch said the node stood further on (bundles and live syncs interleave)."""
    kept = dict(state)
    if learned:
        same = learned["epoch"] == state.get("epoch")
        if not same or learned["cursor"] >= int(state.get("cursor", 0)):
            kept.update(cursor=learned["cursor"], epoch=learned["epoch"])
        kept["ref"] = learned["ref"]
    return kept


async def _head(store: HubStore, node: str) -> int:
    async with store.conn.execute("SELECT last_seq FROM origins WHERE origin=?", (node,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _scan(store: HubStore, node: Node, sha: str, off: int, size: int,
                chunk: bytes) -> bool:
    """Append a chunk of a scan the node's commune's attachments name; False if none does."""
    if not await store.refs.allowed(sha, node.commune):
        log.warning("bundle of %s carries scan %s that no attachment of commune %s names: "
                    "skipped", node.node, sha[:12], node.commune)
        return False
    held = store.blobs.have(sha)
    if store.blobs.has(sha) or off + len(chunk) <= held:
        return True
    if off > held:  # an earlier chunk was skipped (a partial upload was lost): later
        return False
    try:
        await store.blobs.append(sha, held, chunk[held - off:], size)
    except SyncError as exc:  # wrong hash: discarded by the blob store, the node sends it again
        log.warning("scan %s of %s: %s", sha[:12], node.node, exc.message)
        return False
    return True


async def export_bundle(store: HubStore, data: Path, node_id: str, path: Path) -> Header:
    """Write the answer for `node_id` to `path`: the hub's ack of its events, its scope after
    the cursor the hub knows it has, newer reference data, the scans held of those it sent."""
    ca = _ca(data)
    node = await _answered(store, node_id)
    state = await _state(store, node.node)
    epoch = await log_epoch(store)
    cursor = int(state.get("cursor", 0))
    start, reset = read_from(cursor, str(state.get("epoch", "")), epoch,
                             await store.feed.end() if cursor else 0)
    ack = await _head(store, node.node)
    rejections = [Rejection(int(s), str(c), str(r)) for s, c, r in state.get("rejected", [])]
    writer = bundlefile.Writer(path)
    try:
        position, more, first = start, True, True
        while more:
            events, position_after, more = await store.read_scope(
                node, position, WANT_BYTES, store.log.mergers.units_of(node.commune))
            ref = await store.refdata_newer(dict(state.get("ref", {}))) if first else {}
            writer.add(bundle.EVENTS, encode_response(SyncResponse(
                ack, events, position_after, more, store.now_ms(),
                rejections if first else [], refdata=ref, epoch=epoch,
                reset=reset and first)))
            position, first = position_after, False
        held = [sha for sha in state.get("blobs", []) if store.blobs.has(sha)]
        last = Seen.from_plain(state.get("sent"))
        serial = bundle.next_serial(last.serial if last else 0, store.now_ms())
        server = (tls.tls_dir(data) / tls.SERVER_CERT).read_text(encoding="ascii")
        key = pki.load_key((tls.tls_dir(data) / tls.SERVER_KEY).read_bytes())
        header = writer.finish(lambda length, sha, count: Header(
            bundle.HUB, node.node, store.origin, pki.fingerprint(ca), epoch, serial,
            store.now_ms(), {"from": start, "to": position, "ack": ack,
                             "reset": int(reset or start == 0)},
            length, sha, count, server, held), key)
    except BaseException:
        writer.discard()
        raise
    state["sent"] = Seen(serial, b"", store.now_ms()).to_plain()
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(STATE_KEY.format(node=node.node), json.dumps(state))
    return header


async def _answered(store: HubStore, node: str) -> Node:
    """The node an answer may be written for: enrolled and not revoked."""
    async with store.reader.execute(
            "SELECT commune, revoked_at FROM nodes WHERE node=?", (node,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise BundleRefused(f"no node {node}")
    if row[1] is not None:
        raise BundleRefused(f"node {node} is revoked (or replaced): there is nothing to send it")
    return Node(node, str(row[0]))
