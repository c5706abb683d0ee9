"""Config files: a flat TOML table in the data dir, parsed into a frozen dataclass, bad fields named."""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from protocol.errors import ValidationError
from service import atomic

log = logging.getLogger(__name__)

T = TypeVar("T")


def load(cls: type[T], path: Path) -> T:
    """Read `path` (TOML) into dataclass `cls`; defaults fill what the file leaves out."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError(f"{path} not found: is the data dir initialized?") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}") from exc
    return parse(cls, raw, str(path))


def parse(cls: type[T], raw: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from a plain table, checking each field's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValidationError(f"{where}: unknown setting {sorted(unknown)[0]!r}",
                              field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    for name, value in raw.items():
        expected = fields[name].type
        kind: Any = {"int": int, "str": str, "float": (int, float), "bool": bool}.get(str(expected))
        if kind is not None and (not isinstance(value, kind) or
                                 (kind is int and isinstance(value, bool))):
            raise ValidationError(f"{where}: {name} must be of type {expected}", field=name)
        values[name] = value
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise ValidationError(f"{where}: {exc}") from exc
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def dump(obj: Any, path: Path) -> None:
    """Write a flat dataclass as TOML (strings JSON-escaped, which TOML basic strings accept)."""
    lines = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool):
            lines.append(f"{f.name} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{f.name} = {value}")
        else:
            lines.append(f"{f.name} = {json.dumps(str(value), ensure_ascii=False)}")
    atomic.write(path, "\n".join(lines) + "\n")
