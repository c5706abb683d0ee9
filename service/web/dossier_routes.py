"""The dossier API, the same on the edge and the hub (CONTRACT §7): list, read, edit, transition,
resolve, comment, attach and download; each side passes its own store and role policy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from protocol.commands import MAX_ATTACHMENT
from protocol.errors import NotFound, ValidationError
from protocol.lifecycle import STATUSES
from service.accounts import User
from service.blobs import BlobStore, sniff
from service.web.auth import current_user
from service.web.body import json_body
from service.web.errors import json_response
from service.web.middleware import Handler

log = logging.getLogger(__name__)

# (user, action, request body) -> None, or raise Forbidden: a side's role policy for the dossier API.
Authorize = Callable[[User, str, Any], None]


def _allow_all(user: User, action: str, body: Any) -> None:
    """The default policy: any logged-in user may do anything."""


class DossierService(Protocol):
    """What the dossier routes need from a store."""

    async def search(self, *, status: str | None = ..., q: str | None = ...,
                   commune: str | None = ..., conflicts_only: bool = ...,
                   limit: int = ..., after: str | None = ...) -> Any: ...
    async def view(self, dossier_id: str, commune: str | None = ...) -> dict[str, Any]: ...
    async def edit(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def transition(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def resolve(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def comment(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def attach(self, dossier_id: str, info: dict[str, Any],
                     actor: str) -> dict[str, Any]: ...
    @property
    def blobs(self) -> BlobStore: ...


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationError(f"{name} must be a whole number", field=name) from exc


def dossier_routes(store: DossierService, on_write: Callable[[], None] = lambda: None,
                   authorize: Authorize = _allow_all) -> list[web.RouteDef]:
    """GET/PATCH /api/dossiers…, transition, resolve, comments (CONTRACT §7); every write is
    first checked by `authorize` (answering 403 with a reason when the role may not)."""

    async def listing(request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}", field="status")
        page = await store.search(
            status=status, q=request.query.get("q"), commune=request.query.get("commune") or None,
            conflicts_only=request.query.get("conflicts") in ("1", "true"),
            limit=_int_param(request, "limit", 50), after=request.query.get("after") or None)
        return json_response({"items": page.items, "next": page.next})

    async def one(request: web.Request) -> web.Response:
        return json_response(await store.view(request.match_info["id"]))

    def writer(action: str,
               method: Callable[[str, Any, str], Awaitable[dict[str, Any]]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            body = await json_body(request)
            user = current_user(request)
            authorize(user, action, body)
            result = await method(request.match_info["id"], body, user.username)
            on_write()
            return json_response(result)
        return handler

    async def upload(request: web.Request) -> web.Response:
        authorize(current_user(request), "attach", None)
        if not request.content_type.startswith("multipart/"):
            raise ValidationError("send the file as multipart/form-data", field="file")
        reader = await request.multipart()
        data: bytes | None = None
        name, label = "", ""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                name = part.filename or "scan"
                chunks, size = [], 0
                while chunk := await part.read_chunk(1 << 16):
                    size += len(chunk)
                    if size > MAX_ATTACHMENT:
                        raise ValidationError(
                            f"file larger than {MAX_ATTACHMENT // 2**20} MB", field="file")
                    chunks.append(chunk)
                data = b"".join(chunks)
            elif part.name == "label":
                label = (await part.text())[:255]
        if not data:
            raise ValidationError("no file in the upload (field 'file')", field="file")
        mime = sniff(data[:16])
        if mime is None:
            raise ValidationError("only PDF, JPEG and PNG files can be attached", field="file")
        await store.view(request.match_info["id"])  # 404 before storing anything
        sha = await store.blobs.put(data)
        result = await store.attach(request.match_info["id"], {
            "sha256": sha, "name": name, "mime": mime, "size": len(data), "label": label},
            current_user(request).username)
        on_write()
        return json_response(result, status=201)

    async def download(request: web.Request) -> web.StreamResponse:
        view = await store.view(request.match_info["id"])
        sha = request.match_info["sha"]
        info = next((a for a in view["attachments"] if a["sha256"] == sha), None)
        if info is None:
            raise NotFound("no such attachment on this dossier")
        if not store.blobs.has(sha):
            raise NotFound("the file has not arrived here yet; it follows the dossier")
        return web.FileResponse(store.blobs.path(sha), headers={
            "Content-Type": info["mime"],
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(info['name'] or sha)}",
            "X-Content-Type-Options": "nosniff"})

    return [
        web.post("/api/dossiers/{id}/attachments", upload),
        web.get("/api/dossiers/{id}/attachments/{sha}", download),
        web.get("/api/dossiers", listing),
        web.get("/api/dossiers/{id}", one),
        web.patch("/api/dossiers/{id}", writer("edit", store.edit)),
        web.post("/api/dossiers/{id}/transition", writer("transition", store.transition)),
        web.post("/api/dossiers/{id}/resolve", writer("resolve", store.resolve)),
        web.post("/api/dossiers/{id}/comments", writer("comment", store.comment)),
    ]
