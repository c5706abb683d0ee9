"""Text helpers for search: Vietnamese without diacritics, so "nguyen van" finds "Nguyễn Văn"."""

from __future__ import annotations

import logging
import unicodedata

log = logging.getLogger(__name__)


def fold(text: str) -> str:
    """Lowercase, strip diacritics (đ → d) and collapse spaces."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.lower().split())
