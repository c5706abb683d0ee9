"""Static files (CSS, JS, icons) served from memory with a content hash in the URL.

`url("ui/base.css")` gives `/static/ui/base.css?v=<hash>`; a request carrying the current hash is
cached for a year (immutable), anything else revalidates with the ETag. Nothing comes from a CDN.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

PREFIX = "/static/"
TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}
YEAR = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Asset:
    """One file held in memory."""

    body: bytes
    content_type: str
    digest: str


class StaticFiles:
    """Files of several folders, each mounted under a name (`ui`, `desk`, …)."""

    def __init__(self, mounts: dict[str, Path]) -> None:
        self.assets: dict[str, Asset] = {}
        for name, folder in mounts.items():
            self.add(name, folder)

    def add(self, name: str, folder: Path) -> None:
        """Serve the files of one more folder under /static/{name}/ (a second UI of the app)."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self._add(f"{name}/{path.relative_to(folder).as_posix()}", path)

    def _add(self, key: str, path: Path) -> None:
        body = path.read_bytes()
        ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
            "application/octet-stream"
        self.assets[key] = Asset(body, ctype, hashlib.sha256(body).hexdigest()[:12])

    def url(self, key: str) -> str:
        """The versioned URL of an asset (a KeyError names a missing one at render time)."""
        return f"{PREFIX}{key}?v={self.assets[key].digest}"

    async def handle(self, request: web.Request) -> web.Response:
        """GET /static/{path}."""
        asset = self.assets.get(request.match_info["path"])
        if asset is None:
            raise web.HTTPNotFound(text="no such file")
        etag = f'"{asset.digest}"'
        cache = f"public, max-age={YEAR}, immutable" if request.query.get("v") == asset.digest \
            else "no-cache"
        headers = {"ETag": etag, "Cache-Control": cache}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if asset.content_type.startswith(("text/", "image/svg")) else None
        return web.Response(body=asset.body, content_type=asset.content_type, charset=charset,
                            headers=headers)

    def route(self) -> web.RouteDef:
        """The route serving these files."""
        return web.get(PREFIX + "{path:.+}", self.handle)
