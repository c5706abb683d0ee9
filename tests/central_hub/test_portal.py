"""Online intake at the hub over real HTTP (CONTRACT additions): the portal's key is a principal of
its own, a filing is validated exactly like desk intake and stores nothing when refused, the commune
must be one with a desk, scans are uploaded first, and the code is the hub's own."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from central_hub.portal import Portals
from edge_node.blobsync import BlobMover
from tests.harness import EdgeHandle, HubHandle, Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
CODE_RE = re.compile(r"^08\.DVC-\d{6}-(\d{4})$")


def portals(hub: HubHandle) -> Portals:
    store = hub.store
    return Portals(store.conn, store.reader, store.lock, store.now_ms)


def filing(commune: str = "02245", **over: Any) -> dict[str, Any]:
    return {**birth(), "commune": commune, **over}


async def counts(hub: HubHandle) -> tuple[int, int, int]:
    out = []
    for table in ("events", "dossiers", "submissions"):
        async with hub.store.reader.execute(f"SELECT count(*) FROM {table}") as cur:
            out.append(int((await cur.fetchone())[0]))
    return out[0], out[1], out[2]


async def upload(hub: HubHandle, key: str, data: bytes = PDF) -> tuple[int, Any]:
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"scan.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    async with hub.api.http.post(hub.url + "/api/submissions/uploads", data=form, headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"}) as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def desk(net: Net) -> EdgeHandle:
    """Côn Lôn's desk, enrolled: its commune can receive dossiers filed online."""
    return await net.add_edge("02245", "Xã Côn Lôn")


async def test_a_key_files_and_reads_its_own_and_nothing_else(net: Net, desk: EdgeHandle) -> None:
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    assert key.startswith("psk_") and len(key) > 40
    status, made = await hub.api.post("/api/submissions", filing(), token=key)
    assert status == 201, made
    assert set(made) == {"id", "code", "tracking"} and CODE_RE.match(made["code"])
    status, own = await hub.api.get(f"/api/submissions/{made['id']}", token=key)
    assert status == 200 and own["status"] == "submitted" and own["commune"] == "02245", own
    assert set(own) == {"id", "commune", "code", "status", "status_label", "due_at", "missing"}
    # the key is nobody on the operator API, and an operator is nobody on the portal's
    for path in ("/api/nodes", "/api/dossiers", f"/api/dossiers/{made['id']}", "/api/stats"):
        status, body = await hub.api.get(path, token=key)
        assert status == 401, (path, body)
    status, body = await hub.api.post("/api/submissions", filing())  # the operator's token
    assert status == 401 and "portal" in body["message"], body
    status, body = await hub.api.post("/api/submissions", filing(), token="")
    assert status == 401, body
    # another portal does not see this one's filings
    other = await portals(hub).add("other")
    status, body = await hub.api.get(f"/api/submissions/{made['id']}", token=other)
    assert status == 404, body
    # revoked: refused at once, everywhere
    await portals(hub).revoke("dvc")
    status, body = await hub.api.post("/api/submissions", filing(), token=key)
    assert status == 401, body
    items = {p["name"]: p for p in await portals(hub).items()}
    assert items["dvc"]["revoked_at"] and items["dvc"]["submissions"] == 1
    assert items["other"]["revoked_at"] is None


async def test_a_filing_is_a_submitted_online_dossier_with_the_hubs_code(
        net: Net, desk: EdgeHandle) -> None:
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    numbers = []
    for _ in range(3):
        status, made = await hub.api.post("/api/submissions", filing(), token=key)
        assert status == 201, made
        match = CODE_RE.match(made["code"])
        assert match, made
        numbers.append(int(match.group(1)))
    assert numbers == [1, 2, 3]  # the hub's per-day counter
    status, view = await hub.api.get(f"/api/dossiers/{made['id']}")
    assert status == 200, view
    assert (view["status"], view["channel"], view["commune"], view["due_at"]) == \
        ("submitted", "online", "02245", None)
    events = await hub.store.dossiers.history(made["id"])
    create = events[0].payload
    assert create["received_by"] == "online" and events[0].origin == hub.store.origin
    assert create["track"] == made["tracking"].replace("-", "")
    assert events[0].actor == "portal:dvc"


@pytest.mark.parametrize("change", [
    {"procedure_code": "9.999999"},
    {"applicant": {"full_name": "", "citizen_id": "008090001234"}},
    {"applicant": {"full_name": "An", "citizen_id": "12345"}},
    {"fields": {"child_sex": "?"}},
    {"fields": {"no_such_field": "x"}},
])
async def test_refused_exactly_like_desk_intake_and_nothing_stored(
        net: Net, desk: EdgeHandle, change: dict[str, Any]) -> None:
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    body = {**birth(), **change}
    if "fields" in change:
        body["fields"] = {**birth()["fields"], **change["fields"]}
    before = await counts(hub)
    status, online = await hub.api.post("/api/submissions", {**body, "commune": "02245"},
                                        token=key)
    at_desk, counter = await desk.api.post("/api/dossiers", body)
    assert (status, online) == (at_desk, counter), (online, counter)  # same status and message
    assert status == 422
    assert await counts(hub) == before


async def test_a_filing_cannot_be_a_refusal_at_the_counter(net: Net, desk: EdgeHandle) -> None:
    """The desk's own keys (a refusal at the counter, duplicates gone past) mean nothing in a
    filing: it is submitted, whatever the portal sends."""
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    status, made = await hub.api.post("/api/submissions", filing(
        refuse={"reasons": "x"}, duplicates=["02245.01-260105-0001"]), token=key)
    assert status == 201, made
    payload = (await hub.store.dossiers.history(made["id"]))[0].payload
    assert payload["status"] == "submitted" and "reasons" not in payload
    assert "duplicates" not in payload


@pytest.mark.parametrize(("commune", "names"), [
    ("99999", "99999 is not a commune"),  # not in the list, never enrolled
    ("02254", "02254 Xã Hồng Thái has no desk"),  # listed, but no desk enrolled
    ("2245", "5 digits"),
])
async def test_a_commune_that_cannot_receive_is_refused_by_name(
        net: Net, desk: EdgeHandle, commune: str, names: str) -> None:
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    before = await counts(hub)
    status, body = await hub.api.post("/api/submissions", filing(commune), token=key)
    assert status == 422 and body["field"] == "commune" and names in body["message"], body
    assert await counts(hub) == before


async def test_a_merged_commune_files_with_its_successor(net: Net, desk: EdgeHandle) -> None:
    """The sample list says Sinh Long (02227) joined Côn Lôn (02245) on 1 July 2025."""
    hub = net.hub
    assert hub is not None
    key = await portals(hub).add("dvc")
    status, made = await hub.api.post("/api/submissions", filing("02227"), token=key)
    assert status == 201, made
    _, view = await hub.api.get(f"/api/dossiers/{made['id']}")
    assert view["commune"] == "02245"


async def test_scans_are_uploaded_first_and_reach_the_desk(net: Net, desk: EdgeHandle) -> None:
    hub = net.hub
    assert hub is not None
    key, other = await portals(hub).add("dvc"), await portals(hub).add("other")
    status, up = await upload(hub, key)
    assert status == 201 and up["mime"] == "application/pdf" and up["size"] == len(PDF), up
    status, bad = await upload(hub, key, b"MZ not a scan")
    assert status == 422 and bad["field"] == "file", bad
    before = await counts(hub)
    for attachments, who in (([{"sha256": up["sha256"], "label": "Giấy chứng sinh"}], other),
                             ([{"sha256": "0" * 64, "label": "x"}], key),
                             ([{"label": ""}], key),
                             ([{"sha256": up["sha256"], "count": 0}], key)):
        status, body = await hub.api.post("/api/submissions",
                                          filing(attachments=attachments), token=who)
        assert status == 422 and body["field"].startswith("attachments"), body
    assert await counts(hub) == before
    docs = [{"sha256": up["sha256"], "label": "Giấy chứng sinh", "doc_kind": "bản chụp"},
            {"label": "Giấy chứng nhận kết hôn", "doc_kind": "bản chính"}]  # on paper
    status, made = await hub.api.post("/api/submissions", filing(attachments=docs), token=key)
    assert status == 201, made
    await desk.sync()

    async def never() -> bool:
        return False

    moved = await BlobMover(desk.client).run(never)
    assert moved.downloaded == 1 and desk.store.blobs.has(up["sha256"])
    status, view = await desk.api.get(f"/api/dossiers/{made['id']}")
    assert status == 200 and view["status"] == "submitted", view
    assert [(a["document"], a["scanned"]) for a in view["attachments"]] == \
        [("Giấy chứng sinh", True), ("Giấy chứng nhận kết hôn", False)]
