"""Reference data the hub publishes to every commune: the procedure catalogue, the holiday calendar
and the province's commune list (protocol/communes.py).

Each kind is versioned; an edge tells the hub which versions it holds and receives newer ones in
the same exchange as events. Parsing here is pure: callers pass text (TOML or CSV) and get validated
values or a ValidationError that names the bad row and field.
"""

from __future__ import annotations

import csv
import io
import logging
import tomllib
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol.catalogue import DEFAULT_CATALOGUE_DATA, Catalogue, parse_catalogue
from protocol.communes import (
    DEFAULT_COMMUNES_DATA,
    Communes,
    check_public_url,
    communes_to_plain,
    parse_communes,
)
from protocol.errors import RemoteProtocolError, ValidationError

log = logging.getLogger(__name__)

KINDS = ("procedures", "holidays", "communes")

# Public holidays of Vietnam (Labour Code art. 112) as a default until the province publishes its
# own calendar with `central-hub holidays import`. Dates of Tết and of the National Day bridge are
# decided each year by the government (unverified here); weekends inside a break are listed too.
DEFAULT_HOLIDAYS_DATA: dict[str, Any] = {"holidays": [
    {"date": "2026-01-01", "name": "Tết Dương lịch"},
    *({"date": f"2026-02-{d:02d}", "name": "Tết Nguyên đán"} for d in range(14, 23)),
    {"date": "2026-04-26", "name": "Giỗ Tổ Hùng Vương"},
    {"date": "2026-04-27", "name": "Nghỉ bù Giỗ Tổ Hùng Vương"},
    {"date": "2026-04-30", "name": "Ngày Chiến thắng"},
    {"date": "2026-05-01", "name": "Quốc tế Lao động"},
    {"date": "2026-09-01", "name": "Quốc khánh"},
    {"date": "2026-09-02", "name": "Quốc khánh"},
    {"date": "2027-01-01", "name": "Tết Dương lịch"},
    *({"date": f"2027-02-{d:02d}", "name": "Tết Nguyên đán"} for d in range(5, 12)),
    {"date": "2027-04-16", "name": "Giỗ Tổ Hùng Vương"},
    {"date": "2027-04-30", "name": "Ngày Chiến thắng"},
    {"date": "2027-05-01", "name": "Quốc tế Lao động"},
    {"date": "2027-05-03", "name": "Nghỉ bù Quốc tế Lao động"},
    {"date": "2027-09-02", "name": "Quốc khánh"},
    {"date": "2027-09-03", "name": "Quốc khánh"},
]}


@dataclass(frozen=True, slots=True)
class Holiday:
    """One day off."""

    day: date
    name: str


def parse_holidays(data: dict[str, Any]) -> list[Holiday]:
    """Validate plain holiday data `{"holidays": [{"date", "name"}, …]}`."""
    rows = data.get("holidays", data.get("holiday"))
    if not isinstance(rows, list) or not rows:
        raise ValidationError("holidays: expected a non-empty list of {date, name}")
    out: dict[date, Holiday] = {}
    for i, row in enumerate(rows):
        where = f"holidays[{i}]"
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: expected a table with date and name")
        raw = row.get("date")
        try:
            day = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
        except ValueError as exc:
            raise ValidationError(f"{where}.date: {raw!r} is not a date YYYY-MM-DD",
                                  field=f"{where}.date") from exc
        name = row.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{where}.name is required", field=f"{where}.name")
        out[day] = Holiday(day, name.strip())
    return sorted(out.values(), key=lambda h: h.day)


def holidays_to_plain(holidays: list[Holiday]) -> dict[str, Any]:
    """The wire/storage form of a holiday list."""
    return {"holidays": [{"date": h.day.isoformat(), "name": h.name} for h in holidays]}


def catalogue_to_plain(catalogue: Catalogue) -> dict[str, Any]:
    """The wire/storage form of a catalogue (what `parse_catalogue` reads)."""
    return {"version": catalogue.version, "procedures": [
        {"code": p.code, "name_vi": p.name_vi, "name_en": p.name_en, "limit_days": p.limit_days,
         "same_day_cutoff": p.same_day_cutoff,
         "fields": [{"name": f.name, "label_vi": f.label_vi, "label_en": f.label_en,
                     "type": f.type, "required": f.required, "choices": list(f.choices),
                     "key": f.key, "searchable": f.searchable}
                    for f in p.fields]}
        for p in catalogue.procedures]}


def check_refdata(kind: str, data: Any) -> None:
    """Raise RemoteProtocolError unless `data` is valid reference data of `kind`."""
    try:
        if not isinstance(data, dict):
            raise ValidationError("reference data must be a map")
        if kind == "procedures":
            parse_catalogue(data)
        elif kind == "holidays":
            parse_holidays(data)
        elif kind == "communes":
            parse_communes(data)
    except ValidationError as exc:
        raise RemoteProtocolError(f"bad reference data {kind}: {exc.message}") from exc


def _table(text: str, fmt: str) -> list[dict[str, Any]] | dict[str, Any]:
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"not valid TOML: {exc}") from exc
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ValidationError("CSV file has no header row")
        return [dict(r) for r in reader]
    raise ValidationError(f"unknown format {fmt!r}: use a .toml or .csv file")


def import_holidays(text: str, fmt: str) -> list[Holiday]:
    """Parse a holiday file (TOML `[[holidays]] date=… name=…`, or CSV `date,name`)."""
    table = _table(text, fmt)
    return parse_holidays({"holidays": table} if isinstance(table, list) else table)


def import_procedures(text: str, fmt: str, current: Catalogue) -> Catalogue:
    """Parse a procedure file (TOML like the default catalogue, or CSV
    `code,name_vi,name_en,limit_days,same_day_cutoff` keeping the form fields of known codes)."""
    table = _table(text, fmt)
    if isinstance(table, dict):
        data = dict(table)
    else:
        known = {p["code"]: p for p in catalogue_to_plain(current)["procedures"]}
        procs = []
        for i, row in enumerate(table):
            try:
                limit = int(str(row.get("limit_days", "")).strip())
            except ValueError as exc:
                raise ValidationError(f"row {i + 2}: limit_days must be a whole number",
                                      field="limit_days") from exc
            code = str(row.get("code", "")).strip()
            cutoff = str(row.get("same_day_cutoff") or "").strip() or None
            procs.append({"code": code, "name_vi": str(row.get("name_vi", "")).strip() or code,
                          "name_en": str(row.get("name_en", "")).strip() or code,
                          "limit_days": limit, "same_day_cutoff": cutoff,
                          "fields": known.get(code, {}).get("fields", [])})
        data = {"procedures": procs}
    data["version"] = current.version + 1
    catalogue = parse_catalogue(data)
    if not catalogue.procedures:
        raise ValidationError("the file lists no procedures")
    return catalogue


def import_communes(text: str, fmt: str, public_url: str) -> Communes:
    """Parse a commune list (TOML `province = "08"` and `[[communes]] code=… name=…
    merged_into=… effective=…`, or CSV `code,name,merged_into,effective`); the hub's
    `public_url` goes with it to the edges (for the tracking link on receipts)."""
    table = _table(text, fmt)
    data: dict[str, Any] = dict(table) if isinstance(table, dict) else {"communes": table}
    data["public_url"] = check_public_url(public_url)
    data.pop("sample", None)  # the province's own list is not sample data
    return parse_communes(data)


def with_public_url(data: dict[str, Any], public_url: str) -> dict[str, Any] | None:
    """Commune data carrying `public_url`, or None if it already does (nothing to publish)."""
    communes = parse_communes(data)
    url = check_public_url(public_url)
    if communes.public_url == url:
        return None
    return {**communes_to_plain(communes), "public_url": url}


DEFAULT_HOLIDAYS = parse_holidays(DEFAULT_HOLIDAYS_DATA)
DEFAULT_REFDATA: dict[str, dict[str, Any]] = {
    "procedures": DEFAULT_CATALOGUE_DATA,
    "holidays": DEFAULT_HOLIDAYS_DATA,
    "communes": DEFAULT_COMMUNES_DATA,
}
