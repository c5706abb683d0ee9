"""The outermost middleware of both servers: errors to clean answers, refused encodings, and the
baseline hardening of every answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from protocol.errors import SyncError
from service.web.errors import UnsupportedEncoding, error_response, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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
