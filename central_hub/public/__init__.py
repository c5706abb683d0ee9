"""The hub's public pages, for citizens and without a login: `/submit` files a dossier online for
its commune, `/track` (and `GET /api/track`) follows one by its code and tracking check.

Both are small, Vietnamese first with an English switch, usable on a phone 360 px wide, with no
external asset (their stylesheet is served by the hub like the dashboard's). Forms carry the CSRF
token of an anonymous cookie; filings and failed lookups are rate-limited per client address.
Errors of ours become pages of these pages' own look, in the visitor's language.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from central_hub.config import HubConfig
from central_hub.ratelimit import TokenBuckets
from central_hub.store import HubStore
from central_hub.submissions import Intake
from central_hub.tracking import Tracker
from protocol.communes import DEFAULT_COMMUNES_DATA
from protocol.errors import SyncError
from protocol.refdata import with_public_url
from service.ui.mount import RENDERER
from service.ui.render import Renderer
from service.ui.session import ERROR_KEYS
from service.web import RateLimited, retry_headers, status_of

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PATHS = ("/submit", "/track")  # pages the staff login does not guard


@dataclass(frozen=True, slots=True)
class Public:
    """What the public pages work with."""

    intake: Intake
    tracker: Tracker
    config: HubConfig
    renderer: Renderer
    filings: TokenBuckets = field(default_factory=lambda: TokenBuckets(0, 1))

    def base_url(self, request: web.Request) -> str:
        """Where citizens reach these pages (hub.toml `citizen_url` or `public_url`), or the
        address the visitor used."""
        return self.config.citizens_url or f"{request.scheme}://{request.host}"

    def may_file(self, address: str) -> float:
        """Seconds until `address` may file again (0: now)."""
        return self.filings.wait(address, time.monotonic())

    def filed(self, address: str) -> None:
        """Count a filing against `address`."""
        self.filings.take(address, time.monotonic())


PUBLIC = web.AppKey("public", Public)
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def public_of(request: web.Request) -> Public:
    """The public pages' parts."""
    return request.app[PUBLIC]


def shown_errors(handler: Page) -> Page:
    """Render our errors as a page of the public pages (429 with Retry-After), not the
    dashboard's."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SyncError as exc:
            public = public_of(request)
            t = public.renderer.t(request)
            status = status_of(exc)
            key = "public.busy" if isinstance(exc, RateLimited) else \
                ERROR_KEYS.get(status, "error.other")
            response = await public.renderer.page(
                request, "public_error.html", status=status, title=t(key), detail=exc.message)
            response.headers.update(retry_headers(exc))
            return response

    return wrapped


async def publish_public_url(store: HubStore, public_url: str) -> int | None:
    """Publish the commune list again if it does not carry the citizens' address yet (the
    edges print it in their receipts' QR codes), or publish the sample list if the hub has none
    (one that predates it); return the new version, or None if nothing changed."""
    current = await store.refdata("communes")
    data = with_public_url(current or DEFAULT_COMMUNES_DATA, public_url)
    if data is None and current is not None:
        return None
    return await store.publish("communes", data or DEFAULT_COMMUNES_DATA)


def mount_public(app: web.Application, *, intake: Intake, tracker: Tracker,
                 config: HubConfig) -> Public:
    """Add /submit, /track and GET /api/track to the hub's app (after the dashboard, whose
    static files route serves these pages' stylesheet too)."""
    from central_hub.public import submit, track  # the pages import this module's names

    static = app[RENDERER].static
    static.add("public", HERE / "static")
    renderer = Renderer([HERE / "templates"], [HERE / "messages"], static, "public.title")
    public = Public(intake, tracker, config, renderer,
                    TokenBuckets(config.submit_per_hour / 3600, config.submit_burst))
    app[PUBLIC] = public
    app.router.add_routes([*submit.routes(), *track.routes(tracker)])

    async def on_startup(app: web.Application) -> None:
        version = await publish_public_url(intake.store, config.citizens_url)
        if version is not None:
            log.info("published the commune list version %d with public_url %r", version,
                     config.citizens_url)

    app.on_startup.append(on_startup)
    return public

