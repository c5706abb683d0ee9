"""Put the shared UI plumbing into an aiohttp app: session middleware, headers, static files, login."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from aiohttp import web

from service.accounts import Accounts
from service.ui import security, session
from service.ui.auth_pages import auth_routes
from service.ui.render import Renderer
from service.ui.static import StaticFiles

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
RENDERER = web.AppKey("ui_renderer", Renderer)


def mount(app: web.Application, accounts: Accounts, *, name: str, folder: Path,
          title_key: str, public: Collection[str] = ()) -> Renderer:
    """Mount the UI of one app whose `templates/`, `messages/` and `static/` are in `folder`;
    its static files are served under /static/{name}/; `public` paths need no login (besides
    the login form and static files). Return the renderer for its pages."""
    static = StaticFiles({"ui": HERE / "static", name: folder / "static"})
    renderer = Renderer([folder / "templates"], [folder / "messages"], static, title_key)
    app.middlewares.append(session.middleware(accounts, renderer, public))
    security.install(app)
    app.router.add_routes([static.route(), *auth_routes(accounts, renderer)])
    app[RENDERER] = renderer
    return renderer
