"""Security headers on every UI response: no framing, no referrer, scripts and styles only from here."""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)

# Inline SVG (the receipt's QR code) is markup, not a loaded resource, so it needs no exception.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
API_PREFIXES = ("/api/", "/v1/")


def is_ui_path(path: str) -> bool:
    """True for pages and static files; False for the JSON API and the sync endpoint."""
    return not path.startswith(API_PREFIXES)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: runs for every answer, errors and files included."""
    if not is_ui_path(request.path):
        return
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.secure:
        # over HTTPS (the office LAN) no cookie of ours may ever travel in clear text
        for morsel in response.cookies.values():
            morsel["secure"] = True
    if "Cache-Control" not in response.headers:
        # pages carry personal data: never keep them in a shared PC's browser cache
        response.headers["Cache-Control"] = "no-store"


def install(app: web.Application) -> None:
    """Add the headers to every UI response of `app`."""
    app.on_response_prepare.append(add_headers)
