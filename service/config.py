"""Config files: a TOML file in the data dir, parsed into a frozen dataclass, bad fields named."""

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
    """Build `cls` from a plain table, checking each field's type. A field whose default is a
    dataclass is a nested table (`[health]`); its keys may also stand flat as `health_<key>`,
    the spelling before tables, so older files still load."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    raw, flat = _nest_flat(raw, fields, where)
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValidationError(f"{where}: unknown setting {sorted(unknown)[0]!r}",
                              field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    for name, value in raw.items():
        table = _table(fields[name])
        if table is not None:
            values[name] = _parse_table(table, name, value, flat, where)
            continue
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


def _table(f: dataclasses.Field[Any]) -> type | None:
    """The dataclass of a nested-table field, or None for a plain value."""
    return type(f.default) if dataclasses.is_dataclass(f.default) else None


def _nest_flat(raw: dict[str, Any], fields: dict[str, dataclasses.Field[Any]], where: str
               ) -> tuple[dict[str, Any], dict[str, str]]:
    """Move flat `table_key` settings into their table; return the settings and, for each key
    moved, the name it was written under (`health.warn_clock_ms` → `health_warn_clock_ms`)."""
    moved: dict[str, Any] = {}
    flat: dict[str, str] = {}
    for name, f in fields.items():
        table = _table(f)
        if table is None or not isinstance(raw.get(name, {}), dict):
            continue  # not a table, or given as something else (reported as such)
        inner = {g.name for g in dataclasses.fields(table)}
        for key in raw:
            sub = key[len(name) + 1:]
            if key.startswith(name + "_") and key not in fields and sub in inner:
                given = raw.get(name, {})
                if sub in given:
                    raise ValidationError(f"{where}: {key} and [{name}] {sub} both given: keep one",
                                          field=key)
                moved.setdefault(name, dict(given))[sub] = raw[key]
                flat[f"{name}.{sub}"] = key
    if not moved:
        return raw, flat
    rest = {k: v for k, v in raw.items() if k not in flat.values()}
    rest.update(moved)
    return rest, flat


def _parse_table(table: type, name: str, value: Any, flat: dict[str, str], where: str) -> Any:
    """A nested table, its errors naming each setting as the file wrote it."""
    if not isinstance(value, dict):
        raise ValidationError(f"{where}: {name} must be a table ([{name}])", field=name)
    try:
        return parse(table, value, f"{where} [{name}]")
    except ValidationError as exc:
        if exc.field is None:
            raise
        shown = flat.get(f"{name}.{exc.field}", f"{name}.{exc.field}")
        message = exc.message
        if message.startswith(exc.field):  # "warn_clock_ms must be …": say it as written
            message = shown + message[len(exc.field):]
        raise ValidationError(message, field=shown) from exc


def dump(obj: Any, path: Path) -> None:
    """Write a dataclass as TOML: plain settings, then a `[table]` per nested dataclass (strings
    JSON-escaped, which TOML basic strings accept)."""
    lines, tables = [], []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            tables += ["", f"[{f.name}]", *(_line(g.name, getattr(value, g.name))
                                            for g in dataclasses.fields(value))]
        else:
            lines.append(_line(f.name, value))
    atomic.write(path, "\n".join(lines + tables) + "\n")


def _line(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name} = {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{name} = {value}"
    return f"{name} = {json.dumps(str(value), ensure_ascii=False)}"
