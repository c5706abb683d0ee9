"""HTTP plumbing shared by both servers: error mapping, JSON bodies, login, and the dossier API.

Every `SyncError` becomes a JSON answer `{"error", "message", "field"}` with its 4xx status
(`errors`); anything else is logged and answered 500 without a traceback (`middleware`). Bodies
are read under a limit and decoded into declared types (`body`); `auth` holds tokens, login and
roles; `dossier_routes` the dossier API both sides serve.
"""

from __future__ import annotations

import logging

from service.web.auth import (
    COOKIE,
    PUBLIC,
    USER_KEY,
    account_routes,
    auth_middleware,
    current_user,
    require_role,
    token_of,
)
from service.web.body import MAX_JSON, convert, decode_query, json_body, read_body
from service.web.dossier_routes import Authorize, DossierService, dossier_routes
from service.web.errors import (
    STATUS_OF,
    Malformed,
    RateLimited,
    Unavailable,
    UnsupportedEncoding,
    error_response,
    json_response,
    retry_headers,
    status_of,
)
from service.web.middleware import (
    CSP,
    SECURITY_HEADERS,
    Handler,
    error_middleware,
    harden,
    refuse_encodings,
)

log = logging.getLogger(__name__)

__all__ = [
    "COOKIE",
    "CSP",
    "MAX_JSON",
    "PUBLIC",
    "SECURITY_HEADERS",
    "STATUS_OF",
    "USER_KEY",
    "Authorize",
    "DossierService",
    "Handler",
    "Malformed",
    "RateLimited",
    "Unavailable",
    "UnsupportedEncoding",
    "account_routes",
    "auth_middleware",
    "convert",
    "current_user",
    "decode_query",
    "dossier_routes",
    "error_middleware",
    "error_response",
    "harden",
    "json_body",
    "json_response",
    "read_body",
    "refuse_encodings",
    "require_role",
    "retry_headers",
    "status_of",
    "token_of",
]
