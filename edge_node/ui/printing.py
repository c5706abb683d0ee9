"""Printed forms (Circular 01/2018/TT-VPCP): 01, the receipt and appointment slip, and 02, the
request to supplement, each on A4 in two copies (one kept, one for the citizen). They are printed in
Vietnamese, the legal language, whatever the screen's language; the QR code is drawn here as SVG.
On screen, a field in conflict is outlined and a notice above the sheets says what its values are
(the paper itself prints clean)."""

from __future__ import annotations

import logging
from typing import Any

import segno
from aiohttp import web
from markupsafe import Markup

from edge_node.ui.desk import Desk, conflict_marks, desk_of, procedure_name
from edge_node.ui.history import last_supplement_request
from edge_node.ui.intake import limit_text
from protocol.errors import NotFound
from service.ui import formats

log = logging.getLogger(__name__)

COPIES = ("copy.kept", "copy.citizen")


def qr_svg(text: str, label: str) -> Markup:
    """A QR code of `text` as inline SVG markup (no external image, no script)."""
    code = segno.make(text, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, title=label, dark="#000", light=None,
                          svgclass="segno qr")
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))


def _when_parts(iso: str | None) -> dict[str, str]:
    moment = formats.moment(iso)
    if moment is None:
        return {"hour": "…", "minute": "…", "day": "…", "month": "…", "year": "…"}
    return {"hour": moment.strftime("%H"), "minute": moment.strftime("%M"),
            "day": moment.strftime("%d"), "month": moment.strftime("%m"),
            "year": moment.strftime("%Y")}


def _common(request: web.Request, desk: Desk, view: dict[str, Any]) -> dict[str, Any]:
    proc = desk.procedure(view["procedure_code"])
    creator = (view.get("created_by") or {}).get("actor") or ""
    conflicts = conflict_marks(desk, desk.renderer.t(request), view)
    return {
        "conflicts": conflicts, "conflicted": {c["field"] for c in conflicts},
        "d": view, "tv": desk.renderer.messages["vi"], "agency": desk.agency_name(),
        "commune_name": desk.place_name(),
        "procedure": procedure_name(proc, view["procedure_code"], "vi"),
        "limit": limit_text(desk, proc, "vi") if proc else "", "creator": creator,
        "qr": qr_svg(view["code"] or view["id"], f"Mã hồ sơ {view['code']}"),
        "copies": COPIES,
    }


async def receipt(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/receipt: form 01, ready to print."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    return await desk.renderer.page(
        request, "print_receipt.html", **_common(request, desk, view),
        documents=view["attachments"],
        received=_when_parts(view["received_at"]), due=_when_parts(view["due_at"]))


async def supplement(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/supplement: form 02, what the citizen must bring and why."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    entry = last_supplement_request(view)
    if entry is None:
        raise NotFound("this dossier has no request to supplement")
    return await desk.renderer.page(
        request, "print_supplement.html", **_common(request, desk, view), request_entry=entry,
        requested=_when_parts(entry.get("at")),
        items=[line.strip() for line in str(entry.get("note") or "").splitlines() if line.strip()])


def routes() -> list[web.RouteDef]:
    """Routes of the printed forms."""
    return [web.get("/dossiers/{id}/receipt", receipt),
            web.get("/dossiers/{id}/supplement", supplement)]
