"""Message catalogues: TOML files per language, flattened to dotted keys; Vietnamese first.

A value is a string with `{name}` placeholders, or a plural table (`one`, `other`) chosen by the
keyword `n`. A missing key shows the key itself (and is logged) instead of failing a page.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

LANGS = ("vi", "en")
DEFAULT_LANG = "vi"
LANG_COOKIE = "lang"
PLURAL_KEYS = frozenset({"one", "other"})

Entry = str | dict[str, str]


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Entry]:
    """`{"a": {"b": "x"}}` → `{"a.b": "x"}`; plural tables stay whole."""
    out: dict[str, Entry] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and set(value) == PLURAL_KEYS:
            out[path] = {k: str(v) for k, v in value.items()}
        elif isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = str(value)
    return out


def load_catalogues(*dirs: Path) -> dict[str, dict[str, Entry]]:
    """Read `vi.toml` and `en.toml` from each directory; later directories add or override keys."""
    tables: dict[str, dict[str, Entry]] = {lang: {} for lang in LANGS}
    for folder in dirs:
        for lang in LANGS:
            path = folder / f"{lang}.toml"
            if path.is_file():
                tables[lang].update(flatten(tomllib.loads(path.read_text("utf-8"))))
    return tables


@dataclass(frozen=True, slots=True)
class Messages:
    """The messages of one language, callable: `t("home.title")`, `t("sync.pending", n=3)`."""

    lang: str
    table: Mapping[str, Entry]

    def __call__(self, key: str, /, **kw: Any) -> str:
        raw = self.table.get(key)
        if raw is None:
            log.warning("missing message %r in %s", key, self.lang)
            return key
        if isinstance(raw, dict):
            raw = raw["one"] if kw.get("n") == 1 else raw["other"]
        if not kw:
            return raw
        try:
            return raw.format(**kw)
        except (KeyError, IndexError, ValueError):
            log.warning("message %r in %s does not fit %s", key, self.lang, sorted(kw))
            return raw

    def has(self, key: str) -> bool:
        """True iff the catalogue has `key`."""
        return key in self.table


def lang_of(request: web.Request) -> str:
    """The language chosen with the switch (a cookie), Vietnamese by default."""
    lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANG)
    return lang if lang in LANGS else DEFAULT_LANG
