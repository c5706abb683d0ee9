"""The edge node's JSON API (CONTRACT §7) over a real HTTP server and a real SQLite file."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from edge_node.app import open_accounts
from protocol.calendar import local
from protocol.errors import TransportError
from tests.harness import PASSWORD, EdgeHandle, Net, birth

COMMUNE = "02245"
SYNC_KEYS = {"state", "pending_events", "pending_blobs", "last_success_at", "last_error",
             "clock_offset_ms"}


@pytest.fixture
async def edge(net: Net) -> EdgeHandle:
    """One enrolled edge node with the clerk logged in."""
    return await net.add_edge(COMMUNE, "Xã Côn Lôn")


def citizen(i: int) -> str:
    """A valid 12-digit citizen ID (province 008, born 1990), distinct per `i`."""
    return f"0080900{i:05d}"


async def count_dossiers(edge: EdgeHandle) -> int:
    status, body = await edge.api.get("/api/dossiers?limit=10000")
    assert status == 200, body
    return len(body["items"])


async def pending(edge: EdgeHandle) -> int:
    status, body = await edge.api.get("/api/sync")
    assert status == 200, body
    return int(body["pending_events"])


async def create(edge: EdgeHandle, **kw: Any) -> dict[str, Any]:
    status, body = await edge.api.post("/api/dossiers", birth(**kw))
    assert status == 201, body
    return body


async def raw_post(edge: EdgeHandle, path: str, data: bytes) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {edge.api.token}", "Content-Type": "application/json"}
    async with edge.api.http.post(edge.api.base + path, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


# -- authentication -----------------------------------------------------------------------------


async def test_every_api_route_refuses_a_request_without_a_valid_token(edge: EdgeHandle) -> None:
    d = await create(edge)
    did = d["id"]
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/api/dossiers", None),
        ("POST", "/api/dossiers", birth()),
        ("GET", f"/api/dossiers/{did}", None),
        ("PATCH", f"/api/dossiers/{did}", {"set": {"applicant.address": "X"}}),
        ("POST", f"/api/dossiers/{did}/transition", {"to": "processing"}),
        ("POST", f"/api/dossiers/{did}/resolve", {"field": "applicant.address", "value": "X"}),
        ("POST", f"/api/dossiers/{did}/comments", {"text": "hello"}),
        ("GET", "/api/sync", None),
        ("POST", "/api/sync", None),
        ("GET", "/api/procedures", None),
        ("GET", "/api/statuses", None),
        ("GET", "/api/holidays", None),
        ("GET", "/api/me", None),
        ("POST", "/api/password", {"old": PASSWORD, "new": "another-password-2"}),
    ]
    before = await count_dossiers(edge)
    for token in ("", "not-a-real-token"):
        for method, path, body in routes:
            status, answer = await edge.api.call(method, path, json=body, token=token)
            assert status == 401, (method, path, token, status, answer)
            assert answer["error"] == "unauthorized" and answer["message"], answer
    # nothing was written by any refused request, and the clerk's password still works
    assert await count_dossiers(edge) == before
    _, fresh = await edge.api.post("/api/login", {"username": "clerk", "password": PASSWORD})
    assert fresh["token"]
    _, _d = await edge.api.get(f"/api/dossiers/{did}")
    assert _d["applicant"]["address"] == d["applicant"]["address"]
    assert _d["status"] == "accepted" and _d["comments"] == []


async def test_login_and_its_throttling(edge: EdgeHandle) -> None:
    status, body = await edge.api.post("/api/login", {"username": "clerk", "password": "wrong-pw-1"},
                                       token="")
    assert status == 401 and body["message"]
    status, body = await edge.api.post("/api/login", {"username": "nobody", "password": PASSWORD},
                                       token="")
    assert status == 401
    status, body = await edge.api.post("/api/login", {"username": "clerk"}, token="")
    assert status == 422
    status, body = await edge.api.post("/api/login", {"username": "clerk", "password": PASSWORD},
                                       token="")
    assert status == 200 and isinstance(body["token"], str) and len(body["token"]) >= 32
    status, me = await edge.api.get("/api/me", token=body["token"])
    assert status == 200 and me["username"] == "clerk"

    accounts = await open_accounts(edge.data)
    try:
        await accounts.add_user("leader1", PASSWORD, "leader")
    finally:
        await accounts.conn.close()
    for _ in range(5):
        status, _ = await edge.api.post("/api/login", {"username": "clerk", "password": "nope-1234"},
                                        token="")
        assert status == 401
    # the right password is refused now: the username is locked for a while
    status, body = await edge.api.post("/api/login", {"username": "clerk", "password": PASSWORD},
                                       token="")
    assert status == 401, body
    assert "too many" in body["message"]
    # throttling is per username: another user still logs in, and live sessions keep working
    status, body = await edge.api.post("/api/login", {"username": "leader1", "password": PASSWORD},
                                       token="")
    assert status == 200, body
    status, _ = await edge.api.get("/api/me")
    assert status == 200


# -- create -------------------------------------------------------------------------------------


async def test_create_returns_the_full_dossier(edge: EdgeHandle) -> None:
    status, d = await edge.api.post("/api/dossiers", birth())
    assert status == 201, d
    day = local(edge.store.now_ms()).strftime("%y%m%d")
    assert re.fullmatch(rf"{re.escape(edge.config.agency)}-\d{{6}}-\d{{4}}", d["code"]), d["code"]
    assert d["code"] == f"{edge.config.agency}-{day}-0001"
    assert str(uuid.UUID(d["id"])) == d["id"]
    assert d["status"] == "accepted"
    assert d["procedure_code"] == "1.001193"
    assert d["commune"] == COMMUNE
    assert d["applicant"]["full_name"] == "Nguyễn Văn An"
    assert d["fields"]["child_full_name"] == "Nguyễn Văn Bình"
    assert d["due_at"] and d["received_at"]
    assert datetime.fromisoformat(d["due_at"]) > datetime.fromisoformat(d["received_at"])
    assert isinstance(d["version"], str) and d["version"]
    assert d["conflicts"] == []
    assert d["attachments"] == []
    assert len(d["history"]) == 1
    assert d["history"][0]["kind"] == "create" and d["history"][0]["actor"] == "clerk"
    assert d["history"][0]["where"] == "commune"
    assert d["next_statuses"] == ["processing", "supplement_requested", "withdrawn"]
    status, second = await edge.api.post("/api/dossiers", birth("Trần Thị Hoa", citizen(2)))
    assert status == 201
    assert second["code"] == f"{edge.config.agency}-{day}-0002"
    assert second["id"] != d["id"]
    status, again = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert status == 200
    assert {k: again[k] for k in ("id", "code", "status", "version", "due_at")} == \
        {k: d[k] for k in ("id", "code", "status", "version", "due_at")}
    assert await pending(edge) == 2


def _without(key: str) -> dict[str, Any]:
    body = birth()
    del body["fields"][key]
    return body


def _applicant(**changes: Any) -> dict[str, Any]:
    body = birth()
    body["applicant"].update(changes)
    return body


INVALID: list[tuple[str, Any, str | None]] = [
    ("unknown procedure", {**birth(), "procedure_code": "9.999999"}, "procedure_code"),
    ("missing procedure", {k: v for k, v in birth().items() if k != "procedure_code"},
     "procedure_code"),
    ("missing applicant", {k: v for k, v in birth().items() if k != "applicant"}, "applicant"),
    ("applicant not an object", {**birth(), "applicant": "Nguyễn Văn An"}, "applicant"),
    ("applicant without name", _applicant(full_name=""), "applicant.full_name"),
    ("citizen id of 11 digits", _applicant(citizen_id="00809000123"), "applicant.citizen_id"),
    ("citizen id with letters", _applicant(citizen_id="00809000123X"), "applicant.citizen_id"),
    ("citizen id with bad province code", _applicant(citizen_id="097090001234"),
     "applicant.citizen_id"),
    ("citizen id with province 000", _applicant(citizen_id="000090001234"),
     "applicant.citizen_id"),
    ("citizen id born in the future", _applicant(citizen_id="008290001234"),
     "applicant.citizen_id"),
    ("unknown applicant key", _applicant(email="a@b.vn"), "applicant"),
    ("bad phone", _applicant(phone="12345"), "applicant.phone"),
    ("phone with letters", _applicant(phone="09123abc78"), "applicant.phone"),
    ("number as applicant name", _applicant(full_name=12345), "applicant.full_name"),
    ("body a list", [birth()], None),
    ("body a string", "hello", None),
    ("body null", None, None),
    ("unknown form field", birth(favourite_colour="blue"), "fields.favourite_colour"),
    ("missing required field", _without("child_full_name"), "fields.child_full_name"),
    ("number where text expected", birth(child_full_name=12345), "fields.child_full_name"),
    ("bad choice", birth(child_sex="X"), "fields.child_sex"),
    ("birth date in the future", birth(child_birth_date="2999-01-01"), "fields.child_birth_date"),
    ("birth date not a date", birth(child_birth_date="20/11/2026"), "fields.child_birth_date"),
    ("fields not an object", {**birth(), "fields": ["a"]}, "fields"),
    ("unknown channel", {**birth(), "channel": "pigeon"}, "channel"),
]


async def test_invalid_create_is_refused_and_stores_nothing(edge: EdgeHandle) -> None:
    await create(edge)
    for case, body, field in INVALID:
        before, pending_before = await count_dossiers(edge), await pending(edge)
        status, answer = await edge.api.post("/api/dossiers", body)
        assert status == 422, (case, status, answer)
        assert answer["error"] == "invalid" and answer["message"], (case, answer)
        if field is not None:
            assert answer["field"] == field, (case, answer)
        assert await count_dossiers(edge) == before, case
        assert await pending(edge) == pending_before, case
    # the refused requests did not use up receipt codes either
    after = await create(edge, name="Trần Văn Sau", citizen_id=citizen(99))
    assert after["code"].endswith("-0002"), after["code"]


async def test_malformed_json_is_400_and_stores_nothing(edge: EdgeHandle) -> None:
    for raw in (b"{not json", b"\xff\xfe\x00", b'{"procedure_code": '):
        status, answer = await raw_post(edge, "/api/dossiers", raw)
        assert status == 400, (raw, answer)
        assert answer["message"]
    assert await count_dossiers(edge) == 0
    assert await pending(edge) == 0
    d = await create(edge)
    assert d["code"].endswith("-0001")


# -- listing ------------------------------------------------------------------------------------


async def test_paging_visits_every_dossier_exactly_once_in_a_stable_order(edge: EdgeHandle) -> None:
    created = [await create(edge, name=f"Người Số {i}", citizen_id=citizen(i)) for i in range(25)]
    status, whole = await edge.api.get("/api/dossiers?limit=100")
    assert status == 200 and whole["next"] is None
    order = [d["id"] for d in whole["items"]]
    assert sorted(order) == sorted(d["id"] for d in created)
    seen: list[str] = []
    sizes = []
    after: str | None = None
    for _ in range(10):
        path = "/api/dossiers?limit=10" + (f"&after={after}" if after else "")
        status, page = await edge.api.get(path)
        assert status == 200, page
        sizes.append(len(page["items"]))
        seen += [d["id"] for d in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == order
    assert len(set(seen)) == 25
    # newest first
    received = [d["received_at"] for d in whole["items"]]
    assert received == sorted(received, reverse=True)
    # listing items are summaries: no history
    assert "history" not in whole["items"][0]


async def test_limit_bounds_and_bad_cursor(edge: EdgeHandle) -> None:
    await create(edge)
    for limit in ("0", "10001", "-1", "ten"):
        status, answer = await edge.api.get(f"/api/dossiers?limit={limit}")
        assert status == 422, (limit, answer)
        assert answer["field"] == "limit", answer
    status, page = await edge.api.get("/api/dossiers?limit=10000")
    assert status == 200 and len(page["items"]) == 1 and page["next"] is None
    status, page = await edge.api.get("/api/dossiers?limit=1")
    assert status == 200 and len(page["items"]) == 1 and page["next"] is None
    status, answer = await edge.api.get("/api/dossiers?after=garbage")
    assert status == 422, answer


async def test_status_filter(edge: EdgeHandle) -> None:
    a = await create(edge, name="Lý Thị Mai", citizen_id=citizen(1))
    await create(edge, name="Đặng Văn Tú", citizen_id=citizen(2))
    status, moved = await edge.api.post(f"/api/dossiers/{a['id']}/transition",
                                        {"to": "processing", "base": a["version"]})
    assert status == 200, moved
    _, page = await edge.api.get("/api/dossiers?status=processing")
    assert [d["id"] for d in page["items"]] == [a["id"]]
    _, page = await edge.api.get("/api/dossiers?status=accepted")
    assert len(page["items"]) == 1 and page["items"][0]["id"] != a["id"]
    _, page = await edge.api.get("/api/dossiers?status=returned")
    assert page["items"] == []
    status, answer = await edge.api.get("/api/dossiers?status=bogus")
    assert status == 422 and answer["field"] == "status"


async def test_search_by_code_prefix_citizen_id_and_name_without_diacritics(
        edge: EdgeHandle) -> None:
    names = ["Nguyễn Văn An", "Nguyễn Văn Bảo", "Trần Thị Hoa", "Đặng Văn Tú", "Nguyễn Thị Lan"]
    # each child named after its applicant: a name search also finds the child's (issue 18.8)
    made = [await create(edge, name=n, citizen_id=citizen(i), child_full_name=f"Con {n}")
            for i, n in enumerate(names)]
    made += [await create(edge, name=f"Lò Văn {i}", citizen_id=citizen(10 + i),
                          child_full_name=f"Con Lò Văn {i}") for i in range(7)]
    by_name = {d["applicant"]["full_name"]: d for d in made}

    async def q(term: str) -> set[str]:
        status, page = await edge.api.get(f"/api/dossiers?limit=100&q={term}")
        assert status == 200, page
        return {d["applicant"]["full_name"] for d in page["items"]}

    # whole code, and a prefix shared by codes 0001..0009 only
    code = by_name["Trần Thị Hoa"]["code"]
    assert await q(code) == {"Trần Thị Hoa"}
    prefix = code[:-1]  # …-000
    assert len(await q(prefix)) == 9
    assert await q(made[-1]["code"]) == {made[-1]["applicant"]["full_name"]}
    # citizen ID, exactly
    assert await q(citizen(3)) == {"Đặng Văn Tú"}
    # name without diacritics, any case
    assert await q("nguyen van") == {"Nguyễn Văn An", "Nguyễn Văn Bảo"}
    assert await q("NGUYEN") == {"Nguyễn Văn An", "Nguyễn Văn Bảo", "Nguyễn Thị Lan"}
    assert await q("dang van") == {"Đặng Văn Tú"}
    assert await q("Nguyễn Thị") == {"Nguyễn Thị Lan"}
    assert await q("khong co ai") == set()


async def test_search_treats_sql_wildcards_literally(edge: EdgeHandle) -> None:
    """A clerk typing "%" or "_" searches for that character, not for everything."""
    await create(edge, name="Nguyễn Văn An", citizen_id=citizen(1))
    await create(edge, name="Trần Thị Hoa", citizen_id=citizen(2))
    for term in ("%25", "_", "%25%25"):  # %25 is "%" in the query string
        status, page = await edge.api.get(f"/api/dossiers?q={term}")
        assert status == 200, page
        assert page["items"] == [], (term, [d["code"] for d in page["items"]])


# -- one dossier --------------------------------------------------------------------------------


async def test_unknown_or_malformed_id_is_404(edge: EdgeHandle) -> None:
    await create(edge)
    for dossier_id in (str(uuid.UUID(int=12345)), str(uuid.uuid4()), "not-a-uuid", "1234"):
        status, answer = await edge.api.get(f"/api/dossiers/{dossier_id}")
        assert status == 404, (dossier_id, answer)
        assert answer["error"] == "not_found"
        status, answer = await edge.api.patch(f"/api/dossiers/{dossier_id}",
                                              {"set": {"applicant.address": "X"}})
        assert status == 404, (dossier_id, answer)
        status, answer = await edge.api.post(f"/api/dossiers/{dossier_id}/transition",
                                             {"to": "processing"})
        assert status == 404, (dossier_id, answer)
    assert await pending(edge) == 1


async def test_patch_changes_a_field_and_the_version(edge: EdgeHandle) -> None:
    d = await create(edge)
    status, e = await edge.api.patch(f"/api/dossiers/{d['id']}",
                                     {"set": {"applicant.address": "Thôn Khuổi Phầy",
                                              "fields.child_home_town": "Na Hang"},
                                      "base": d["version"]})
    assert status == 200, e
    assert e["applicant"]["address"] == "Thôn Khuổi Phầy"
    assert e["fields"]["child_home_town"] == "Na Hang"
    assert e["version"] != d["version"]
    assert e["conflicts"] == []
    assert [h["kind"] for h in e["history"]] == ["create", "set"]
    # another field, written from the old version, merges without a conflict
    status, f = await edge.api.patch(f"/api/dossiers/{d['id']}",
                                     {"set": {"applicant.phone": "0987654321"},
                                      "base": d["version"]})
    assert status == 200, f
    assert f["conflicts"] == []
    assert f["applicant"]["address"] == "Thôn Khuổi Phầy"
    assert f["applicant"]["phone"] == "0987654321"


async def test_patch_with_a_stale_base_on_the_same_field_makes_a_visible_conflict(
        edge: EdgeHandle) -> None:
    d = await create(edge)
    url = f"/api/dossiers/{d['id']}"
    status, first = await edge.api.patch(url, {"set": {"applicant.address": "Thôn A"},
                                               "base": d["version"]})
    assert status == 200, first
    status, second = await edge.api.patch(url, {"set": {"applicant.address": "Thôn B"},
                                                "base": d["version"]})
    assert status == 200, second
    assert [c["field"] for c in second["conflicts"]] == ["applicant.address"]
    values = {v["value"] for v in second["conflicts"][0]["values"]}
    assert values == {"Thôn A", "Thôn B"}
    assert all(v["actor"] == "clerk" for v in second["conflicts"][0]["values"])
    # a field conflict holds up only the move that issues the result from the data
    assert second["next_statuses"] == ["processing", "supplement_requested", "withdrawn"]
    assert second["waiting_statuses"] == {}
    # visible on reload and in the conflicts listing
    _, reloaded = await edge.api.get(url)
    assert [c["field"] for c in reloaded["conflicts"]] == ["applicant.address"]
    _, page = await edge.api.get("/api/dossiers?conflicts=1")
    assert [x["id"] for x in page["items"]] == [d["id"]]
    # a resolve that has seen both values settles it
    status, resolved = await edge.api.post(f"{url}/resolve", {"field": "applicant.address",
                                                              "value": "Thôn B",
                                                              "base": reloaded["version"]})
    assert status == 200, resolved
    assert resolved["conflicts"] == []
    assert resolved["applicant"]["address"] == "Thôn B"
    assert resolved["history"][-1]["kind"] == "resolve"


async def test_patch_with_a_base_of_unknown_events_is_409(edge: EdgeHandle) -> None:
    d = await create(edge)
    node = edge.config.node
    url = f"/api/dossiers/{d['id']}"
    status, answer = await edge.api.patch(url, {"set": {"applicant.address": "X"},
                                                "base": f"{node}:99"})
    assert status == 409, answer
    status, answer = await edge.api.patch(url, {"set": {"applicant.address": "X"},
                                                "base": f"{d['version']},hub:3"})
    assert status == 409, answer
    _, now = await edge.api.get(url)
    assert now["version"] == d["version"]
    assert now["applicant"]["address"] == d["applicant"]["address"]


INVALID_PATCH: list[tuple[dict[str, Any], str]] = [
    ({"set": {"status": "processing"}}, "status"),
    ({"set": {"due_at": 0}}, "due_at"),
    ({"set": {"code": "X"}}, "code"),
    ({"set": {}}, "set"),
    ({"set": "applicant.address"}, "set"),
    ({"set": {"applicant.citizen_id": "123"}}, "applicant.citizen_id"),
    ({"set": {"applicant.phone": "12"}}, "applicant.phone"),
    ({"set": {"fields.unknown_thing": "x"}}, "fields.unknown_thing"),
    ({"set": {"fields.child_full_name": 7}}, "fields.child_full_name"),
    ({"set": {"applicant.address": "X"}, "base": "not a version"}, "base"),
]


async def test_invalid_patch_is_422_and_changes_nothing(edge: EdgeHandle) -> None:
    d = await create(edge)
    for body, field in INVALID_PATCH:
        status, answer = await edge.api.patch(f"/api/dossiers/{d['id']}", body)
        assert status == 422, (body, answer)
        assert answer["field"] == field, (body, answer)
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["version"] == d["version"] and now["status"] == "accepted"
    assert now["applicant"] == d["applicant"] and now["fields"] == d["fields"]
    assert await pending(edge) == 1


async def test_transitions_follow_the_lifecycle(edge: EdgeHandle) -> None:
    d = await create(edge)
    url = f"/api/dossiers/{d['id']}/transition"
    status, answer = await edge.api.post(url, {"to": "returned", "base": d["version"]})
    assert status == 409, answer
    status, answer = await edge.api.post(url, {"to": "flying", "base": d["version"]})
    assert status == 422 and answer["field"] == "to", answer
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["status"] == "accepted" and now["version"] == d["version"]

    current = d
    for target in ("processing", "resolved", "returned"):
        status, current = await edge.api.post(url, {"to": target, "base": current["version"],
                                                    "note": f"to {target}"})
        assert status == 200, current
        assert current["status"] == target
    assert current["next_statuses"] == []
    assert [h["kind"] for h in current["history"]] == ["create"] + ["transition"] * 3
    assert current["history"][-1]["from"] == "resolved"
    assert current["history"][-1]["note"] == "to returned"
    # a final status has no way out
    status, _ = await edge.api.post(url, {"to": "processing", "base": current["version"]})
    assert status == 409


async def test_transition_based_on_a_stale_status_is_409(edge: EdgeHandle) -> None:
    d = await create(edge)
    url = f"/api/dossiers/{d['id']}/transition"
    status, _ = await edge.api.post(url, {"to": "processing", "base": d["version"]})
    assert status == 200
    # someone who still sees `accepted` asks to withdraw: they must reload first
    status, answer = await edge.api.post(url, {"to": "withdrawn", "base": d["version"]})
    assert status == 409, answer
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["status"] == "processing"
    # resolving a field that has no conflict is refused too
    status, answer = await edge.api.post(f"/api/dossiers/{d['id']}/resolve",
                                         {"field": "applicant.address", "value": "X",
                                          "base": now["version"]})
    assert status == 409, answer
    status, answer = await edge.api.post(f"/api/dossiers/{d['id']}/resolve",
                                         {"field": "applicant.address", "base": now["version"]})
    assert status == 422, answer
    assert await pending(edge) == 2


# -- sync and reference data --------------------------------------------------------------------


async def test_sync_status_shape_post_sync_and_procedures(edge: EdgeHandle) -> None:
    status, before = await edge.api.get("/api/sync")
    assert status == 200
    assert SYNC_KEYS <= set(before), before
    assert before["state"] in ("online", "offline", "syncing")
    assert before["pending_events"] == 0 and before["pending_blobs"] == 0
    assert before["last_success_at"] is None
    assert isinstance(before["clock_offset_ms"], int)
    await create(edge)
    await create(edge, name="Trần Thị Hoa", citizen_id=citizen(5))
    _, mid = await edge.api.get("/api/sync")
    assert mid["pending_events"] == 2
    status, answer = await edge.api.post("/api/sync")
    assert status == 202, answer
    await edge.sync()
    _, after = await edge.api.get("/api/sync")
    assert after["pending_events"] == 0
    assert after["state"] == "online"
    assert after["last_error"] is None
    assert after["last_success_at"] is not None
    datetime.fromisoformat(after["last_success_at"])

    # the link goes down: the state says so and the new dossier waits
    await create(edge, name="Lý Thị Mai", citizen_id=citizen(6))
    edge.cut()
    with pytest.raises(TransportError):
        await edge.sync()
    _, down = await edge.api.get("/api/sync")
    assert down["state"] == "offline"
    assert down["last_error"]
    assert down["pending_events"] == 1
    assert down["last_success_at"] == after["last_success_at"]

    status, answer = await edge.api.get("/api/procedures")
    assert status == 200
    codes = {p["code"]: p for p in answer["items"]}
    assert "1.001193" in codes
    names = {f["name"] for f in codes["1.001193"]["fields"]}
    assert {"child_full_name", "child_birth_date", "child_sex"} <= names
