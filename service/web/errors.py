"""Our errors as HTTP answers: the one error→status map and the JSON error body.

Every `SyncError` becomes `{"error", "message", "field"}` with the status `status_of` gives it:
the status its class declares in the one registry of errors (`protocol/errors.py: ERRORS`), which
the edge also reads answers by (`from_answer`).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web

from protocol.errors import ERRORS, SyncError, ValidationError
from protocol.errors import RateLimited as RateLimited
from protocol.errors import Unavailable as Unavailable
from protocol.errors import UnsupportedEncoding as UnsupportedEncoding
from protocol.errors import status_of as status_of

log = logging.getLogger(__name__)


class Malformed(ValidationError):
    """A body that cannot be parsed (JSON, a multipart form): a 400 rather than a 422."""

    status = 400


# code -> HTTP status, from the one registry (protocol/errors.py: each error class's `status`)
STATUS_OF: dict[str, int] = {code: cls.status for code, cls in ERRORS.items()}


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
