"""protocol/ is sans-I/O: no event loop, network, database or retry library, and time is passed in."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "protocol"
FORBIDDEN_MODULES = frozenset({"asyncio", "aiohttp", "aiosqlite", "tenacity"})
# Reading the clock or the entropy pool inside the core: the caller passes time and randomness in.
FORBIDDEN_CALLS = frozenset({
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
    "datetime.now", "datetime.utcnow", "datetime.today", "date.today",
    "os.urandom", "os.getrandom", "uuid.uuid1", "uuid.uuid4",
})
EXPECTED_MODULES = {
    "errors", "hlc", "events", "codec", "merge", "lifecycle", "catalogue", "calendar", "commands",
    "views", "messages", "stats", "forms", "attachments", "duplicates",
}


def protocol_modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def impurities(source: str) -> list[str]:
    """Every forbidden import or clock/entropy call in `source`, as readable strings."""
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> dotted origin, for `from time import time`
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        if head in aliases:
            name = aliases[head] + ("." + rest if rest else "")
        for bad in FORBIDDEN_CALLS:
            if name == bad or name.endswith("." + bad):
                found.append(f"call {name}()")
    return found


def test_every_expected_module_exists() -> None:
    assert EXPECTED_MODULES <= set(protocol_modules())


def test_importing_protocol_loads_no_io_library() -> None:
    modules = protocol_modules()
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('protocol.' + name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert {f"protocol.{m}" for m in modules} <= set(loaded)
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN_MODULES] == []


@pytest.mark.parametrize("module", protocol_modules())
def test_source_has_no_io_import_and_reads_no_clock(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    assert impurities(source) == []


def test_init_is_pure_too() -> None:
    assert impurities((PACKAGE / "__init__.py").read_text(encoding="utf-8")) == []


def test_the_scanner_catches_what_it_looks_for() -> None:
    bad = (
        "import asyncio\n"
        "import aiohttp.web\n"
        "from tenacity import retry\n"
        "from os import urandom\n"
        "import time, datetime, os\n"
        "a = time.time()\n"
        "b = datetime.datetime.now()\n"
        "c = os.urandom(4)\n"
        "d = urandom(4)\n"
    )
    found = impurities(bad)
    assert "import asyncio" in found
    assert "import aiohttp.web" in found
    assert "from tenacity import ..." in found
    assert "call time.time()" in found
    assert "call datetime.datetime.now()" in found
    assert "call os.urandom()" in found
    assert found.count("call os.urandom()") == 2  # also through `from os import urandom`
    assert impurities("import msgpack\nx = datetime.fromtimestamp(0)\n") == []
