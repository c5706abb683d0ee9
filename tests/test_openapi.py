"""The OpenAPI document both servers serve at /api/openapi.json: generated from the route tables,
it covers every JSON route and every declared body, query and answer type, and it cannot drift
(an undeclared route or a type missing from it fails here)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from aiohttp import web

from service.api import bodies
from service.api.openapi import PATH, document, in_scope, routes, undeclared
from service.api.spec import operation, operation_of
from service.web.body import invalid
from tests.harness import Net, birth


@pytest.fixture
async def apps(net: Net) -> dict[str, tuple[web.Application, Any]]:
    """The hub's and an edge's application and the document each serves (without a login)."""
    assert net.hub is not None
    edge = await net.add_edge("02245")
    out = {}
    for name, server, api in (("hub", net.hub.server, net.hub.api),
                              ("edge", edge.server, edge.api)):
        status, doc = await api.get(PATH, token="")
        assert status == 200, doc
        out[name] = (server.app, doc)
    return out


def _ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


async def test_every_json_route_is_in_the_document(
        apps: dict[str, tuple[web.Application, Any]]) -> None:
    for name, (app, doc) in apps.items():
        assert doc["openapi"] == "3.1.0" and doc["info"]["version"]
        assert undeclared(app) == [], name
        listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        registered = {(m, p) for m, p, _ in routes(app)}
        assert registered == listed, (name, registered ^ listed)
        # the route table really was walked: the CONTRACT routes are there
        for route in (("GET", "/api/dossiers"), ("PATCH", "/api/dossiers/{id}"),
                      ("POST", "/api/dossiers/{id}/transition"), ("POST", "/api/login"),
                      ("GET", "/healthz"), ("GET", PATH)):
            assert route in listed, (name, route)
    edge_only = {("POST", "/api/dossiers"), ("GET", "/api/sync"), ("GET", "/api/procedures")}
    hub_only = {("GET", "/api/nodes"), ("GET", "/api/stats"), ("GET", "/api/alerts")}
    for name, wanted in (("edge", edge_only), ("hub", hub_only)):
        doc = apps[name][1]
        assert all(p in doc["paths"] and m.lower() in doc["paths"][p] for m, p in wanted), name


async def test_every_declared_type_is_in_the_document(
        apps: dict[str, tuple[web.Application, Any]]) -> None:
    for name, (app, doc) in apps.items():
        schemas = doc["components"]["schemas"]
        for method, path, handler in routes(app):
            op = operation_of(handler)
            assert op is not None
            entry = doc["paths"][path][method.lower()]
            if op.body is not None:
                ref = entry["requestBody"]["content"]["application/json"]["schema"]
                component = schemas[_ref_name(ref)]
                declared = {f.encode_name for f in msgspec.structs.fields(op.body)}
                assert set(component["properties"]) == declared, (name, path)
                required = {f.encode_name for f in msgspec.structs.fields(op.body)
                            if f.required}
                assert set(component.get("required", ())) == required, (name, path)
            if op.query is not None:
                params = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
                assert params == {f.encode_name for f in msgspec.structs.fields(op.query)}
            if isinstance(op.answer, type) and issubclass(op.answer, msgspec.Struct):
                ref = entry["responses"][str(op.status)]["content"]["application/json"]
                assert _ref_name(ref["schema"]) == op.answer.__name__, (name, path)
                assert op.answer.__name__ in schemas
            for status in op.error_statuses("{" in path):
                assert str(status) in entry["responses"], (name, method, path, status)
            assert ("security" in entry and entry["security"] == []) == op.public


def test_an_undeclared_route_is_reported_and_left_out() -> None:
    """The check the test above relies on can fail: a route without `@operation`."""

    async def bare(request: web.Request) -> web.Response:
        return web.json_response({})

    @operation("Declared", tag="t", body=bodies.Comment, answer=bodies.Comment)
    async def declared(request: web.Request, body: bodies.Comment) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.add_routes([web.get("/api/bare", bare), web.post("/api/declared", declared),
                    web.get("/dossiers", bare)])
    assert undeclared(app) == ["GET /api/bare"]
    doc = document(app, "t")
    assert set(doc["paths"]) == {"/api/declared"}
    assert "Comment" in doc["components"]["schemas"]
    assert not in_scope("/dossiers") and in_scope("/healthz")


@pytest.mark.parametrize(("raw", "kind", "message", "field"), [
    (b'{"procedure_code": "x", "applicant": {"full_name": 5, "citizen_id": "1"}}',
     bodies.NewDossier, "applicant.full_name must be text, not a whole number",
     "applicant.full_name"),
    (b'{"procedure_code": "x", "applicant": {"full_name": "A"}}', bodies.NewDossier,
     "applicant.citizen_id is required", "applicant.citizen_id"),
    (b'{"procedure_code": "x", "applicant": {"full_name": "A", "citizen_id": "1", "e": 1}}',
     bodies.NewDossier, "unknown field 'e' in applicant", "applicant"),
    (b'[1]', bodies.Transition, "the body must be an object, not a list", None),
    (b'{"set": {}}', bodies.Edit, "set must be an object of length >= 1", "set"),
    (b'{"set": {"fields.x": 1}, "base": 7}', bodies.Edit,
     "base must be text or null, not a whole number",
     "base"),
])
def test_shape_errors_read_as_sentences_naming_the_field(
        raw: bytes, kind: type[Any], message: str, field: str | None) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=kind)
    error = invalid(caught.value)
    assert (error.message, error.field) == (message, field)


async def test_a_malformed_upload_is_a_400_not_a_500(net: Net) -> None:
    """Found by schemathesis: a multipart form without a boundary, or with a broken part
    header, used to escape as a 500."""
    edge = await net.add_edge("02245")
    _, made = await edge.api.post("/api/dossiers", birth())
    url = f"{edge.api.base}/api/dossiers/{made['id']}/attachments"
    auth = {"Authorization": f"Bearer {edge.api.token}"}
    broken = (b'--b\r\nContent-Disposition: form-data; name="\x15"\r\n\r\nx\r\n--b--\r\n')
    for content_type, data in (("multipart/form-data", b"x"),
                               ("multipart/form-data; boundary=b", broken)):
        async with edge.api.http.post(url, data=data,
                                      headers={**auth, "Content-Type": content_type}) as resp:
            answer = await resp.json()
            assert resp.status == 400, answer
            assert answer["error"] == "invalid" and answer["field"] == "file", answer
    _, view = await edge.api.get(f"/api/dossiers/{made['id']}")
    assert view["attachments"] == []
