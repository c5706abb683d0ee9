"""CSRF protection for every UI form: a per-session token in a hidden field, checked on each POST.

The token is an HMAC of the session cookie, so it needs no storage and changes with every login.
Before login (the login form, the language switch) it is an HMAC of a random anonymous cookie
(double submit). The session cookie is also SameSite=Strict; a POST whose Origin names another site
is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from protocol.errors import Forbidden
from service.web import COOKIE

log = logging.getLogger(__name__)

FIELD = "csrf"
ANON_COOKIE = "csrf_anon"
NEW_ANON = web.RequestKey("csrf_new_anon", str)


def _mac(secret: str) -> str:
    return hmac.new(secret.encode(), b"commune-sync csrf v1", hashlib.sha256).hexdigest()


def token(request: web.Request) -> str:
    """The CSRF token for forms on this page (creates an anonymous cookie if needed)."""
    session = request.cookies.get(COOKIE)
    if session:
        return _mac(session)
    anon = request.cookies.get(ANON_COOKIE) or request.get(NEW_ANON)
    if not anon:
        anon = secrets.token_urlsafe(24)
        request[NEW_ANON] = anon
    return _mac(anon)


def remember_anon(request: web.Request, response: web.StreamResponse) -> None:
    """Set the anonymous cookie a page's token was made from (call before sending)."""
    anon = request.get(NEW_ANON)
    if anon:
        response.set_cookie(ANON_COOKIE, anon, httponly=True, samesite="Strict", path="/")


def check(request: web.Request, form: Mapping[str, Any]) -> None:
    """Raise Forbidden unless the form carries this session's token and comes from this site."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        host = origin.split("://", 1)[-1]
        if host != request.host:
            raise Forbidden("form sent from another site")
    sent = form.get(FIELD)
    secret = request.cookies.get(COOKIE) or request.cookies.get(ANON_COOKIE)
    if not isinstance(sent, str) or not secret or not hmac.compare_digest(sent, _mac(secret)):
        raise CsrfError("the form has expired; reload the page and try again")


class CsrfError(Forbidden):
    """A form without this session's token: stale page or forged request."""

    code = "csrf"
