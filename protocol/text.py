"""Text helpers for search: Vietnamese without diacritics, so "nguyen van" finds "Nguyễn Văn", and
the one folded text a dossier is found by."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


def _base_letters() -> dict[int, str]:
    table = {ord("đ"): "d", ord("Đ"): "D"}
    for code in range(0xC0, 0x2000):
        char = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
        if base != char and len(base) == 1:
            table[code] = base
    return table


_BASE = _base_letters()


def search_key(text: str) -> str:
    """The form search compares: lowercase, diacritics stripped (đ → d), spaces collapsed."""
    stripped = unicodedata.normalize("NFC", text).translate(_BASE)
    if not stripped.isascii():  # combining marks not attached to a letter we know
        stripped = "".join(c for c in unicodedata.normalize("NFD", stripped)
                           if not unicodedata.combining(c))
    return " ".join(stripped.lower().split())


SEPARATOR = "|"  # between the parts of a search text: no typed term spans two of them


def search_text(name: str, values: Iterable[Any] = (), phone: str | None = None) -> str:
    """What a dossier's text search matches: the applicant's name folded, then the values of its
    form's searchable fields (names folded, dates as stored, `YYYY-MM-DD`) and the phone. With
    none of those it is the name's key alone, as rows written before them hold."""
    parts = [search_key(name), *(search_key(str(v)) for v in values if v not in (None, ""))]
    if phone:
        parts.append(phone)
    return SEPARATOR.join(parts)
