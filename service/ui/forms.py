"""Reading submitted forms: URL-encoded or multipart (files from the scanner), with size limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from protocol.errors import TooLarge, ValidationError

log = logging.getLogger(__name__)

MAX_TEXT = 64 * 1024
MAX_PARTS = 200


@dataclass(frozen=True, slots=True)
class Upload:
    """One file from a file input."""

    filename: str
    data: bytes


async def read_form(request: web.Request, *, max_file: int,
                    max_files: int = 20) -> tuple[dict[str, str], dict[str, Upload]]:
    """The text fields and the non-empty files of a form; TooLarge past the limits."""
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}, {}
    reader = await request.multipart()
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_PARTS:
            raise ValidationError("too many form fields")
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        limit = max_file if part.filename is not None else MAX_TEXT
        chunks, size = [], 0
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{part.name} is larger than {limit // 1024} KiB", field=part.name)
            chunks.append(chunk)
        data = b"".join(chunks)
        if part.filename is None:
            fields[part.name] = data.decode("utf-8", errors="replace")
        elif data:
            if len(files) >= max_files:
                raise ValidationError(f"at most {max_files} files at once", field=part.name)
            files[part.name] = Upload(part.filename or "scan", data)
    return fields, files
