"""Public tracking: the per-dossier tracking secret (`check`) and what a citizen may see of a dossier.

The check is 50 random bits written as 10 characters of Crockford's base32 (no I, L, O or U, so it
reads aloud and types on a phone), made where the dossier is created and carried in its create
event (`track`). So every node that holds the dossier knows it without a round trip — an edge
offline for days still prints it on the receipt — and it survives restores, mergers and imports
with the log. Those nodes hold the applicant's data anyway, so knowing the check gives them
nothing new; nobody else learns it except from the receipt or the submission's answer
(docs/portal.md: the trade-off against an HMAC only the hub could compute).

What tracking shows is fixed here and nothing else: the code, the status and its label, the
appointment, and what the citizen must do (the documents asked for, or why it was refused).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from protocol import lifecycle
from protocol.calendar import iso
from protocol.events import Event
from protocol.merge import DossierState

log = logging.getLogger(__name__)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CHECK_LEN = 10
CHECK_BITS = 5 * CHECK_LEN
RAND_BYTES = 7  # 56 bits drawn, 50 kept
_READ_AS = {"O": "0", "I": "1", "L": "1"}
PUBLIC_KEYS = ("code", "status", "status_label", "due_at", "missing")
TRACK_PATH = "/track"


def make_check(rand: bytes) -> str:
    """A new tracking secret from random bytes (passed in: no I/O here)."""
    if len(rand) < RAND_BYTES:
        raise ValueError(f"a tracking check needs {RAND_BYTES} random bytes")
    n = int.from_bytes(rand[:RAND_BYTES], "big") >> (8 * RAND_BYTES - CHECK_BITS)
    return "".join(ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(CHECK_LEN)))


def is_check(value: Any) -> bool:
    """True iff `value` is a check as stored (10 characters of the alphabet)."""
    return isinstance(value, str) and len(value) == CHECK_LEN and all(c in ALPHABET for c in value)


def normalize_check(text: Any) -> str | None:
    """A check as typed (any case, spaces and dashes, O for 0, I or L for 1), or None."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    raw = "".join(ch for ch in text.upper() if ch not in " -\t")
    value = "".join(_READ_AS.get(ch, ch) for ch in raw)
    return value if is_check(value) else None


def display_check(check: str) -> str:
    """The check as printed: two groups of five (`7K3QD-M2X9F`)."""
    return f"{check[:5]}-{check[5:]}"


def check_digest(check: str) -> bytes:
    """What the hub stores and compares (32 bytes whatever was typed: compared in constant
    time, the length of a guess tells nothing)."""
    return hashlib.sha256(b"commune-sync track v1\0" + check.encode()).digest()


def track_link(public_url: str, code: str, check: str) -> str:
    """The address a receipt's QR code holds: the hub's tracking page with code and check."""
    query = urlencode({"code": code, "check": display_check(check)})
    return f"{public_url.rstrip('/')}{TRACK_PATH}?{query}"


def code_in_link(text: str) -> str:
    """The dossier code in a tracking link (what a barcode scanner types from a receipt's QR
    code into a search box); any other text as it is."""
    if TRACK_PATH + "?" not in text:
        return text
    codes = parse_qs(urlsplit(text.strip()).query).get("code")
    return codes[0] if codes else text


def status_label(status: str, lang: str = "vi") -> str:
    """The status's name in `lang` (Vietnamese unless "en")."""
    if status not in lifecycle.STATUSES:
        return status
    _, vi, en = lifecycle.STATUSES[status]
    return en if lang == "en" else vi


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def missing(state: DossierState, events: list[Event]) -> list[str]:
    """What the citizen is asked for now: the documents of the latest request to supplement
    while one is awaited, the reasons of a refusal once refused (form 03); else nothing."""
    status = state.value("status", "submitted")
    if status not in ("supplement_requested", "refused"):
        return []
    latest: tuple[int, str, int] | None = None
    found: list[str] = []
    for event in events:
        payload = event.payload
        if event.kind == "transition" and payload.get("to") == status:
            text: Any = payload.get("note")
        elif event.kind == "create" and status == "refused" and payload.get("status") == status:
            text = payload.get("reasons")
        else:
            continue
        key = (event.hlc, event.origin, event.seq)
        if latest is None or key > latest:
            latest, found = key, _lines(text)
    return found


def public_status(state: DossierState, events: list[Event], lang: str = "vi") -> dict[str, Any]:
    """Everything tracking may show of a dossier (exactly `PUBLIC_KEYS`)."""
    header = state.header or {}
    status = state.value("status", "submitted")
    due = state.value("due_at")
    return {
        "code": header.get("code"),
        "status": status,
        "status_label": status_label(status, lang),
        "due_at": iso(due) if isinstance(due, int) else None,
        "missing": missing(state, events),
    }
