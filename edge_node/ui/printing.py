"""Printed forms (Circular 01/2018/TT-VPCP): 01, the receipt and appointment slip; 02, the request
to supplement with its deadline; 03, the refusal at the counter; 04, the apology with a new
appointment — each on A4 in two copies (one kept, one for the citizen) — and 05, the processing
control slip (every step: who handed the dossier to whom, when, and the result's timeliness), one
copy that stays with the file. They are printed in Vietnamese, the legal language, whatever the
screen's language; the QR code is drawn here as SVG. On screen, a field in conflict is outlined and
a notice above the sheets says what its values are (the paper itself prints clean)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.ui.desk import Desk, conflict_marks, desk_of, procedure_name, signers, status_label
from edge_node.ui.history import last_supplement_request
from edge_node.ui.intake import limit_text
from protocol import stats
from protocol.errors import NotFound
from protocol.lifecycle import TIME_LIMIT_STARTS
from protocol.tracking import display_check, track_link
from service.ui import formats
from service.ui.qr import qr_svg

log = logging.getLogger(__name__)

COPIES = ("copy.kept", "copy.citizen")
ONE_COPY = ("",)
# Never given a receipt: not yet accepted, or refused (form 03 instead).
RECEIPTLESS = frozenset({"submitted", "refused"})


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
        "copies": COPIES, "status_vi": lambda status: status_label(status, "vi"),
        "signer": await signers(desk),
        "elsewhere": _units(desk, view),
    }


def _units(desk: Desk, view: dict[str, Any]) -> dict[str, str] | None:
    """Both units' names when the dossier was taken in at one commune's desk for another
    (Decree 118/2025: the receipt names both), else None."""
    received, competent = view.get("received_by"), view.get("commune")
    if not received or not competent or received == competent or received == "online":
        return None
    names = desk.store.communes
    return {"received": names.name_of(str(received)), "competent": names.name_of(str(competent))}


async def _received(request: web.Request, form: str) -> tuple[Desk, dict[str, Any]]:
    """The dossier of a form only a received dossier has (01, 05): NotFound for one refused or
    not yet accepted."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    if view["status"] in RECEIPTLESS:
        raise NotFound(f"a {view['status']} dossier has no {form}")
    return desk, view


async def receipt(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/receipt: form 01, ready to print (never for a refused dossier)."""
    desk, view = await _received(request, "receipt")
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
        items=[line.strip() for line in str(entry.get("note") or "").splitlines() if line.strip()],
        deadline=formats.iso_day(entry.get("supplement_by")))


async def refusal(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/refusal: form 03, why the dossier was not received."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    if view.get("refusal") is None:
        raise NotFound("this dossier was not refused")
    return await desk.renderer.page(
        request, "print_refusal.html", **await _common(request, desk, view), refusal=view["refusal"],
        refused=_when_parts(view["refusal"]["at"]), reasons=view["refusal"]["reasons"].splitlines())


async def apology(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/apology: form 04, the latest apology and its new appointment."""
    desk = desk_of(request)
    view = await desk.store.view(request.match_info["id"])
    if not view.get("apologies"):
        raise NotFound("this dossier has no apology")
    latest = view["apologies"][-1]
    return await desk.renderer.page(
        request, "print_apology.html", **await _common(request, desk, view), apology=latest,
        issued=_when_parts(latest["at"]), received=_when_parts(view["received_at"]),
        due=_when_parts(view["due_at"]), new_due=_when_parts(latest["new_due"]))


def control_steps(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Form 05's rows: each move, who had the dossier before and who took it, when, and for the
    result (the move to resolved) whether it was early, on time or late."""
    due_ms = _ms(view["due_at"])
    steps = []
    holder = (view.get("created_by") or {}).get("actor") or ""
    for entry in view.get("history", []):
        if entry.get("kind") != "transition":
            continue
        result = None
        if entry.get("to") == "resolved" and (at_ms := _ms(entry.get("at"))) is not None:
            result = stats.timeliness(at_ms, due_ms)
        steps.append({"from": entry.get("from"), "to": entry.get("to"), "giver": holder,
                      "taker": entry.get("actor") or "", "at": _when_parts(entry.get("at")),
                      "where": entry.get("where"), "result": result,
                      "note": entry.get("note") or ""})
        holder = entry.get("actor") or holder
    return steps


def _ms(iso: str | None) -> int | None:
    moment = formats.moment(iso)
    return int(moment.timestamp() * 1000) if moment else None


async def control(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/control: form 05, the processing control slip."""
    desk, view = await _received(request, "processing to control")
    return await desk.renderer.page(
        request, "print_control.html", **{**await _common(request, desk, view), "copies": ONE_COPY},
        received=_when_parts(view["received_at"]), due=_when_parts(view["due_at"]),
        steps=control_steps(view), print_hint="print.hint_one")


def routes() -> list[web.RouteDef]:
    """Routes of the printed forms."""
    return [web.get("/dossiers/{id}/receipt", receipt),
            web.get("/dossiers/{id}/supplement", supplement),
            web.get("/dossiers/{id}/refusal", refusal),
            web.get("/dossiers/{id}/apology", apology),
            web.get("/dossiers/{id}/control", control)]
