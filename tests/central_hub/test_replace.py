"""Replacing a dead PC at the hub (central_hub/replace.py), on SQLite and PostgreSQL: the token,
the revocation, the successor, and the rule for the old origin's late events — accepted exactly
once when an operator delivers them (a bundle), never through the revoked credential."""

from __future__ import annotations

import pytest

from central_hub.replace import bundle_node, replace_node, replacement
from central_hub.store import HubStore
from protocol.errors import AuthError, NotFound, ValidationError
from tests.central_hub.test_store import A, Chain, enrolled, event_ids
from tests.central_hub.test_store import hub as hub  # the fixture: a HubStore on either store

pytestmark = pytest.mark.both_stores


async def test_replace_revokes_and_the_token_enrolls_a_new_origin(hub: HubStore) -> None:
    old = await enrolled(hub, A)
    credential_token = await hub.trust.create_enroll_token(A, None)
    other = await hub.trust.enroll(credential_token)  # a second PC of the commune, untouched
    token = await replace_node(hub.trust, old.node)
    nodes = {n["node"]: n for n in await hub.sessions.nodes()}
    assert nodes[old.node]["revoked_at"] is not None
    assert nodes[other.node]["revoked_at"] is None
    new = await hub.trust.enroll(token)
    assert new.commune == A and new.node not in (old.node, other.node)
    assert new.replaces == old.node and other.replaces == ""
    assert (await replacement(hub.trust, old.node) or {})["successor"] == new.node
    with pytest.raises(AuthError):
        await hub.trust.enroll(token)  # one time only
    with pytest.raises(ValidationError, match=f"already replaced by {new.node}"):
        await replace_node(hub.trust, old.node)
    with pytest.raises(NotFound):
        await replace_node(hub.trust, "02245.99")


async def test_a_second_replace_before_enrolling_spends_the_first_token(hub: HubStore) -> None:
    old = await enrolled(hub, A)
    first = await replace_node(hub.trust, old.node)
    second = await replace_node(hub.trust, old.node)
    with pytest.raises(AuthError):
        await hub.trust.enroll(first)
    assert (await hub.trust.enroll(second)).replaces == old.node


async def test_a_node_revoked_for_cause_is_not_replaced_and_delivers_nothing(
        hub: HubStore) -> None:
    node = await enrolled(hub, A)
    await hub.trust.revoke(node.node)
    with pytest.raises(ValidationError, match="revoked"):
        await replace_node(hub.trust, node.node)
    with pytest.raises(AuthError, match="revoked"):
        await bundle_node(hub.trust, node.node)


async def test_the_old_origins_late_events_are_accepted_exactly_once(hub: HubStore) -> None:
    enrollment = await hub.trust.enroll(await hub.trust.create_enroll_token(A, None))
    node = await hub.trust.authenticate(enrollment.credential)
    chain = Chain(node.node, hub.now_ms())
    first = chain.create(A)
    assert (await hub.ingest.accept(node, chain.events))[0] == 1  # synced before it died
    chain.edit(first.dossier, {node.node: 1}, address="Thôn B")  # on its disk only
    chain.create(A, "Lò Văn Cường")
    await replace_node(hub.trust, node.node)
    with pytest.raises(AuthError):  # the live path: the old credential is refused
        await hub.trust.authenticate(enrollment.credential)
    sender = await bundle_node(hub.trust, node.node)
    assert sender == node
    assert await hub.ingest.accept(sender, chain.events) == (3, [])
    before = await event_ids(hub)
    assert before.count((node.node, 2)) == 1 and (node.node, 3) in before
    # the same bundle again, or its events once more by any path: nothing added
    assert await hub.ingest.accept(await bundle_node(hub.trust, node.node), chain.events) \
        == (3, [])
    assert await event_ids(hub) == before
    state = await hub.log.load_state(first.dossier)
    assert state is not None and (state.header or {}).get("commune") == A


async def test_a_bundle_certificate_must_be_the_nodes_and_revoked_only_by_the_replacement(
        hub: HubStore) -> None:
    node = await enrolled(hub, A)
    await hub.trust.record_certificate(node.node, "0a", hub.now_ms() + 10**9)
    await hub.trust.record_certificate(node.node, "0b", hub.now_ms() + 10**9)
    await hub.trust.certificate_node(node.node, "0b")  # first use of 0b supersedes 0a
    await replace_node(hub.trust, node.node)
    assert await bundle_node(hub.trust, node.node, "0b") == node
    with pytest.raises(AuthError, match="superseded"):
        await bundle_node(hub.trust, node.node, "0a")
    with pytest.raises(AuthError, match="not one the hub issued"):
        await bundle_node(hub.trust, node.node, "ff")
