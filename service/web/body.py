"""Request bodies and query strings: read under a size limit, decoded into declared types.

The declared types (service/api/bodies.py, msgspec structs) check the shape: a malformed body is
a 400, a body of the wrong shape a 422 naming the field (`applicant.full_name`). What the values
mean (catalogue fields, the lifecycle) is checked afterwards by protocol/commands.py.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from protocol.errors import TooLarge, ValidationError
from service.budget import BODIES, Hold
from service.web.errors import Malformed

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_JSON = 1024 * 1024

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`(?P<rest>.*?)(?:, got `(?P<got>[^`]+)`)?$")
_NAMED = re.compile(r"^Object (?P<how>missing required|contains unknown) field `(?P<key>[^`]*)`$")
_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
          "object": "an object", "array": "a list", "null": "null"}


async def read_body(request: web.Request, limit: int, hold: Hold) -> bytes:
    """The whole request body, refused with TooLarge past `limit` (read to the end: a single
    `content.read(n)` returns only what has arrived so far). What it may cost is held through
    `hold` before reading: its Content-Length, read into one buffer of that size and returned
    without a copy; without a length, twice `limit` (a growing buffer may be copied as it grows)."""
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"body of {length} bytes is over the limit of {limit}")
    reserved = 2 * limit if length is None else length
    await hold.grow(reserved)
    buf = io.BytesIO()
    try:
        if length:
            buf.seek(length - 1)
            buf.write(b"\0")  # the whole buffer at once, filled in place below
            buf.seek(0)
        while chunk := await request.content.read(1 << 16):
            if buf.tell() + len(chunk) > limit:
                raise TooLarge(f"body over the limit of {limit} bytes")
            buf.write(chunk)
        buf.truncate()  # a client that went away sent less than it announced
        body = buf.getvalue()  # the buffer itself, not a copy: it is exactly full
    finally:
        buf.close()  # a refusal keeps no buffer alive through its traceback
    hold.shrink(reserved - len(body))
    return body


async def json_body(request: web.Request) -> Any:
    """The request's JSON body as plain values: 413 past `MAX_JSON`, 400 if it is not JSON. An
    empty body reads as `null`. It is held against the process's memory budget while it is read
    and decoded (service/budget.py)."""
    async with BODIES.hold() as hold:
        raw = await read_body(request, MAX_JSON, hold)
        try:
            return msgspec.json.decode(raw or b"null")
        except msgspec.DecodeError as exc:
            raise Malformed(f"body is not valid JSON: {exc}") from exc


def convert(value: Any, kind: type[T]) -> T:
    """A decoded JSON body as `kind` (a declared type); 422 naming the field if it is not of
    that shape."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from exc


async def read_upload(request: web.Request, limit: int) -> tuple[bytes, str, str]:
    """(file bytes, file name, label) of a multipart upload with parts `file` and `label`; a
    form that cannot be parsed is a 400, a file over `limit` bytes a 422."""
    try:
        reader = await request.multipart()
        data, name, label = b"", "", ""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                name = part.filename or "scan"
                chunks, size = [], 0
                while chunk := await part.read_chunk(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise ValidationError(f"file larger than {limit // 2**20} MB",
                                              field="file")
                    chunks.append(chunk)
                data = b"".join(chunks)
            elif part.name == "label":
                label = (await part.text())[:255]
    except (ValueError, HttpProcessingError) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed(f"the upload is not a well-formed multipart form: {exc}"[:300],
                        field="file") from exc
    return data, name, label


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
        want = " or ".join(_WORDS.get(t, f"`{t}`") for t in expected["want"].split(" | "))
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
