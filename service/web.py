"""HTTP plumbing shared by both servers: error mapping, JSON bodies, login, and the dossier API.

Every `SyncError` becomes a JSON answer `{"error", "message", "field"}` with its 4xx status; anything
else is logged and answered 500 without a traceback. The dossier routes are the same on the edge and
the hub (CONTRACT §7); each side passes its own store.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from protocol.commands import MAX_ATTACHMENT
from protocol.errors import (
    AuthError,
    Conflict,
    Forbidden,
    NotFound,
    RemoteProtocolError,
    SyncError,
    TooLarge,
    ValidationError,
    VersionMismatch,
)
from protocol.lifecycle import STATUSES
from service.accounts import Accounts, User
from service.blobs import BlobStore, sniff
from service.bodies import BODIES, read_body

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (user, action, request body) -> None, or raise Forbidden: a side's role policy for the dossier API.
Authorize = Callable[[User, str, Any], None]
USER_KEY = web.RequestKey("user", User)
MAX_JSON = 1024 * 1024
COOKIE = "session"

STATUS_OF: list[tuple[type[SyncError], int]] = [
    (TooLarge, 413),
    (VersionMismatch, 426),
    (ValidationError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (AuthError, 401),
    (RemoteProtocolError, 400),
]


def status_of(exc: SyncError) -> int:
    """The HTTP status for one of our errors."""
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(exc: SyncError) -> web.Response:
    """A JSON error answer."""
    return web.json_response(
        {"error": exc.code, "message": exc.message, "field": exc.field}, status=status_of(exc),
        dumps=_dumps, headers=retry_headers(exc))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_response(obj: Any, status: int = 200) -> web.Response:
    """JSON with Vietnamese kept readable."""
    return web.json_response(obj, status=status, dumps=_dumps)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware of both servers: map our errors to clean 4xx answers and anything
    unexpected to a logged 500, refuse content encodings we do not use, and give every answer the
    baseline hardening (`harden`)."""
    try:
        refuse_encodings(request)
        response = await handler(request)
    except SyncError as exc:
        if request.path.startswith("/api/") or request.path.startswith("/v1/"):
            response = error_response(exc)
        else:
            bad = web.HTTPBadRequest(text=exc.message)
            harden(request, bad)
            raise bad from exc
    except web.HTTPException as exc:
        harden(request, exc)
        raise
    except ConnectionError as exc:  # the client went away mid-request: nothing to answer
        log.info("client went away during %s %s: %s", request.method, request.path, exc)
        response = json_response({"error": "transport", "message": "connection lost"}, 400)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = json_response({"error": "internal", "message": "internal error; see the log"},
                                 500)
    harden(request, response)
    return response


# The baseline for every answer. The staff UI sets its own, equally strict policy on its pages
# (service/ui/security.py); whichever is set first, the effect is the same.
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
HSTS = "max-age=31536000"
IDENTITY = ("", "identity")


class RateLimited(SyncError):
    """Too many requests from one caller: retry after `retry_after_s` (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(RateLimited):
    """The server is overloaded: retry after `retry_after_s` (HTTP 503)."""

    code = "unavailable"


class UnsupportedEncoding(SyncError):
    """A request body in a content encoding we do not use (HTTP 415)."""

    code = "unsupported_encoding"


def retry_headers(exc: SyncError) -> dict[str, str]:
    """`Retry-After` for a rate-limited answer (whole seconds, at least 1)."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return {}


def refuse_encodings(request: web.Request) -> None:
    """Refuse compressed request bodies (Content-Encoding): nothing here sends them, and a small
    compressed body can inflate without bound. The sync body is zstd by its content type, decoded
    under our own limits (protocol/codec.py)."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY:
        raise UnsupportedEncoding(f"content encoding {encoding[:40]!r} is not accepted")


def harden(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers (kept if a handler set its own), no caching of API answers, HSTS over
    HTTPS, and every cookie HttpOnly, SameSite=Strict, and Secure when served over HTTPS."""
    if response.prepared:
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(("/api/", "/v1/")):
        response.headers.setdefault("Cache-Control", "no-store")
    secure = request.secure
    if secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    for morsel in response.cookies.values():
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        if secure:
            morsel["secure"] = True


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; a 400-class error if it is not JSON or too large (held against
    the process's memory budget while it is read and parsed: service/bodies.py)."""
    async with BODIES.hold() as hold:
        raw = await read_body(request, MAX_JSON, hold)
        try:
            return json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadJson(f"body is not valid JSON: {exc}") from exc


class _BadJson(ValidationError):
    """Malformed JSON: a 400 rather than a 422."""


STATUS_OF.insert(0, (_BadJson, 400))
STATUS_OF.insert(0, (RateLimited, 429))
STATUS_OF.insert(0, (Unavailable, 503))
STATUS_OF.insert(0, (UnsupportedEncoding, 415))


def token_of(request: web.Request) -> str | None:
    """The bearer token or session cookie of a request."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def current_user(request: web.Request) -> User:
    """The authenticated user (the auth middleware ran)."""
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise AuthError("not logged in")
    return user


def require_role(user: User, allowed: Collection[str], action: str) -> User:
    """Raise Forbidden unless `user` has one of the `allowed` roles for `action`."""
    if user.role not in allowed:
        raise Forbidden(f"your role ({user.role}) may not {action}: it needs "
                        f"{' or '.join(sorted(allowed))}")
    return user


def _allow_all(user: User, action: str, body: Any) -> None:
    """The default policy: any logged-in user may do anything."""


def auth_middleware(accounts: Accounts, public: tuple[str, ...] = ("/api/login",)) -> Any:
    """Refuse /api/* without a valid token (except `public` paths)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and request.path not in public:
            token = token_of(request)
            if not token:
                raise AuthError("log in first: POST /api/login")
            request[USER_KEY] = await accounts.check(token)
        return await handler(request)

    return middleware


def account_routes(accounts: Accounts) -> list[web.RouteDef]:
    """POST /api/login, /api/logout, /api/password; GET /api/me."""

    async def login(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            raise ValidationError("username and password are required", field="username")
        token = await accounts.login(body["username"], body["password"])
        resp = json_response({"token": token})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
        return resp

    async def logout(request: web.Request) -> web.Response:
        token = token_of(request)
        if token:
            await accounts.logout(token)
        resp = json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(request: web.Request) -> web.Response:
        user = current_user(request)
        return json_response({"username": user.username, "role": user.role})

    async def password(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ValidationError("old and new passwords are required")
        await accounts.change_password(current_user(request).username, str(body.get("old", "")),
                                       str(body.get("new", "")))
        return json_response({"ok": True})

    return [web.post("/api/login", login), web.post("/api/logout", logout),
            web.get("/api/me", me), web.post("/api/password", password)]


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
