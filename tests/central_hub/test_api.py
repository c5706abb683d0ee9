"""The hub over real HTTP: health, metrics, nodes, enrollment, the sync endpoint's refusals, and
operator writes to dossiers (CONTRACT §7)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from protocol import PROTOCOL_VERSION, codec
from protocol.events import uuid7, uuid_bytes
from protocol.messages import decode_error
from tests.harness import Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

NODE_KEYS = {"node", "commune", "last_seen_at", "last_success_at", "pending_events",
             "oldest_pending_age_s", "clock_offset_ms", "conflicts_open", "health"}


async def raw(net: Net, method: str, path: str, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    assert net.hub is not None and net.http is not None
    async with net.http.request(method, net.hub.url + path, data=data,
                                headers=headers or {}) as resp:
        return resp.status, await resp.read()


async def hub_counts(net: Net) -> tuple[int, int, int]:
    assert net.hub is not None
    counts = []
    for sql in ("SELECT count(*) FROM events", "SELECT count(*) FROM quarantine",
                "SELECT count(*) FROM dossiers"):
        async with net.hub.store.reader.execute(sql) as cur:
            counts.append((await cur.fetchone())[0])
    return counts[0], counts[1], counts[2]


async def credential(net: Net, commune: str = "02245") -> tuple[str, str]:
    """Enroll a node over HTTP; return (node, credential)."""
    assert net.hub is not None
    token = await net.hub.store.trust.create_enroll_token(commune, None)
    status, body = await net.hub.api.post("/v1/enroll", {"token": token}, token="")
    assert status == 200, body
    return body["node"], body["credential"]


async def test_healthz_needs_no_login(net: Net) -> None:
    assert net.hub is not None
    status, body = await net.hub.api.get("/healthz", token="")
    assert status == 200 and body["ok"] is True


async def test_operator_api_needs_a_token(net: Net) -> None:
    assert net.hub is not None
    for method, path in (("GET", "/api/nodes"), ("GET", "/api/dossiers"),
                         ("GET", f"/api/dossiers/{uuid7(0, bytes(10))}"),
                         ("PATCH", f"/api/dossiers/{uuid7(0, bytes(10))}")):
        for token in ("", "forged"):
            status, body = await net.hub.api.call(method, path, token=token)
            assert status == 401, (method, path, body)
    status, _ = await net.hub.api.post("/api/login", {"username": "op", "password": "wrong-pw-1"},
                                       token="")
    assert status == 401


async def test_nodes_and_metrics_after_a_sync(net: Net) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    for i in range(2):
        status, _ = await edge.api.post("/api/dossiers", birth(f"Nguyễn Văn {i}"))
        assert status == 201
    await edge.sync()
    status, body = await net.hub.api.get("/api/nodes")
    assert status == 200, body
    [item] = body["items"]
    assert NODE_KEYS <= set(item), sorted(NODE_KEYS - set(item))
    assert item["node"] == edge.config.node and item["commune"] == "02245"
    assert item["health"] in ("ok", "warning", "critical")
    assert item["last_seen_at"] and item["last_success_at"]
    assert item["conflicts_open"] == 0
    assert isinstance(item["pending_events"], int)
    assert isinstance(item["oldest_pending_age_s"], int)
    assert isinstance(item["clock_offset_ms"], int)
    assert not any("never synced" in r for r in item.get("reasons", []))

    status, text = await net.hub.api.get("/metrics", token="")
    assert status == 200
    assert isinstance(text, str)
    line = next(ln for ln in text.splitlines()
                if ln.startswith("commune_sync_node_pending_events{"))
    assert f'node="{edge.config.node}"' in line and 'commune="02245"' in line
    assert float(line.rsplit(" ", 1)[1]) == item["pending_events"]
    assert "# TYPE commune_sync_node_pending_events gauge" in text
    requests = next(ln for ln in text.splitlines() if ln.startswith("commune_sync_sync_requests"))
    assert float(requests.split()[-1]) >= 1


async def test_a_node_that_never_synced_is_critical_with_a_reason(net: Net) -> None:
    assert net.hub is not None
    fresh = await net.add_edge("02227", "Xã Thượng Lâm")
    synced = await net.add_edge("02245", "Xã Côn Lôn")
    await synced.sync()
    _, body = await net.hub.api.get("/api/nodes")
    by_node = {i["node"]: i for i in body["items"]}
    item = by_node[fresh.config.node]
    assert item["health"] == "critical"
    assert item["last_seen_at"] is None and item["last_success_at"] is None
    assert item["reasons"] and any("never" in r for r in item["reasons"]), item["reasons"]
    assert not any("never" in r for r in by_node[synced.config.node]["reasons"])
    _, text = await net.hub.api.get("/metrics", token="")
    health = [ln for ln in text.splitlines()
              if ln.startswith("commune_sync_node_health{") and fresh.config.node in ln]
    assert health and float(health[0].rsplit(" ", 1)[1]) == 2


async def test_an_enrollment_token_works_once(net: Net) -> None:
    assert net.hub is not None
    token = await net.hub.store.trust.create_enroll_token("02245", "Xã Côn Lôn")
    status, first = await net.hub.api.post("/v1/enroll", {"token": token}, token="")
    assert status == 200, first
    assert first["commune"] == "02245" and first["node"] and first["credential"]
    assert first["commune_name"] == "Xã Côn Lôn"
    status, second = await net.hub.api.post("/v1/enroll", {"token": token}, token="")
    assert status == 401, second
    status, _ = await net.hub.api.post("/v1/enroll", {"token": "made-up"}, token="")
    assert status == 401
    status, answer = await net.hub.api.post("/v1/enroll", {}, token="")
    assert status == 422 and answer["field"] == "token"
    _, nodes = await net.hub.api.get("/api/nodes")
    assert [n["node"] for n in nodes["items"]] == [first["node"]]


def sync_body(node: str, rows: list[list[Any]] | None = None) -> bytes:
    return codec.encode_body({
        "v": PROTOCOL_VERSION, "app": "test", "node": node,
        "ev": {"start": 1 if rows else 0, "prev": b"", "ev": rows or []},
        "cursor": 0, "want": 65536, "clock": int(time.time() * 1000), "stats": {}})


async def test_sync_refuses_a_missing_or_wrong_credential(net: Net) -> None:
    node, cred = await credential(net)
    body = sync_body(node)
    for headers in ({}, {"Authorization": "Bearer wrong-credential"},
                    {"Authorization": f"Bearer {cred}x"}, {"Authorization": cred}):
        status, payload = await raw(net, "POST", "/v1/sync", body, headers)
        assert status == 401, (headers, status)
        code, message = decode_error(payload)
        assert code == "unauthorized" and message
    # the right credential works
    status, _ = await raw(net, "POST", "/v1/sync", body, {"Authorization": f"Bearer {cred}"})
    assert status == 200


async def test_sync_with_another_nodes_id_is_refused(net: Net) -> None:
    node, cred = await credential(net)
    other, _ = await credential(net, "02227")
    status, _ = await raw(net, "POST", "/v1/sync", sync_body(other),
                          {"Authorization": f"Bearer {cred}"})
    assert status == 401
    assert node != other


async def test_sync_of_garbage_with_a_valid_credential_is_400_and_stores_nothing(
        net: Net) -> None:
    node, cred = await credential(net)
    headers = {"Authorization": f"Bearer {cred}"}
    before = await hub_counts(net)
    now = int(time.time() * 1000)
    dossier = uuid7(now, os.urandom(10))
    good_row = [now << 16, uuid_bytes(dossier), "clerk", "create", {
        "procedure": "1.001193", "commune": "02245", "code": f"{node}-261128-0001",
        "received_at": now, "channel": "counter", "status": "accepted", "due_at": now,
        "set": {"applicant.full_name": "Nguyễn Văn An"}}, {}]
    bad_row = [1, uuid_bytes(dossier), "clerk", "explode", {}, {}]
    bodies = {
        "random bytes": os.urandom(512),
        "empty": b"",
        "zstd of text": codec.compress(b"hello, hub"),
        "a list": codec.encode_body([1, 2, 3]),
        "a valid event then a bad one": sync_body(node, [good_row, bad_row]),
    }
    for name, body in bodies.items():
        status, payload = await raw(net, "POST", "/v1/sync", body, headers)
        assert status == 400, (name, status, payload[:200])
        _code, message = decode_error(payload)
        assert message, name
        assert await hub_counts(net) == before, name
    # the good event alone is accepted, so the refusal above was the bad one's doing
    status, _ = await raw(net, "POST", "/v1/sync", sync_body(node, [good_row]), headers)
    assert status == 200
    assert (await hub_counts(net))[0] == before[0] + 1


async def test_operator_writes_are_made_as_the_hub(net: Net) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    _, d = await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    api = net.hub.api
    url = f"/api/dossiers/{d['id']}"
    status, seen = await api.get(url)
    assert status == 200 and seen["code"] == d["code"]
    status, listing = await api.get("/api/dossiers?commune=02245")
    assert [x["id"] for x in listing["items"]] == [d["id"]]
    status, listing = await api.get("/api/dossiers?commune=02227")
    assert listing["items"] == []

    status, edited = await api.patch(url, {"set": {"fields.child_home_town": "Na Hang"},
                                           "base": seen["version"]})
    assert status == 200, edited
    last = edited["history"][-1]
    assert (last["kind"], last["where"], last["origin"], last["actor"]) == \
        ("set", "hub", "hub", "op")

    status, moved = await api.post(f"{url}/transition", {"to": "processing",
                                                         "base": edited["version"]})
    assert status == 200, moved
    assert moved["status"] == "processing"
    assert moved["history"][-1]["where"] == "hub"
    status, refused = await api.post(f"{url}/transition", {"to": "returned",
                                                           "base": moved["version"]})
    assert status == 409, refused

    # a conflict between the commune and the province, resolved at the hub
    base = moved["version"]
    await edge.sync()
    _, at_edge = await edge.api.get(url)
    assert at_edge["status"] == "processing"
    status, _ = await edge.api.patch(url, {"set": {"applicant.address": "Thôn Khuổi Phầy"},
                                           "base": at_edge["version"]})
    assert status == 200
    status, _ = await api.patch(url, {"set": {"applicant.address": "Thôn Nà Mọ"}, "base": base})
    assert status == 200
    await edge.sync()
    _, conflicted = await api.get(url)
    assert [c["field"] for c in conflicted["conflicts"]] == ["applicant.address"]
    wheres = {v["where"] for v in conflicted["conflicts"][0]["values"]}
    assert wheres == {"hub", "commune"}
    status, resolved = await api.post(f"{url}/resolve", {"field": "applicant.address",
                                                         "value": "Thôn Nà Mọ",
                                                         "base": conflicted["version"]})
    assert status == 200, resolved
    assert resolved["conflicts"] == []
    assert resolved["history"][-1]["kind"] == "resolve"
    assert resolved["history"][-1]["where"] == "hub"
    status, _again = await api.post(f"{url}/resolve", {"field": "applicant.address",
                                                      "value": "X", "base": resolved["version"]})
    assert status == 409
    await edge.sync()
    _, final = await edge.api.get(url)
    assert final["conflicts"] == [] and final["applicant"]["address"] == "Thôn Nà Mọ"
    assert final["fields"]["child_home_town"] == "Na Hang"


async def test_hub_dossier_errors(net: Net) -> None:
    assert net.hub is not None
    api = net.hub.api
    status, _ = await api.get(f"/api/dossiers/{uuid7(0, bytes(10))}")
    assert status == 404
    status, _ = await api.get("/api/dossiers/not-a-uuid")
    assert status == 404
    status, _ = await api.patch(f"/api/dossiers/{uuid7(0, bytes(10))}",
                                {"set": {"applicant.address": "X"}})
    assert status == 404
    status, answer = await api.get("/api/dossiers?limit=0")
    assert status == 422 and answer["field"] == "limit"
