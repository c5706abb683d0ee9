"""What every desk page needs: the node's parts, the navigation for the user's role, the sync
indicator in the header, and small helpers (labels of statuses, procedures and field paths)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from edge_node.config import EdgeConfig
from edge_node.loop import SyncLoop
from edge_node.roles import may
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol import lifecycle
from protocol.catalogue import Procedure
from service.accounts import Accounts
from service.dossier_store import DossierStore
from service.ui import formats
from service.ui.i18n import Messages
from service.ui.render import Renderer
from service.web import USER_KEY
from service.worklists import Worklists

log = logging.getLogger(__name__)

UNIT_WORDS = ("xã", "phường", "thị trấn", "đặc khu")


@dataclass(frozen=True, slots=True)
class Desk:
    """The parts of one edge node the pages work with."""

    store: DossierStore
    accounts: Accounts
    client: SyncClient[EdgeStore]
    loop: SyncLoop
    config: EdgeConfig
    renderer: Renderer
    worklists: Worklists
    sync_status: Callable[[], Awaitable[dict[str, Any]]]
    # signs references to scans a refused form keeps (edge_node.ui.documents); made at start
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def agency_name(self) -> str:
        """`UBND xã Côn Lôn` from the commune's name (`Xã Côn Lôn` or `Côn Lôn`)."""
        name = " ".join(self.config.commune_name.split())
        lowered = name.lower()
        for word in UNIT_WORDS:
            if lowered.startswith(word + " "):
                return f"UBND {word} {name[len(word) + 1:]}"
        return f"UBND xã {name}"

    def place_name(self) -> str:
        """The commune's name without its unit word, for "Côn Lôn, ngày … tháng … năm …"."""
        name = " ".join(self.config.commune_name.split())
        for word in UNIT_WORDS:
            if name.lower().startswith(word + " "):
                return name[len(word) + 1:]
        return name

    def procedure(self, code: str | None) -> Procedure | None:
        """The catalogue's procedure with this code."""
        return self.store.catalogue.get(code) if code else None


DESK = web.AppKey("desk", Desk)


def desk_of(request: web.Request) -> Desk:
    """The desk of the app serving `request`."""
    return request.app[DESK]


def status_label(status: str | None, lang: str) -> str:
    """The status's name in the language (from the lifecycle table)."""
    if status not in lifecycle.STATUSES:
        return status or ""
    _, vi, en = lifecycle.STATUSES[status]
    return vi if lang == "vi" else en


def procedure_name(proc: Procedure | None, code: str | None, lang: str) -> str:
    """The procedure's name in the language, or its code if unknown here."""
    if proc is None:
        return code or ""
    return proc.name_vi if lang == "vi" else proc.name_en


def field_label(desk: Desk, t: Messages, procedure_code: str | None, path: str) -> str:
    """A human label for a written path: `applicant.phone`, `fields.child_sex`, `status`, …"""
    group, _, key = path.partition(".")
    if group == "fields":
        proc = desk.procedure(procedure_code)
        spec = proc.field(key) if proc else None
        if spec is not None:
            return spec.label_vi if t.lang == "vi" else spec.label_en
        return key
    if t.has(f"field.{path}"):
        return t(f"field.{path}")
    return path


def show_value(t: Messages, path: str, value: Any) -> str:
    """A register value as people read it."""
    if value is None or value == "":
        return t("dossier.empty")
    if path == "status" and isinstance(value, str):
        return status_label(value, t.lang)
    if path == "due_at" and isinstance(value, int):
        return formats.dt(value)
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return formats.iso_day(value)
    return str(value)


def conflict_marks(desk: Desk, t: Messages, view: dict[str, Any]) -> list[dict[str, Any]]:
    """Each conflict as pages show it: the field's label, every value as people read it (with
    who, where, when), and the value both sides started from."""
    out = []
    for c in view["conflicts"]:
        before = c.get("before")
        out.append({
            "field": c["field"], "label": field_label(desk, t, view["procedure_code"], c["field"]),
            "values": [{**v, "shown": show_value(t, c["field"], v["value"]),
                        "json": json.dumps(v["value"], ensure_ascii=False),
                        "where_label": t("where." + v["where"])} for v in c["values"]],
            "before": show_value(t, c["field"], before["value"] if before else None),
        })
    return out


Signer = Callable[[str | None], dict[str, str]]


async def signers(desk: Desk) -> Signer:
    """Who a username is on a form's signature line: the account's full name and position
    (users page), or nothing to print when they were not given or the actor is not a user here
    (the province's operators): the person writes their name by hand, not a login."""
    people = {u["username"]: u for u in await desk.accounts.users()}

    def signer(username: str | None) -> dict[str, str]:
        person = people.get(username or "") or {}
        return {"username": username or "", "name": person.get("full_name") or "",
                "position": person.get("position") or ""}

    return signer


def nav(request: web.Request, t: Messages) -> list[dict[str, Any]]:
    """The main navigation for the user's role, with access keys."""
    user = request.get(USER_KEY)
    role = user.role if user else ""
    path = request.path
    items = [{"href": "/", "label": t("nav.home"), "key": "h", "current": path == "/"}]
    if may(role, "intake"):
        items.append({"href": "/dossiers/new", "label": t("nav.new"), "key": "n",
                      "current": path.startswith("/dossiers/new")})
    items.append({"href": "/inbox", "label": t("nav.inbox"), "key": "i",
                  "current": path.startswith("/inbox")})
    items.append({"href": "/dossiers", "label": t("nav.list"), "key": "l",
                  "current": path == "/dossiers"})
    if may(role, "register"):
        items.append({"href": "/register", "label": t("nav.register"), "key": "",
                      "current": path == "/register"})
    if may(role, "statistics"):
        items.append({"href": "/stats", "label": t("nav.stats"), "key": "",
                      "current": path == "/stats"})
    if may(role, "users"):
        items.append({"href": "/users", "label": t("nav.users"), "key": "",
                      "current": path == "/users"})
    return items
