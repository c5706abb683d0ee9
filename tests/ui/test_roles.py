"""Roles: clerks receive and process, leaders also approve, resolve conflicts and read statistics,
admins manage accounts. The same table guards the pages and the JSON API (403 with a reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edge_node.roles import PERMITS, ROLES, may
from tests.harness import PASSWORD, Api, EdgeHandle, Net
from tests.ui.conftest import Staff
from tests.ui.seed import create, make_conflict, move


async def api_as(edge: EdgeHandle, username: str) -> Api:
    api = Api(edge.api.http, edge.api.base)
    await api.login(username, PASSWORD)
    return api


def test_the_permission_table() -> None:
    assert set(ROLES) == {"clerk", "leader", "admin"}
    for action in ("intake", "edit", "transition", "comment", "attach"):
        assert may("clerk", action) and may("leader", action) and not may("admin", action)
    for action in ("approve", "resolve", "amend", "statistics"):
        assert may("leader", action) and not may("clerk", action) and not may("admin", action)
    assert PERMITS["users"] == {"admin"}
    assert not may("clerk", "no-such-action")


@pytest.mark.parametrize(("user", "allowed"), [("clerk1", False), ("admin1", False),
                                               ("leader1", True)])
async def test_api_only_a_leader_approves(edge: EdgeHandle, user: str, allowed: bool) -> None:
    d = await move(edge, await create(edge, 1), "processing")
    api = await api_as(edge, user)
    status, body = await api.post(f"/api/dossiers/{d['id']}/transition",
                                  {"to": "resolved", "base": d["version"]})
    if allowed:
        assert status == 200 and body["status"] == "resolved", body
    else:
        assert status == 403, body
        assert body["error"] == "forbidden" and "leader" in body["message"], body
        _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
        assert now["status"] == "processing"


async def test_api_only_a_leader_amends_a_returned_dossier_and_the_reason_is_kept(
        net: Net, edge: EdgeHandle) -> None:
    d = await move(edge, await create(edge, 3), "processing", "resolved", "returned")
    url = f"/api/dossiers/{d['id']}"
    change: dict[str, Any] = {"set": {"applicant.address": "Thôn Mới"}, "base": d["version"]}
    clerk, leader = await api_as(edge, "clerk1"), await api_as(edge, "leader1")
    status, body = await clerk.patch(url, change)
    assert status == 422 and body["field"] == "reason", body
    status, body = await leader.patch(url, change)  # a leader too must say why
    assert status == 422 and body["field"] == "reason", body
    status, body = await clerk.patch(url, {**change, "reason": "Sai địa chỉ"})
    assert status == 403 and body["error"] == "forbidden", body
    status, body = await leader.patch(url, {**change, "reason": "Công dân báo sai địa chỉ"})
    assert status == 200 and body["applicant"]["address"] == "Thôn Mới", body
    assert body["history"][-1]["reason"] == "Công dân báo sai địa chỉ"
    assert body["status"] == "returned"
    await edge.sync()  # the province reads the same reason
    assert net.hub is not None
    _, at_hub = await net.hub.api.get(url)
    assert at_hub["history"][-1]["reason"] == "Công dân báo sai địa chỉ"


async def test_api_only_a_leader_resolves_conflicts(net: Net, edge: EdgeHandle) -> None:
    view = await make_conflict(net, edge, await create(edge, 2))
    body: dict[str, Any] = {"field": "applicant.address", "value": "Thôn Nà Mạ, xã Côn Lôn",
                            "base": view["version"]}
    for user in ("clerk1", "admin1"):
        status, answer = await (await api_as(edge, user)).post(
            f"/api/dossiers/{view['id']}/resolve", body)
        assert status == 403 and answer["error"] == "forbidden", answer
    status, answer = await (await api_as(edge, "leader1")).post(
        f"/api/dossiers/{view['id']}/resolve", body)
    assert status == 200 and answer["conflicts"] == [], answer


async def test_api_clerk_work_is_refused_to_an_admin(edge: EdgeHandle) -> None:
    d = await create(edge, 3)
    admin = await api_as(edge, "admin1")
    status, body = await admin.post("/api/dossiers", {"procedure_code": "1.001193"})
    assert status == 403 and body["error"] == "forbidden"
    status, body = await admin.post(f"/api/dossiers/{d['id']}/transition",
                                    {"to": "processing", "base": d["version"]})
    assert status == 403
    status, body = await admin.patch(f"/api/dossiers/{d['id']}",
                                     {"set": {"applicant.phone": "0987654321"}})
    assert status == 403
    status, body = await admin.get(f"/api/dossiers/{d['id']}")
    assert status == 200  # reading needs only a login
    clerk = await api_as(edge, "clerk1")
    status, body = await clerk.post(f"/api/dossiers/{d['id']}/transition",
                                    {"to": "processing", "base": d["version"]})
    assert status == 200, body


async def test_pages_by_role(edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    expected = {
        "clerk1": {"/": 200, "/dossiers/new": 200, "/stats": 403, "/users": 403,
                   "/register": 200},
        "leader1": {"/": 200, "/dossiers/new": 200, "/stats": 200, "/users": 403,
                    "/register": 200},
        "admin1": {"/": 200, "/dossiers/new": 403, "/stats": 403, "/users": 200,
                   "/register": 403},
    }
    for user, pages in expected.items():
        person = staff()
        await person.login(user)
        for path, status in pages.items():
            page = await person.get(path)
            assert page.status == status, (user, path)
            if status == 403:
                assert "Bạn không có quyền" in page.text
        nav = (await person.get("/")).text.split('class="mainnav"')[1].split("</nav>")[0]
        assert ('href="/users"' in nav) == (user == "admin1")
        assert ('href="/stats"' in nav) == (user == "leader1")
        assert ('href="/register"' in nav) == (user != "admin1")
        assert ('href="/dossiers/new"' in nav) == (user != "admin1")


async def test_page_a_clerk_cannot_approve_or_resolve(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await move(edge, await create(edge, 4), "processing")
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get(f"/dossiers/{d['id']}")
    assert 'value="resolved" class="move move-resolved" disabled' in page.text
    page = await clerk.post(f"/dossiers/{d['id']}/transition",
                            {"to": "resolved", "base": d["version"]})
    assert page.status == 403
    conflicted = await make_conflict(net, edge, await create(edge, 5))
    page = await clerk.get(f"/dossiers/{conflicted['id']}")
    page = await clerk.post(f"/dossiers/{conflicted['id']}/resolve", {
        "field": "applicant.address", "value_json": '"X"', "base": conflicted["version"]})
    assert page.status == 403
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["status"] == "processing"
