"""What every dashboard page needs: the hub's parts, navigation, and how figures read in the
operator's language (durations, sizes, reasons, statuses, procedures, field names)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from central_hub.config import HubConfig
from central_hub.metrics import HubMetrics
from central_hub.nodes.monitor import Monitor, NodeSnapshot
from central_hub.store import HubStore
from protocol import lifecycle
from protocol.text import search_key
from service.accounts import Accounts
from service.ui.i18n import Messages
from service.ui.render import Renderer
from service.web import USER_KEY

log = logging.getLogger(__name__)

SEVERITY = {"critical": 2, "warning": 1, "ok": 0}
PAGE = 200  # rows of a node table a page: a country has 3,321 communes
APPLICANT = ("full_name", "citizen_id", "phone", "address")


@dataclass(frozen=True, slots=True)
class Hub:
    """The parts of the hub the pages work with."""

    store: HubStore
    accounts: Accounts
    config: HubConfig
    monitor: Monitor
    metrics: HubMetrics
    renderer: Renderer
    nodes: NodeSnapshot


HUB = web.AppKey("hub", Hub)


def hub_of(request: web.Request) -> Hub:
    """The hub of the app serving `request`."""
    return request.app[HUB]


def paginate(query: Any, total: int, size: int) -> tuple[int, int]:
    """(page, pages) for `size` rows a page, from `?page=` (a bad or too high one: the nearest)."""
    try:
        page = max(1, int(query.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, (total + size - 1) // size)
    return min(page, pages), pages


def node_matches(item: dict[str, Any], q: str) -> bool:
    """True iff the node's commune code, commune name or node id contains `q` (accents and
    case aside)."""
    if not q:
        return True
    return search_key(q) in search_key(
        f"{item['commune']} {item['commune_name'] or ''} {item['node']}")


def nav(request: web.Request, t: Messages) -> list[dict[str, Any]]:
    """The main navigation, with access keys (Alt+letter)."""
    path = request.path
    items = [("/", "nav.overview", "o", path == "/"),
             ("/alerts", "nav.alerts", "a", path == "/alerts"),
             ("/conflicts", "nav.conflicts", "x", path == "/conflicts"),
             ("/clock-checks", "nav.clock_checks", "g", path == "/clock-checks"),
             ("/dossiers", "nav.dossiers", "d", path.startswith("/dossiers")),
             ("/stats", "nav.stats", "s", path == "/stats"),
             ("/nodes", "nav.nodes", "m", path == "/nodes")]
    return [{"href": href, "label": t(key), "key": k, "current": cur}
            for href, key, k, cur in items]


def duration(t: Messages, seconds: int | None) -> str:
    """`3 giờ 5 phút` / `3 h 5 min`."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return t("dur.s", n=s)
    if s < 3600:
        return t("dur.min", n=s // 60)
    if s < 86400:
        return t("dur.h_min", h=s // 3600, m=s % 3600 // 60) if s % 3600 >= 60 \
            else t("dur.h", h=s // 3600)
    return t("dur.d_h", d=s // 86400, h=s % 86400 // 3600) if s % 86400 >= 3600 \
        else t("dur.d", d=s // 86400)


def size(value: int | float | None) -> str:
    """Bytes as people read them: `1.2 MB`."""
    if value is None:
        return ""
    n = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def why(t: Messages, reason: dict[str, Any]) -> str:
    """A health reason (`Reason.plain()`) in the operator's language."""
    code = reason["code"]
    params = dict(reason.get("params") or {})
    for key in ("silent_s", "contact_s", "age_s", "every_s", "offset_s"):
        if params.get(key) is not None:
            params[key[:-2]] = duration(t, params[key])
    if code == "no_sync" and params.get("contact_s") is not None:
        code = "no_sync_contact"
    key = f"why.{code}"
    return t(key, **params) if t.has(key) else str(reason.get("text", code))


def status_name(t: Messages, status: str | None) -> str:
    """A dossier status in the language."""
    if status not in lifecycle.STATUSES:
        return status or ""
    _, vi, en = lifecycle.STATUSES[status]
    return vi if t.lang == "vi" else en


def procedure_name(hub: Hub, t: Messages, code: str | None) -> str:
    """A procedure's name in the language (its code if unknown)."""
    proc = hub.store.catalogue.get(code) if code else None
    if proc is None:
        return code or ""
    return proc.name_vi if t.lang == "vi" else proc.name_en


def field_label(hub: Hub, t: Messages, procedure: str | None, path: str) -> str:
    """A written path as people read it: `applicant.address`, `fields.child_sex`, `status`."""
    group, _, key = path.partition(".")
    if group == "fields":
        proc = hub.store.catalogue.get(procedure) if procedure else None
        spec = proc.field(key) if proc else None
        if spec is not None:
            return spec.label_vi if t.lang == "vi" else spec.label_en
        return key
    return t(f"field.{path}") if t.has(f"field.{path}") else path


def user_name(request: web.Request) -> str:
    """The logged-in operator's username."""
    user = request.get(USER_KEY)
    return user.username if user is not None else ""
