"""How times and dates look on screen and on paper: Vietnam's time zone, day/month/year, 24-hour clock."""

from __future__ import annotations

import logging
from datetime import date, datetime

from protocol.calendar import VN_TZ, local

log = logging.getLogger(__name__)


def moment(value: str | int | None) -> datetime | None:
    """An ISO 8601 string (as in dossier views) or epoch ms as an aware time in Vietnam."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return local(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=VN_TZ)
    return parsed.astimezone(VN_TZ)


def dt(value: str | int | None) -> str:
    """`05/01/2026 17:00`, or an empty string."""
    m = moment(value)
    return m.strftime("%d/%m/%Y %H:%M") if m else ""


def day(value: str | int | date | None) -> str:
    """`05/01/2026`, or an empty string."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    m = moment(value if not isinstance(value, date) else value.isoformat())
    return m.strftime("%d/%m/%Y") if m else ""


def hm(value: str | int | None) -> str:
    """`17:00`, or an empty string."""
    m = moment(value)
    return m.strftime("%H:%M") if m else ""


def iso_day(value: str | None) -> str:
    """A stored `YYYY-MM-DD` form value shown as `dd/mm/yyyy` (anything else unchanged)."""
    if not value:
        return ""
    try:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


def parse_day(text: str) -> str | None:
    """A date typed as `dd/mm/yyyy`, `d/m/yyyy`, `dd-mm-yyyy` or `yyyy-mm-dd` → `YYYY-MM-DD`;
    None if it is not a real date."""
    text = text.strip().replace(".", "/").replace("-", "/")
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    if len(parts[0]) == 4:
        y, m, d = parts
    else:
        d, m, y = parts
    if len(y) != 4:
        return None
    try:
        return date(int(y), int(m), int(d)).isoformat()
    except ValueError:
        return None
