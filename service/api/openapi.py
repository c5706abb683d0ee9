"""The OpenAPI 3.1 document of a server, built from its router: every route under /api/ and
/healthz with the `Operation` its handler declares, and the JSON Schema of the declared types
(msgspec). Served at GET /api/openapi.json without a login: it holds no data, and tools fetch it
before they have an account."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

from protocol import APP_VERSION
from service.api import answers
from service.api.spec import Operation, operation, operation_of

log = logging.getLogger(__name__)

PATH = "/api/openapi.json"
REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "the token from POST /api/login"},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "the cookie POST /api/login sets (the browser UI)"},
}


def in_scope(path: str) -> bool:
    """True for the routes the document must cover: the JSON API and the health check (the
    HTML pages, static files and the node protocol under /v1/ are not part of it)."""
    return path.startswith("/api/") or path == "/healthz"


def routes(app: web.Application) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, handler) of every in-scope route; HEAD, which aiohttp adds to
    every GET, is left out."""
    for resource in app.router.resources():
        path = resource.canonical
        if not in_scope(path):
            continue
        for route in resource:
            if route.method != "HEAD":
                yield route.method, path, route.handler


def undeclared(app: web.Application) -> list[str]:
    """In-scope routes whose handler declares no operation (the document would miss them)."""
    return [f"{method} {path}" for method, path, handler in routes(app)
            if operation_of(handler) is None]


def document(app: web.Application, title: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s declared operations."""
    ops = [(m, p, op) for m, p, h in routes(app) if (op := operation_of(h)) is not None]
    types: list[Any] = [answers.Error]
    for _, _, op in ops:
        types += [t for t in (op.body, op.form, op.query) if t is not None]
        if op.answer is not None:
            types.append(op.answer)
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(map(id, types), refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in sorted(ops, key=lambda o: (o[1], o[0])):
        paths.setdefault(path, {})[method.lower()] = _operation(
            method, path, op, schema_of, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": APP_VERSION, "description": description},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SCHEMES},
        "security": SECURITY,
    }


def _operation(method: str, path: str, op: Operation, schema_of: dict[int, Any],
               components: dict[str, Any]) -> dict[str, Any]:
    names = _PARAM.findall(path)
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                       for n in names],
        "responses": {str(op.status): _success(op, schema_of)},
    }
    if op.description:
        out["description"] = op.description
    if op.query is not None:
        out["parameters"] += _query_parameters(components[op.query.__name__])
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schema_of[id(op.body)]}}}
    elif op.form is not None:
        out["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": schema_of[id(op.form)]}}}
    error = {"application/json": {"schema": schema_of[id(answers.Error)]}}
    for status in op.error_statuses(bool(names)):
        out["responses"][str(status)] = {"description": HTTPStatus(status).phrase,
                                         "content": error}
    if op.public:
        out["security"] = []
    return out


def _success(op: Operation, schema_of: dict[int, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": op.summary}
    if op.answer is not None:
        answer["content"] = {m: {"schema": schema_of[id(op.answer)]} for m in op.media}
    elif op.media:
        answer["content"] = {m: {} for m in op.media}
    return answer


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A query struct's properties as `in: query` parameters (a query value is never null; an
    empty one counts as absent)."""
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        alternatives = [s for s in prop.pop("anyOf", ()) if s.get("type") != "null"]
        if len(alternatives) == 1:
            prop = {**alternatives[0], **prop}
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        if name not in required and (prop.get("type") != "string" or "enum" in prop):
            # decode_query reads `name=` as absent, as HTML forms send it
            outer = {k: prop.pop(k) for k in ("description", "default") if k in prop}
            param["schema"] = {"anyOf": [prop, {"const": ""}], **outer}
        out.append(param)
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_")) if w]
    return "_".join([method.lower(), *words])


def openapi_route(title: str, description: str = "") -> web.RouteDef:
    """GET /api/openapi.json for the app it is added to (built on first request, when the
    router is complete)."""
    cache: dict[str, bytes] = {}

    @operation("This API's OpenAPI 3.1 document", tag="meta", answer=dict[str, Any],
               public=True)
    async def spec(request: web.Request) -> web.Response:
        """The document you are reading."""
        if "doc" not in cache:
            cache["doc"] = msgspec.json.encode(document(request.app, title, description))
        return web.Response(body=cache["doc"], content_type="application/json")
    return web.get(PATH, spec)
