"""The intake form: read what the clerk typed, check it with messages in their language, and build
the create request of CONTRACT §7. The protocol checks it again when it is stored (the authority);
this module only makes the answer friendly, field by field, before anything is saved.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from protocol.catalogue import FormField, Procedure
from protocol.forms import MAX_REASONS
from service.ui.formats import parse_day

log = logging.getLogger(__name__)

APPLICANT_FIELDS = ("full_name", "citizen_id", "phone", "address")
APPLICANT_REQUIRED = frozenset({"full_name", "citizen_id"})
APPLICANT_MAX = {"full_name": 100, "citizen_id": 12, "phone": 15, "address": 300}
PHONE_RE = re.compile(r"^(\+84|0)\d{9,10}$")
PHONE_JUNK = re.compile(r"[\s.\-()]")

Error = tuple[str, dict[str, Any]]


@dataclass
class IntakeInput:
    """A checked intake form: the API body, or the errors by input name."""

    body: dict[str, Any]
    errors: dict[str, Error] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True iff nothing is wrong."""
        return not self.errors


def check_citizen_id(value: str, today: date) -> Error | None:
    """The 12-digit personal ID: province of registration 001–096, century/sex digit, birth year."""
    if not re.fullmatch(r"\d{12}", value):
        return ("v.cid_digits", {})
    if not 1 <= int(value[:3]) <= 96:
        return ("v.cid_province", {})
    year = 1900 + 100 * (int(value[3]) // 2) + int(value[4:6])
    if year > today.year:
        return ("v.cid_century", {})
    return None


def check_applicant(raw: Mapping[str, str], today: date,
                    errors: dict[str, Error]) -> dict[str, str]:
    """The applicant block, normalized; problems go into `errors` under `applicant.<key>`."""
    out: dict[str, str] = {}
    for key in APPLICANT_FIELDS:
        name = f"applicant.{key}"
        value = " ".join(str(raw.get(name, "")).split())
        if key == "citizen_id":
            value = value.replace(" ", "")
        elif key == "phone":
            value = PHONE_JUNK.sub("", value)
        out[key] = value
        if not value:
            if key in APPLICANT_REQUIRED:
                errors[name] = ("v.required", {})
            continue
        if len(value) > APPLICANT_MAX[key] and key != "citizen_id":
            errors[name] = ("v.too_long", {"max": APPLICANT_MAX[key]})
        elif key == "citizen_id" and (problem := check_citizen_id(value, today)):
            errors[name] = problem
        elif key == "phone" and not PHONE_RE.match(value):
            errors[name] = ("v.phone", {})
    return out


def check_field(spec: FormField, raw: str, today: date) -> tuple[Any, Error | None]:
    """One catalogue field: (value for the API, problem or None)."""
    value = " ".join(raw.split()) if spec.type != "text" else raw.strip()
    if not value:
        return None, (("v.required", {}) if spec.required else None)
    if len(value) > spec.max_len:
        return value, ("v.too_long", {"max": spec.max_len})
    if spec.type == "date":
        iso = parse_day(value)
        if iso is None:
            return value, ("v.date", {})
        if date.fromisoformat(iso) > today:
            return iso, ("v.date_future", {})
        return iso, None
    if spec.type == "year":
        if not re.fullmatch(r"\d{4}", value) or not 1900 <= int(value) <= today.year:
            return value, ("v.year", {"max": today.year})
        return value, None
    if spec.type == "int":
        if not re.fullmatch(r"\d{1,6}", value):
            return value, ("v.int", {})
        return int(value), None
    if spec.type == "choice" and value not in spec.choices:
        return value, ("v.choice", {})
    if spec.name.endswith("citizen_id"):
        return value, check_citizen_id(value.replace(" ", ""), today)
    return value, None


def check_intake(procedure: Procedure, raw: Mapping[str, str], today: date, *,
                 refusing: bool = False) -> IntakeInput:
    """Check a whole intake form for `procedure`. `refusing` (form 03): a refusal is often for
    an incomplete form, so only the applicant's name and the reasons are required; whatever
    else was typed must still be valid."""
    errors: dict[str, Error] = {}
    applicant = check_applicant(raw, today, errors)
    fields: dict[str, Any] = {}
    for spec in procedure.fields:
        value, problem = check_field(spec, str(raw.get(f"fields.{spec.name}", "")), today)
        if problem:
            errors[f"fields.{spec.name}"] = problem
        if value is not None:
            fields[spec.name] = value
    body: dict[str, Any] = {"procedure_code": procedure.code, "applicant": applicant,
                            "fields": fields}
    if refusing:
        errors = {k: e for k, e in errors.items()
                  if e[0] != "v.required" or k == "applicant.full_name"}
        reasons = "\n".join(" ".join(line.split())
                            for line in str(raw.get("refuse_reasons", "")).splitlines()
                            if line.strip())
        if not reasons:
            errors["refuse_reasons"] = ("v.required", {})
        elif len(reasons) > MAX_REASONS:
            errors["refuse_reasons"] = ("v.too_long", {"max": MAX_REASONS})
        body["refuse"] = {"reasons": reasons}
    return IntakeInput(body, errors)


def check_edit(procedure: Procedure, raw: Mapping[str, str], current: Mapping[str, Any],
               today: date) -> IntakeInput:
    """Check an edit of a dossier: the same rules; `body["set"]` holds only what changed."""
    checked = check_intake(procedure, raw, today)
    changed: dict[str, Any] = {}
    for key, value in checked.body["applicant"].items():
        if value != (current.get("applicant") or {}).get(key, ""):
            changed[f"applicant.{key}"] = value
    old_fields = current.get("fields") or {}
    for spec in procedure.fields:
        new = checked.body["fields"].get(spec.name)
        if new != old_fields.get(spec.name):
            changed[f"fields.{spec.name}"] = new
    return IntakeInput({"set": changed}, checked.errors)


def form_value(spec: FormField, value: Any) -> str:
    """A stored field value as the clerk types it (dates as dd/mm/yyyy)."""
    if value is None:
        return ""
    if spec.type == "date" and isinstance(value, str):
        iso = parse_day(value)
        if iso:
            return date.fromisoformat(iso).strftime("%d/%m/%Y")
    return str(value)
