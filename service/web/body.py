"""Request bodies and query strings: read under a size limit, decoded into declared types.

The declared types (service/api/bodies.py, msgspec structs) check the shape: a malformed body is
a 400, a body of the wrong shape a 422 naming the field (`applicant.full_name`). What the values
mean (catalogue fields, the lifecycle) is checked afterwards by protocol/commands.py.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from protocol.errors import TooLarge, ValidationError
from service.web.errors import BadJson

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_JSON = 1024 * 1024

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`(?P<rest>.*?)(?:, got `(?P<got>[^`]+)`)?$")
_NAMED = re.compile(r"^Object (?P<how>missing required|contains unknown) field `(?P<key>[^`]*)`$")
_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
          "object": "an object", "array": "a list", "null": "null"}


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, refused with TooLarge past `limit` (read to the end: a single
    `content.read(n)` returns only what has arrived so far)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"body of {request.content_length} bytes is over the limit of {limit}")
    buf = bytearray()
    while chunk := await request.content.read(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(f"body over the limit of {limit} bytes")
    return bytes(buf)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body as plain values; a 400-class error if it is not JSON or too
    large."""
    return await decode_body(request, Any)


async def decode_body(request: web.Request, kind: type[T]) -> T:
    """The request's JSON body decoded into `kind`: 413 past `MAX_JSON`, 400 if it is not JSON,
    422 naming the field if it is not of that shape. An empty body reads as `null`."""
    raw = await read_body(request, MAX_JSON)
    try:
        return msgspec.json.decode(raw or b"null", type=kind)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from exc
    except msgspec.DecodeError as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from exc


def decode_query(request: web.Request, kind: type[T]) -> T:
    """The query string decoded into `kind` (numbers and booleans parsed from their text; an
    empty parameter counts as absent); 422 naming the parameter if one does not fit."""
    values = {k: v for k, v in request.query.items() if v != ""}
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from exc


def invalid(exc: msgspec.ValidationError) -> ValidationError:
    """Our 422 for msgspec's complaint: a plain sentence and the dotted path of the field."""
    match = _AT.match(str(exc))
    what, path = (match["what"], match["path"]) if match else (str(exc), None)
    field = _dotted(path)
    named = _NAMED.match(what)
    if named:
        inner = f"{field}.{named['key']}" if field else named["key"]
        if named["how"] == "missing required":
            return ValidationError(f"{inner} is required", field=inner)
        return ValidationError(f"unknown field {named['key']!r} in {field or 'the body'}",
                               field=field)
    expected = _EXPECTED.match(what)
    where = field or "the body"
    if expected:
        want = _WORDS.get(expected["want"], f"`{expected['want']}`")
        message = f"{where} must be {want}{expected['rest']}"
        if expected["got"]:
            message += f", not {_WORDS.get(expected['got'], expected['got'])}"
        return ValidationError(message, field=field)
    return ValidationError(f"{where}: {what[:1].lower()}{what[1:]}", field=field)


def _dotted(path: str | None) -> str | None:
    """`$.applicant.full_name` → `applicant.full_name`; `$.set[...]` → `set`; `$` → None."""
    if not path or path == "$":
        return None
    return re.sub(r"\[[^\]]*\]", "", path.removeprefix("$").lstrip(".")) or None
