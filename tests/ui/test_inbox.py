"""The desk's online inbox over HTTP (no browser): only dossiers filed online and still awaiting an
answer are in it; an answer needs the right role, a note where the form asks for one, and the
version the clerk saw; an answered dossier leaves the inbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from edge_node.ui.inbox import ANSWERS
from service.ui.i18n import load_catalogues
from tests.central_hub.test_portal import portals
from tests.harness import EdgeHandle, Net, birth
from tests.ui.conftest import Staff
from tests.ui.test_i18n import UI_DIRS


async def filed(net: Net, edge: EdgeHandle, n: int = 1) -> list[dict[str, Any]]:
    assert net.hub is not None
    key = await portals(net.hub).add(f"dvc{n}")
    out = []
    for i in range(n):
        status, made = await net.hub.api.post(
            "/api/submissions", {**birth(citizen_id=f"00809000{i:04d}"), "commune": "02245"},
            token=key)
        assert status == 201, made
        out.append(made)
    await edge.sync()
    return out


def base_of(text: str) -> str:
    match = re.search(r'name="base" value="([^"]*)"', text)
    assert match
    return match.group(1)


async def test_only_filings_awaiting_an_answer_are_listed(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    at_counter = await edge.api.post("/api/dossiers", birth(citizen_id="008090009999"))
    assert at_counter[0] == 201
    online = await filed(net, edge, 2)
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get("/")
    assert 'href="/inbox"' in page.text and 'data-key="i"' in page.text
    page = await clerk.get("/inbox")
    assert page.status == 200 and "(2)" in page.text
    assert all(f["code"] in page.text for f in online)
    assert at_counter[1]["code"] not in page.text
    assert page.text.index(online[0]["code"]) < page.text.index(online[1]["code"])  # oldest first
    page = await clerk.get(f"/inbox/{online[0]['id']}")
    await clerk.post(f"/inbox/{online[0]['id']}/accept", {"base": base_of(page.text)})
    assert clerk.last is not None and clerk.last.url.endswith(f"/dossiers/{online[0]['id']}?new=1")
    assert "Đã tiếp nhận hồ sơ" in clerk.last.text
    page = await clerk.get("/inbox")
    assert online[0]["code"] not in page.text and "(1)" in page.text
    # an answered filing's inbox page goes to the dossier; a counter dossier's too
    page = await clerk.get(f"/inbox/{online[0]['id']}")
    assert page.url.endswith(f"/dossiers/{online[0]['id']}")


async def test_an_answer_needs_its_note_the_role_and_the_version_seen(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    [made] = await filed(net, edge)
    clerk, admin = staff(), staff()
    await clerk.login("clerk1")
    await admin.login("admin1")
    page = await admin.get(f"/inbox/{made['id']}")
    assert "Vai trò của bạn chỉ được xem" in page.text and 'id="accept"' not in page.text
    refused = await admin.post(f"/inbox/{made['id']}/accept", {"base": base_of(
        (await clerk.get(f"/inbox/{made['id']}")).text)})
    assert refused.status == 403, refused.text
    page = await clerk.get(f"/inbox/{made['id']}")
    base = base_of(page.text)
    for kind in ("refuse", "supplement"):
        answer = await clerk.post(f"/inbox/{made['id']}/{kind}", {"base": base, "note": "  \n "},
                                  csrf=page.csrf)
        assert answer.url.endswith(f"/inbox/{made['id']}"), answer.url
        assert "Hãy ghi" in answer.text
    # the province commented meanwhile: that does not make the clerk's answer stale
    assert net.hub is not None
    status, _ = await net.hub.api.post(f"/api/dossiers/{made['id']}/comments", {"text": "xem"})
    assert status == 200
    await edge.sync()
    answer = await clerk.post(f"/inbox/{made['id']}/supplement",
                              {"base": base, "note": "Giấy chứng sinh"}, csrf=page.csrf)
    assert answer.status == 200 and answer.url.endswith("/supplement"), answer.url
    # answered already: a second answer from an old page is refused, nothing written
    status, before = await edge.api.get(f"/api/dossiers/{made['id']}")
    late = await clerk.post(f"/inbox/{made['id']}/refuse",
                            {"base": base, "note": "Thiếu giấy tờ"}, csrf=page.csrf)
    assert late.status == 404, late.text
    status, after = await edge.api.get(f"/api/dossiers/{made['id']}")
    assert after["status"] == "supplement_requested" and after["version"] == before["version"]


def test_every_answer_has_its_messages() -> None:
    tables = load_catalogues(*(d / "messages" for d in UI_DIRS))
    for table in tables.values():
        for kind, (_, needs_note, _) in ANSWERS.items():
            assert f"inbox.{kind}_done" in table, kind
            assert not needs_note or f"inbox.{kind}_note" in table, kind
