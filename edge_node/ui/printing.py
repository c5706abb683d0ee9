"""Printed forms (Circular 01/2018/TT-VPCP): 01, the receipt and appointment slip, and 02, the
request to supplement, each on A4 in two copies (one kept, one for the citizen). They are printed in
Vietnamese, the legal language, whatever the screen's language; the QR code is drawn here as SVG.
On screen, a field in conflict is outlined and a notice above the sheets says what its values are
(the paper itself prints clean)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.ui.desk import Desk, conflict_marks, desk_of, procedure_name
from edge_node.ui.history import last_supplement_request
from edge_node.ui.intake import limit_text
from protocol.errors import NotFound
from protocol.lifecycle import TIME_LIMIT_STARTS
from protocol.tracking import display_check, track_link
from service.ui import formats
from service.ui.qr import qr_svg

log = logging.getLogger(__name__)

COPIES = ("copy.kept", "copy.citizen")


def _when_parts(iso: str | None) -> dict[str, str]:
    moment = formats.moment(iso)
    if moment is None:
        return {"hour": "…", "minute": "…", "day": "…", "month": "…", "year": "…"}
    return {"hour": moment.strftime("%H"), "minute": moment.strftime("%M"),
            "day": moment.strftime("%d"), "month": moment.strftime("%m"),
            "year": moment.strftime("%Y")}


async def _tracking(desk: Desk, view: dict[str, Any]) -> tuple[str | None, str | None]:
    """The dossier's tracking check as printed, and the hub's tracking link for its QR code
    (None: a dossier from before tracking, or a hub that has not told its public address)."""
    events = await desk.store.history(view["id"])
    track = next((e.payload.get("track") for e in events if e.kind == "create"), None)
    if not isinstance(track, str) or not view["code"]:
        return None, None
    url = desk.store.communes.public_url
    return display_check(track), (track_link(url, view["code"], track) if url else None)


async def _common(request: web.Request, desk: Desk, view: dict[str, Any]) -> dict[str, Any]:
    check, link = await _tracking(desk, view)
    proc = desk.procedure(view["procedure_code"])
    creator = (view.get("created_by") or {}).get("actor") or ""
    conflicts = conflict_marks(desk, desk.renderer.t(request), view)
    return {
        "conflicts": conflicts, "conflicted": {c["field"] for c in conflicts},
        "d": view, "tv": desk.renderer.messages["vi"], "agency": desk.agency_name(),
        "commune_name": desk.place_name(),
        "procedure": procedure_name(proc, view["procedure_code"], "vi"),
        "limit": limit_text(desk, proc, "vi") if proc else "", "creator": creator,
        "qr": qr_svg(link or view["code"] or view["id"], f"Mã hồ sơ {view['code']}"),
        "track_check": check, "track_url": link,
        "copies": COPIES,
    }


async def receipt(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/receipt: form 01, ready to print."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    filed_online = online_acceptance(view)
    return await desk.renderer.page(
        request, "print_receipt.html", **await _common(request, desk, view),
        documents=view["attachments"], filed=_when_parts(view["received_at"]),
        received=_when_parts(filed_online or view["received_at"]),
        online=filed_online is not None, due=_when_parts(view["due_at"]))


def online_acceptance(view: dict[str, Any]) -> str | None:
    """When a dossier filed online was accepted — its receipt's time, from which its time limit
    runs (the start of its processing, if a supplement was asked for first) — or None for a
    dossier received at a desk or not accepted yet."""
    if view.get("channel") != "online":
        return None
    return next((h["at"] for h in view.get("history", []) if h.get("kind") == "transition"
                 and h.get("to") in TIME_LIMIT_STARTS), None)


async def supplement(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/supplement: form 02, what the citizen must bring and why."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    entry = last_supplement_request(view)
    if entry is None:
        raise NotFound("this dossier has no request to supplement")
    return await desk.renderer.page(
        request, "print_supplement.html", **await _common(request, desk, view), request_entry=entry,
        requested=_when_parts(entry.get("at")),
        items=[line.strip() for line in str(entry.get("note") or "").splitlines() if line.strip()])


def routes() -> list[web.RouteDef]:
    """Routes of the printed forms."""
    return [web.get("/dossiers/{id}/receipt", receipt),
            web.get("/dossiers/{id}/supplement", supplement)]
