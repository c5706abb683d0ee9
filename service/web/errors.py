"""Our errors as HTTP answers: the one error→status map and the JSON error body.

Every `SyncError` becomes `{"error", "message", "field"}` with the status `status_of` gives it;
`STATUS_OF` is the one place that maps errors to statuses (the sync endpoint uses it too).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web

from protocol.errors import (
    AuthError,
    Conflict,
    DiskFull,
    Forbidden,
    NotFound,
    RemoteProtocolError,
    SyncError,
    TooLarge,
    ValidationError,
    VersionMismatch,
)

log = logging.getLogger(__name__)


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


class Malformed(ValidationError):
    """A body that cannot be parsed (JSON, a multipart form): a 400 rather than a 422."""


# First match wins: a subclass comes before its base.
STATUS_OF: list[tuple[type[SyncError], int]] = [
    (DiskFull, 507),
    (UnsupportedEncoding, 415),
    (Unavailable, 503),
    (RateLimited, 429),
    (Malformed, 400),
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


def retry_headers(exc: SyncError) -> dict[str, str]:
    """`Retry-After` for a rate-limited answer (whole seconds, at least 1)."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return {}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_response(obj: Any, status: int = 200) -> web.Response:
    """JSON with Vietnamese kept readable."""
    return web.json_response(obj, status=status, dumps=_dumps)


def error_response(exc: SyncError) -> web.Response:
    """A JSON error answer."""
    return web.json_response(
        {"error": exc.code, "message": exc.message, "field": exc.field}, status=status_of(exc),
        dumps=_dumps, headers=retry_headers(exc))
