"""The dossier API, the same on the edge and the hub (CONTRACT §7): list, read, edit, transition,
resolve, comment, attach and download; each side passes its own store and role policy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from protocol.attachments import ATTACHMENT_TYPES, MAX_ATTACHMENT
from protocol.errors import NotFound, ValidationError
from protocol.lifecycle import STATUSES
from service.accounts import User
from service.api import answers, bodies
from service.api.spec import operation
from service.blobs import BlobStore, sniff
from service.web.auth import current_user
from service.web.body import read_upload
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
                   limit: int = ..., after: str | None = ...,
                   before: str | None = ...) -> Any: ...
    async def view(self, dossier_id: str, commune: str | None = ...) -> dict[str, Any]: ...
    async def edit(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def transition(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def resolve(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def transfer(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def comment(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def apologize(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]: ...
    async def attach(self, dossier_id: str, info: dict[str, Any],
                     actor: str) -> dict[str, Any]: ...
    @property
    def blobs(self) -> BlobStore: ...


def dossier_routes(store: DossierService, on_write: Callable[[], None] = lambda: None,
                   authorize: Authorize = _allow_all) -> list[web.RouteDef]:
    """GET/PATCH /api/dossiers…, transition, resolve, comments (CONTRACT §7); every write is
    first checked by `authorize` (answering 403 with a reason when the role may not)."""

    @operation("List and search dossiers", tag="dossiers", query=bodies.DossierQuery,
               answer=answers.DossierPage)
    async def listing(request: web.Request, query: bodies.DossierQuery) -> web.Response:
        """Newest first; `q` matches a code prefix, a citizen ID or a name (diacritics
        optional). Items are summaries: no history."""
        if query.status is not None and query.status not in STATUSES:
            raise ValidationError(f"unknown status {query.status!r}", field="status")
        page = await store.search(status=query.status, q=query.q, commune=query.commune,
                                  conflicts_only=query.conflicts, limit=query.limit,
                                  after=query.after, before=query.before)
        return json_response({"items": page.items, "next": page.next, "prev": page.prev})

    @operation("One dossier with its history", tag="dossiers", answer=answers.Dossier)
    async def one(request: web.Request) -> web.Response:
        """404 when the dossier is not in this server's scope."""
        return json_response(await store.view(request.match_info["id"]))

    def writer(action: str, method: Callable[[str, Any, str], Awaitable[dict[str, Any]]],
               kind: type[bodies.Body], summary: str, doc: str) -> Handler:
        def guard(request: web.Request, plain: Any) -> None:
            authorize(current_user(request), action, plain)

        async def handler(request: web.Request, body: bodies.Body) -> web.Response:
            result = await method(request.match_info["id"], bodies.as_dict(body),
                                  current_user(request).username)
            on_write()
            return json_response(result)

        handler.__doc__ = doc
        return operation(summary, tag="dossiers", body=kind, answer=answers.Dossier,
                         errors=(409,), guard=guard)(handler)

    @operation("Attach a scan (multipart: file, label)", tag="dossiers", form=bodies.Upload,
               answer=answers.Dossier, status=201, errors=(403, 409))
    async def upload(request: web.Request) -> web.Response:
        """The file is checked by its first bytes (PDF, JPEG or PNG) and stored by its SHA-256;
        it reaches the other side after the dossier."""
        authorize(current_user(request), "attach", None)
        if not request.content_type.startswith("multipart/"):
            raise ValidationError("send the file as multipart/form-data", field="file")
        data, name, label = await read_upload(request, MAX_ATTACHMENT)
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

    @operation("Download an attachment", tag="dossiers", media=ATTACHMENT_TYPES)
    async def download(request: web.Request) -> web.StreamResponse:
        """404 also while the file has not arrived here yet (it follows the dossier)."""
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
        web.patch("/api/dossiers/{id}", writer(
            "edit", store.edit, bodies.Edit, "Edit applicant or form fields",
            "Based on `base` (the version you saw): a stale base merges or becomes a conflict, "
            "never overwrites unseen work.")),
        web.post("/api/dossiers/{id}/transfer", writer(
            "transfer", store.transfer, bodies.Transfer, "Transfer to the competent commune",
            "Competence moves to `to` (a code of the province's commune list) for `reason`; "
            "the dossier reaches that commune's desks at their next sync. 409 when it is "
            "already that commune's.")),
        web.post("/api/dossiers/{id}/transition", writer(
            "transition", store.transition, bodies.Transition, "Change the status",
            "409 when the lifecycle does not allow it from the status you saw.")),
        web.post("/api/dossiers/{id}/resolve", writer(
            "resolve", store.resolve, bodies.Resolve, "Resolve a conflict",
            "409 when there is no conflict on the field, or a new value arrived since `base`.")),
        web.post("/api/dossiers/{id}/comments", writer(
            "comment", store.comment, bodies.Comment, "Comment on a dossier",
            "Comments never conflict.")),
        web.post("/api/dossiers/{id}/apology", writer(
            "apology", store.apologize, bodies.Apology, "Apologize with a new appointment",
            "Form 04, for a dossier that will be late: the new date is recorded and shown; the "
            "due date stays (the dossier still counts as late). 409 unless it is being "
            "processed.")),
    ]
