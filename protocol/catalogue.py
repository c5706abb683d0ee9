"""The procedure catalogue: which procedures exist, their time limits and their form fields.

The catalogue is data (reference data published by the hub); this module parses and validates it
and checks a dossier's fields against it. `DEFAULT_CATALOGUE` holds the procedures of DOMAIN.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol.errors import ValidationError

log = logging.getLogger(__name__)

FIELD_TYPES = frozenset({"text", "date", "year", "choice", "int"})
CODE_RE = re.compile(r"^\d\.\d{6}(\.[A-Za-z0-9.]+)?$")
CUTOFF_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class FormField:
    """One field of a procedure's form. `key`: part of what makes two dossiers of the procedure
    for the same applicant the same request (likely duplicates, `protocol.duplicates`);
    `searchable`: the desk's search finds a dossier by this field's value."""

    name: str
    label_vi: str
    label_en: str
    type: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = 200
    key: bool = False
    searchable: bool = False

    def check(self, value: Any, today: date) -> Any:
        """Return the normalized value, or raise ValidationError naming the field."""
        where = f"fields.{self.name}"
        if value is None or value == "":
            if self.required:
                raise ValidationError(f"{self.label_en} is required", field=where)
            return None
        if self.type == "int":
            if type(value) is not int:
                raise ValidationError(f"{self.label_en} must be a whole number", field=where)
            return value
        if not isinstance(value, str):
            raise ValidationError(f"{self.label_en} must be text", field=where)
        value = value.strip()
        if len(value) > self.max_len:
            raise ValidationError(f"{self.label_en} is longer than {self.max_len}", field=where)
        if self.type == "date":
            try:
                parsed = date.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError(f"{self.label_en} must be a date YYYY-MM-DD",
                                      field=where) from exc
            if parsed > today:
                raise ValidationError(f"{self.label_en} is in the future", field=where)
        elif self.type == "year":
            if not re.fullmatch(r"\d{4}", value) or not 1900 <= int(value) <= today.year:
                raise ValidationError(f"{self.label_en} must be a year like 1990", field=where)
        elif self.type == "choice" and value not in self.choices:
            raise ValidationError(
                f"{self.label_en} must be one of {', '.join(self.choices)}", field=where
            )
        return value


@dataclass(frozen=True, slots=True)
class Procedure:
    """One administrative procedure (thủ tục hành chính)."""

    code: str
    name_vi: str
    name_en: str
    limit_days: int
    same_day_cutoff: str | None = None
    fields: tuple[FormField, ...] = ()

    def field(self, name: str) -> FormField | None:
        """The form field called `name`, if the procedure has one."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def check_fields(self, values: Any, today: date, *, partial: bool = False) -> dict[str, Any]:
        """Validate a dossier's form fields; `partial` checks only the ones given."""
        if not isinstance(values, dict):
            raise ValidationError("fields must be an object", field="fields")
        out: dict[str, Any] = {}
        for name in values:
            if self.field(name) is None:
                raise ValidationError(f"unknown field {name!r} for procedure {self.code}",
                                      field=f"fields.{name}")
        for f in self.fields:
            if partial and f.name not in values:
                continue
            checked = f.check(values.get(f.name), today)
            if checked is not None:
                out[f.name] = checked
        return out


@dataclass(frozen=True, slots=True)
class Catalogue:
    """A versioned set of procedures."""

    version: int
    procedures: tuple[Procedure, ...]

    def get(self, code: str) -> Procedure | None:
        """The procedure with this code, if known."""
        for p in self.procedures:
            if p.code == code:
                return p
        return None

    def searchable(self, code: str | None) -> tuple[str, ...]:
        """The names of the procedure's searchable fields (none if it is unknown here)."""
        proc = self.get(code) if code else None
        return tuple(f.name for f in proc.fields if f.searchable) if proc else ()


def parse_catalogue(data: dict[str, Any]) -> Catalogue:
    """Build a catalogue from plain data (TOML/JSON shape), naming the first bad field."""
    procs = []
    for i, raw in enumerate(data.get("procedures", [])):
        where = f"procedures[{i}]"
        code = raw.get("code")
        if not isinstance(code, str) or not CODE_RE.fullmatch(code):
            raise ValidationError(f"{where}.code must look like 1.001193", field=f"{where}.code")
        limit = raw.get("limit_days")
        if type(limit) is not int or not 0 <= limit <= 365:
            raise ValidationError(f"{where}.limit_days must be a whole number 0–365",
                                  field=f"{where}.limit_days")
        cutoff = raw.get("same_day_cutoff")
        if cutoff is not None and not (isinstance(cutoff, str) and CUTOFF_RE.fullmatch(cutoff)):
            raise ValidationError(f"{where}.same_day_cutoff must be a time like 15:00",
                                  field=f"{where}.same_day_cutoff")
        fields = []
        for j, fr in enumerate(raw.get("fields", [])):
            ftype = fr.get("type", "text")
            if ftype not in FIELD_TYPES or not fr.get("name"):
                raise ValidationError(f"{where}.fields[{j}] has a bad name or type {ftype!r}")
            fields.append(FormField(
                name=fr["name"], label_vi=fr.get("label_vi", fr["name"]),
                label_en=fr.get("label_en", fr["name"]), type=ftype,
                required=bool(fr.get("required", False)), choices=tuple(fr.get("choices", ())),
                key=bool(fr.get("key", False)), searchable=bool(fr.get("searchable", False)),
            ))
        procs.append(Procedure(
            code=code, name_vi=raw.get("name_vi", code), name_en=raw.get("name_en", code),
            limit_days=limit, same_day_cutoff=raw.get("same_day_cutoff"), fields=tuple(fields),
        ))
    return Catalogue(version=int(data.get("version", 1)), procedures=tuple(procs))


def _f(name: str, vi: str, en: str, type: str = "text", required: bool = False,
       choices: tuple[str, ...] = (), *, key: bool = False,
       searchable: bool = False) -> dict[str, Any]:
    return {"name": name, "label_vi": vi, "label_en": en, "type": type, "required": required,
            "choices": list(choices), "key": key, "searchable": searchable}


_SEX = ("Nam", "Nữ")
_PARENT = [
    _f("mother_full_name", "Họ tên mẹ", "Mother's full name"),
    _f("mother_birth_year", "Năm sinh của mẹ", "Mother's year of birth", "year"),
    _f("mother_ethnicity", "Dân tộc của mẹ", "Mother's ethnicity"),
    _f("mother_nationality", "Quốc tịch của mẹ", "Mother's nationality"),
    _f("mother_residence", "Nơi cư trú của mẹ", "Mother's residence"),
    _f("father_full_name", "Họ tên cha", "Father's full name"),
    _f("father_birth_year", "Năm sinh của cha", "Father's year of birth", "year"),
    _f("father_ethnicity", "Dân tộc của cha", "Father's ethnicity"),
    _f("father_nationality", "Quốc tịch của cha", "Father's nationality"),
    _f("father_residence", "Nơi cư trú của cha", "Father's residence"),
]

DEFAULT_CATALOGUE_DATA: dict[str, Any] = {
    "version": 1,
    "procedures": [
        {"code": "1.001193", "name_vi": "Đăng ký khai sinh", "name_en": "Birth registration",
         "limit_days": 0, "same_day_cutoff": "15:00", "fields": [
             _f("relationship", "Quan hệ với người được khai sinh", "Relationship to the child",
                required=True),
             _f("child_full_name", "Họ, chữ đệm, tên", "Child's full name", required=True,
                key=True, searchable=True),
             _f("child_birth_date", "Ngày, tháng, năm sinh", "Date of birth", "date", True,
                key=True, searchable=True),
             _f("child_birth_date_words", "Ngày sinh bằng chữ", "Date of birth in words"),
             _f("child_sex", "Giới tính", "Sex", "choice", True, _SEX),
             _f("child_ethnicity", "Dân tộc", "Ethnicity", required=True),
             _f("child_nationality", "Quốc tịch", "Nationality", required=True),
             _f("child_birth_place", "Nơi sinh", "Place of birth", required=True),
             _f("child_home_town", "Quê quán", "Home town"),
             *_PARENT,
         ]},
        {"code": "1.000656", "name_vi": "Đăng ký khai tử", "name_en": "Death registration",
         "limit_days": 0, "same_day_cutoff": "15:00", "fields": [
             _f("deceased_full_name", "Họ tên người chết", "Deceased's full name", required=True,
                key=True, searchable=True),
             _f("deceased_citizen_id", "Số định danh người chết", "Deceased's citizen ID"),
             _f("death_date", "Ngày chết", "Date of death", "date", True, key=True,
                searchable=True),
             _f("death_place", "Nơi chết", "Place of death", required=True),
             _f("death_cause", "Nguyên nhân chết", "Cause of death"),
             _f("relationship", "Quan hệ với người chết", "Relationship", required=True),
         ]},
        {"code": "1.000894", "name_vi": "Đăng ký kết hôn", "name_en": "Marriage registration",
         "limit_days": 0, "same_day_cutoff": "15:00", "fields": [
             _f("husband_full_name", "Họ tên chồng", "Husband's full name", required=True,
                searchable=True),
             _f("husband_birth_date", "Ngày sinh của chồng", "Husband's date of birth", "date",
                True),
             _f("husband_citizen_id", "Số định danh của chồng", "Husband's citizen ID",
                required=True, key=True),
             _f("wife_full_name", "Họ tên vợ", "Wife's full name", required=True,
                searchable=True),
             _f("wife_birth_date", "Ngày sinh của vợ", "Wife's date of birth", "date", True),
             _f("wife_citizen_id", "Số định danh của vợ", "Wife's citizen ID", required=True,
                key=True),
         ]},
        {"code": "1.004873", "name_vi": "Xác nhận tình trạng hôn nhân",
         "name_en": "Marital-status certificate", "limit_days": 3, "fields": [
             _f("purpose", "Mục đích sử dụng", "Purpose", required=True, key=True),
             _f("marital_status", "Tình trạng hôn nhân", "Marital status", required=True),
         ]},
        {"code": "2.000815", "name_vi": "Chứng thực bản sao từ bản chính",
         "name_en": "Certified copy from an original", "limit_days": 0,
         "same_day_cutoff": "15:00", "fields": [
             _f("document_name", "Tên giấy tờ", "Document", required=True, key=True),
             _f("copies", "Số bản", "Number of copies", "int", True),
         ]},
        {"code": "2.000884", "name_vi": "Chứng thực chữ ký", "name_en": "Signature certification",
         "limit_days": 0, "same_day_cutoff": "15:00", "fields": [
             _f("document_name", "Tên giấy tờ", "Document", required=True, key=True),
         ]},
        {"code": "2.000635", "name_vi": "Cấp bản sao trích lục hộ tịch",
         "name_en": "Copy from the civil-status register", "limit_days": 0,
         "same_day_cutoff": "15:00", "fields": [
             _f("record_type", "Loại trích lục", "Record type", required=True, key=True),
             _f("copies", "Số bản", "Number of copies", "int", True),
         ]},
        {"code": "1.012812", "name_vi": "Hòa giải tranh chấp đất đai",
         "name_en": "Land dispute mediation", "limit_days": 30, "fields": [
             _f("parcel", "Thửa đất", "Land parcel", required=True, key=True),
             _f("other_party", "Bên tranh chấp", "Other party", required=True, searchable=True),
             _f("summary", "Nội dung tranh chấp", "Summary of the dispute", required=True),
         ]},
    ],
}

DEFAULT_CATALOGUE = parse_catalogue(DEFAULT_CATALOGUE_DATA)
