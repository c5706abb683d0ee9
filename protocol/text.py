"""Text helpers for search: Vietnamese without diacritics, so "nguyen van" finds "Nguyễn Văn"."""

from __future__ import annotations

import logging
import unicodedata

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
