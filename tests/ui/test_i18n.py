"""Every text on screen comes from the message catalogues, in Vietnamese and English alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.ui.i18n import Messages, flatten, load_catalogues

REPO = Path(__file__).resolve().parents[2]
UI_DIRS = [REPO / "service" / "ui", REPO / "edge_node" / "ui", REPO / "central_hub" / "public"]
KEY_RE = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]+)['"]""")
PREFIX_RE = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]+\.)['"]\s*~""")
PY_KEY_RE = re.compile(r"""['"]((?:v|sync|intake|dossier|users|edit|password|login|error|home"""
                       r"""|history|where|form|list|stats|nav|search)\.[a-z0-9_]+)['"]""")


def sources() -> list[Path]:
    return [p for d in UI_DIRS for p in d.rglob("*") if p.suffix in (".html", ".py")]


@pytest.mark.parametrize("folder", UI_DIRS, ids=lambda p: p.parent.name)
def test_vietnamese_and_english_have_the_same_keys(folder: Path) -> None:
    import tomllib
    vi = flatten(tomllib.loads((folder / "messages" / "vi.toml").read_text("utf-8")))
    en = flatten(tomllib.loads((folder / "messages" / "en.toml").read_text("utf-8")))
    assert set(vi) == set(en), set(vi) ^ set(en)
    for key in vi:
        assert set(re.findall(r"{(\w+)}", str(vi[key]))) == \
            set(re.findall(r"{(\w+)}", str(en[key]))), key


def test_every_key_used_exists() -> None:
    tables = load_catalogues(*(d / "messages" for d in UI_DIRS))
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in sources():
        text = path.read_text("utf-8")
        used |= set(KEY_RE.findall(text))
        prefixes |= set(PREFIX_RE.findall(text))
        if path.suffix == ".py":
            used |= set(PY_KEY_RE.findall(text))
    used = {k for k in used if not k.endswith((".", ".html", ".css", ".js", ".toml"))}
    for lang, table in tables.items():
        missing = sorted(k for k in used if k not in table)
        assert not missing, (lang, missing)
        for prefix in prefixes:
            assert any(k.startswith(prefix) for k in table), (lang, prefix)


def test_plurals_and_placeholders() -> None:
    t = Messages("en", {"x": {"one": "{n} change", "other": "{n} changes"}, "y": "at {when}"})
    assert t("x", n=1) == "1 change" and t("x", n=3) == "3 changes"
    assert t("y", when="10:42") == "at 10:42"
    assert t("missing.key") == "missing.key"
    assert t("y") == "at {when}"
