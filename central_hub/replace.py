"""Replacing a commune's dead PC: a new node for the same commune, and the old one's late events.

Theory. A node's identity is its origin: the hash chain of its events, and the credential (or
certificate) that lets it sync. A PC that died takes neither with it: its chain at the hub is
whole up to what it had sent, and what it had not sent is on its disk. `central-hub node replace`
revokes the old node's credential and certificates (reason `replaced`) and issues a one-time
enrollment token for the same commune; the new PC enrolls with it as a *new* origin (its own chain,
its own dossier codes: nothing of the old one is ever reused), and reads the commune's whole state
from the hub like any new node. The replacement is recorded (`node_replacements`: old node, the
token, when, the successor once it enrolls).

If the old disk is recovered, its unsynced events still belong in the log, exactly once. They may
come only by a path an operator controls — a bundle carried to the province and imported
(`bundle_node`), never by the revoked credential's live sync (refused at authentication, as any
revoked node's). Exactly once is the chain's rule, not this module's: the hub holds the old origin's
chain head, so the ingest (`central_hub/ingest.py`) takes only the events that continue it and a
bundle imported twice, or events already synced, add nothing.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from central_hub.trust_store import Node, TrustStore, token_hash
from protocol.errors import AuthError, NotFound, ValidationError
from service.sqlite import transaction

if TYPE_CHECKING:  # the store's schema names this module's table
    from central_hub.store import HubStore

log = logging.getLogger(__name__)

REPLACED = "replaced"  # the reason the old node's certificates carry

# Migration 8 of the hub (central_hub/schema.py).
REPLACE_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_replacements (
    node TEXT PRIMARY KEY,
    commune TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    replaced_at INTEGER NOT NULL,
    successor TEXT
) WITHOUT ROWID;
"""


async def replace_node(trust: TrustStore, node: str, ca_fingerprint: str | None = None) -> str:
    """Revoke `node` as replaced and return a one-time enrollment token for its commune (72 h),
    in one transaction. A node replaced before whose token was never used is given a new token
    (the old one stops working); one whose successor enrolled is refused: replace the successor.
    NotFound for an unknown node."""
    async with trust.reader.execute(
            "SELECT n.commune, c.name, r.successor, n.revoked_at FROM nodes n "
            "LEFT JOIN communes c ON c.code=n.commune "
            "LEFT JOIN node_replacements r ON r.node=n.node WHERE n.node=?", (node,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no node {node}")
    commune, name, successor, revoked_at = row
    if successor is not None:
        raise ValidationError(f"node {node} was already replaced by {successor}: to replace "
                              f"that PC, replace {successor}")
    replaced_before = await _replacement(trust, node) is not None
    if revoked_at is not None and not replaced_before:
        raise ValidationError(f"node {node} was revoked (not replaced): its events are not "
                              "trusted any more; enroll the new PC with `central-hub enroll`")
    async with trust.lock, transaction(trust.conn):
        now = trust.now_ms()
        if replaced_before:  # the earlier, unused token is spent: only the new one works
            await trust.conn.execute(
                "UPDATE enroll_tokens SET used_at=? WHERE token_hash=(SELECT token_hash FROM "
                "node_replacements WHERE node=?) AND used_at IS NULL", (now, node))
        token = await trust.add_enroll_token(commune, name, ca_fingerprint)
        await trust.conn.execute(
            "INSERT INTO node_replacements(node, commune, token_hash, replaced_at) "
            "VALUES (?,?,?,?) ON CONFLICT(node) DO UPDATE SET token_hash=excluded.token_hash, "
            "replaced_at=excluded.replaced_at", (node, commune, token_hash(token), now))
        await trust.conn.execute(
            "UPDATE nodes SET revoked_at=coalesce(revoked_at, ?) WHERE node=?", (now, node))
        await trust.conn.execute(
            "UPDATE node_certs SET revoked_at=?, reason=? WHERE node=? AND revoked_at IS NULL",
            (now, REPLACED, node))
    log.warning("node %s of commune %s replaced: its credential is revoked; a token for the "
                "new PC was issued", node, commune)
    return token


async def _replacement(trust: TrustStore, node: str) -> dict[str, Any] | None:
    async with trust.conn.execute(
            "SELECT commune, replaced_at, successor FROM node_replacements WHERE node=?",
            (node,)) as cur:
        row = await cur.fetchone()
    return None if row is None else {"commune": row[0], "replaced_at": row[1],
                                     "successor": row[2]}


async def replacement(trust: TrustStore, node: str) -> dict[str, Any] | None:
    """The replacement of `node` ({commune, replaced_at, successor}), or None."""
    return await _replacement(trust, node)


async def bundle_node(trust: TrustStore, node: str, serial: str | None = None) -> Node:
    """The node whose events a bundle (or another operator-controlled delivery) carries, for
    `Ingest.accept`: an enrolled, unrevoked node, or one revoked *as replaced* — a recovered
    disk's events are still the commune's and are taken exactly once by the chain rule. With
    `serial`, the certificate that signed the bundle must be one the hub issued to `node`, and
    unrevoked, or revoked only by the replacement (not superseded by a renewal before it, not
    revoked for cause). AuthError otherwise: a node revoked for cause delivers nothing."""
    async with trust.reader.execute(
            "SELECT commune, revoked_at FROM nodes WHERE node=?", (node,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise AuthError(f"unknown node {node}")
    commune, revoked_at = str(row[0]), row[1]
    replaced = revoked_at is not None and await replacement(trust, node) is not None
    if revoked_at is not None and not replaced:
        raise AuthError(f"node {node} is revoked: what it signed is refused")
    if serial is not None:
        async with trust.reader.execute(
                "SELECT revoked_at, reason FROM node_certs WHERE node=? AND serial=?",
                (node, serial)) as cur:
            cert = await cur.fetchone()
        if cert is None:
            raise AuthError(f"the certificate {serial} is not one the hub issued to {node}")
        if cert[0] is not None and cert[1] != REPLACED:
            raise AuthError(f"the certificate {serial} of {node} was {cert[1] or 'revoked'} "
                            "before it signed this")
    return Node(node, commune)


async def cmd_replace(store: HubStore, node: str, ca_fingerprint: str | None) -> int:
    """`central-hub node replace --data D --node N`: the token alone on stdout (for scripts),
    what to do with it on stderr; the store is closed."""
    try:
        token = await replace_node(store.trust, node, ca_fingerprint)
    finally:
        await store.close()
    print(token)
    print(f"node {node} revoked as replaced; on the new PC: edge-node init --data DIR --hub URL "
          "--token <the token above> (valid 72 h, once)", file=sys.stderr)
    return 0
