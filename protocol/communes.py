"""The province's commune list: versioned reference data of its administrative units.

Each unit has a GSO code (5 digits, never reused), a name, and — once it was merged into another
— `merged_into` with the date the merger takes `effective` (DOMAIN: units are effective-dated; a
merger moves one commune's dossiers under another's code from that date, reports before it stay
under the old unit). `resolve` follows mergers to the unit competent on a given day. The list also
carries the address of the hub's public pages (`public_url`), so an edge can print a tracking link
on its receipts without asking the hub. Parsing is pure: callers pass plain data (TOML, CSV or the
wire form) and get values or a ValidationError naming the bad row and field.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol.errors import ValidationError

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"^\d{5}$")
PROVINCE_RE = re.compile(r"^\d{2}$")
MAX_NAME = 100
MAX_URL = 300

# Sample data until the province imports its own list (`central-hub communes import`): a few units
# of Tuyên Quang (08) around the 2025 reorganisation, when Sinh Long (02227) joined Côn Lôn, which
# kept 02245 (DOMAIN.md). The other codes are illustrative (unverified against the GSO register).
DEFAULT_COMMUNES_DATA: dict[str, Any] = {
    "province": "08",
    "sample": True,
    "communes": [
        {"code": "02245", "name": "Xã Côn Lôn"},
        {"code": "02227", "name": "Xã Sinh Long", "merged_into": "02245",
         "effective": "2025-07-01"},
        {"code": "02221", "name": "Xã Na Hang"},
        {"code": "02230", "name": "Xã Thượng Lâm"},
        {"code": "02248", "name": "Xã Yên Hoa"},
        {"code": "02254", "name": "Xã Hồng Thái"},
    ],
}


@dataclass(frozen=True, slots=True)
class Commune:
    """One administrative unit of the province."""

    code: str
    name: str
    merged_into: str | None = None
    effective: date | None = None  # when `merged_into` takes effect (None: always was)

    def merged_on(self, day: date) -> bool:
        """True iff this unit no longer exists on `day` (merged into another)."""
        return self.merged_into is not None and (self.effective is None or self.effective <= day)


@dataclass(frozen=True, slots=True)
class Communes:
    """The province's units, and where its public pages are."""

    province: str = ""
    items: tuple[Commune, ...] = ()
    public_url: str = ""
    sample: bool = False

    def get(self, code: str) -> Commune | None:
        """The unit with this code, if listed."""
        return next((c for c in self.items if c.code == code), None)

    def resolve(self, code: str, day: date) -> str:
        """The unit competent on `day` for what was `code`'s: mergers followed (a code that is
        not listed, or not merged by then, is itself)."""
        seen = {code}
        unit = self.get(code)
        while unit is not None and unit.merged_on(day) and unit.merged_into not in seen:
            code = unit.merged_into or code
            seen.add(code)
            unit = self.get(code)
        return code

    def current(self, day: date) -> list[Commune]:
        """The units that exist on `day`, by name."""
        return sorted((c for c in self.items if not c.merged_on(day)), key=lambda c: c.name)

    def name_of(self, code: str) -> str:
        """The unit's name, or its code if it is not listed."""
        unit = self.get(code)
        return unit.name if unit is not None else code


def _day(raw: Any, where: str) -> date | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError as exc:
        raise ValidationError(f"{where}: {raw!r} is not a date YYYY-MM-DD", field=where) from exc


def check_public_url(raw: Any, where: str = "public_url") -> str:
    """An http(s) address without a trailing slash, or ""."""
    url = str(raw or "").strip().rstrip("/")
    if url and (not url.startswith(("http://", "https://")) or len(url) > MAX_URL
                or any(ch.isspace() for ch in url)):
        raise ValidationError(f"{where} must be an http:// or https:// address", field=where)
    return url


def parse_communes(data: dict[str, Any]) -> Communes:
    """Validate plain commune data `{"province", "public_url", "communes": [{"code", "name",
    "merged_into", "effective"}, …]}`: codes of 5 digits, listed once; a merger names a listed
    unit other than itself, and mergers never go round in a circle."""
    rows = data.get("communes", data.get("commune"))
    if not isinstance(rows, list) or not rows:
        raise ValidationError("communes: expected a non-empty list of {code, name}")
    province = str(data.get("province") or "").strip()
    if province and not PROVINCE_RE.fullmatch(province):
        raise ValidationError("province must be 2 digits (GSO code, e.g. 08)", field="province")
    items: dict[str, Commune] = {}
    for i, row in enumerate(rows):
        where = f"communes[{i}]"
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: expected a table with code and name")
        code = str(row.get("code") or "").strip()
        if not CODE_RE.fullmatch(code):
            raise ValidationError(f"{where}.code must be 5 digits (GSO code, e.g. 02245)",
                                  field=f"{where}.code")
        if code in items:
            raise ValidationError(f"{where}.code {code} is listed twice", field=f"{where}.code")
        name = " ".join(str(row.get("name") or "").split())
        if not name or len(name) > MAX_NAME:
            raise ValidationError(f"{where}.name is required (at most {MAX_NAME} characters)",
                                  field=f"{where}.name")
        merged = str(row.get("merged_into") or "").strip() or None
        if merged is not None and (not CODE_RE.fullmatch(merged) or merged == code):
            raise ValidationError(f"{where}.merged_into must be the code of another unit",
                                  field=f"{where}.merged_into")
        items[code] = Commune(code, name, merged, _day(row.get("effective"), f"{where}.effective"))
    for i, unit in enumerate(items.values()):
        if unit.merged_into is not None and unit.merged_into not in items:
            raise ValidationError(f"communes[{i}].merged_into {unit.merged_into} is not in the "
                                  "list", field=f"communes[{i}].merged_into")
        seen, at = {unit.code}, unit.merged_into
        while at is not None:
            if at in seen:
                raise ValidationError(f"communes[{i}]: mergers of {unit.code} go round in a "
                                      "circle", field=f"communes[{i}].merged_into")
            seen.add(at)
            at = items[at].merged_into
    return Communes(province, tuple(items.values()), check_public_url(data.get("public_url")),
                    bool(data.get("sample", False)))


def communes_to_plain(communes: Communes) -> dict[str, Any]:
    """The wire/storage form of a commune list (what `parse_communes` reads)."""
    rows = []
    for c in communes.items:
        row: dict[str, Any] = {"code": c.code, "name": c.name}
        if c.merged_into is not None:
            row["merged_into"] = c.merged_into
        if c.effective is not None:
            row["effective"] = c.effective.isoformat()
        rows.append(row)
    out: dict[str, Any] = {"province": communes.province, "communes": rows,
                           "public_url": communes.public_url}
    if communes.sample:
        out["sample"] = True
    return out


@dataclass(frozen=True, slots=True)
class Mergers:
    """The mergers the hub carried out (`central-hub commune merge`), old code → successor, and
    the day each takes effect for statistics. Scope follows them at once: a node, a dossier or an
    event under an old code is the successor's (`unit_of`); the commune list published with them
    says the same to people, but a list imported with `merged_into` alone moves nothing (the
    sample list does, and two of its communes stay apart until someone merges them)."""

    into: tuple[tuple[str, str], ...] = ()  # (old code, the code it merged into), sorted
    effective: tuple[tuple[str, date], ...] = ()  # (old code, day it counts under the new unit)

    @classmethod
    def of(cls, rows: Any) -> Mergers:
        """From (old, into, effective day or None) rows."""
        into, days = {}, {}
        for old, new, day in rows:
            into[str(old)] = str(new)
            if day is not None:
                days[str(old)] = day if isinstance(day, date) else date.fromisoformat(str(day))
        return cls(tuple(sorted(into.items())), tuple(sorted(days.items())))

    def unit_of(self, code: str) -> str:
        """The unit `code`'s dossiers and nodes belong to now (mergers followed; itself if it
        was never merged)."""
        into, seen = dict(self.into), {code}
        while code in into and into[code] not in seen:
            code = into[code]
            seen.add(code)
        return code

    def units_of(self, code: str) -> tuple[str, ...]:
        """Every code whose dossiers are `code`'s unit's now: its own first, then the merged."""
        unit = self.unit_of(code)
        merged = sorted(old for old, _ in self.into if self.unit_of(old) == unit)
        return (unit, *merged)

    def unit_on(self, code: str, day: date) -> str:
        """The unit `code` counts under in statistics of a period starting on `day`: the
        successor once the merger is effective, the old unit before (DOMAIN: reports before a
        merger stay under the old unit)."""
        into, days, seen = dict(self.into), dict(self.effective), {code}
        while code in into and into[code] not in seen and days.get(code, day) <= day:
            code = into[code]
            seen.add(code)
        return code


def merge_into(communes: Communes, into: str, name: str, merged: list[str], effective: date
               ) -> Communes:
    """The commune list once `merged` joined `into` (added with `name`, or renamed to it) on
    `effective`; a unit already merged into `into` stays as it is (the merger is idempotent).
    ValidationError for a code that is not 5 digits, unlisted, merged elsewhere, or `into`."""
    if not CODE_RE.fullmatch(into):
        raise ValidationError(f"--into {into!r} is not a commune code (5 digits)", field="into")
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"--name is required (at most {MAX_NAME} characters)", field="name")
    if not merged:
        raise ValidationError("--from names no commune to merge", field="from")
    target = communes.get(into)
    if target is not None and target.merged_on(date.max):
        raise ValidationError(f"{into} was itself merged into {target.merged_into}: merge into "
                              "that unit", field="into")
    items = {c.code: c for c in communes.items}
    for code in merged:
        unit = items.get(code)
        if not CODE_RE.fullmatch(code) or code == into:
            raise ValidationError(f"--from {code!r} must be the code of another commune",
                                  field="from")
        if unit is None:
            raise ValidationError(f"--from {code} is not in the province's commune list "
                                  "(central-hub communes import)", field="from")
        if unit.merged_into not in (None, into):
            raise ValidationError(f"{code} was already merged into {unit.merged_into}",
                                  field="from")
        if unit.merged_into is None:
            items[code] = Commune(code, unit.name, into, effective)
    items[into] = Commune(into, name)
    plain = communes_to_plain(Communes(communes.province, tuple(items.values()),
                                       communes.public_url, communes.sample))
    return parse_communes(plain)  # the same checks as an imported list (no circle)


DEFAULT_COMMUNES = parse_communes(DEFAULT_COMMUNES_DATA)
