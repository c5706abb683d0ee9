"""The intake form's document rows: each received document has a name, how it was handed in, a
count and, optionally, a scan. Scans are stored as blobs as soon as they arrive, so a form the
server refuses comes back with every chosen scan kept: the row carries a signed reference to the
stored blob instead of asking the clerk to pick the file again.

The reference is an HMAC, under a key made when the desk starts, of the session cookie and the
blob's hash, size, type and file name: a page can only hand back a blob this session uploaded
(a restart of the desk forgets them; the clerk is asked to pick those files again). A scan whose
form is abandoned stays in the blob folder unreferenced; it is never sent to the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from aiohttp import web

from edge_node.ui.desk import Desk
from edge_node.ui.intake_form import Error
from protocol.attachments import DOC_KINDS, MAX_ATTACHMENT
from protocol.events import MAX_DOC_COUNT
from service.blobs import sniff
from service.ui.forms import Upload
from service.web import COOKIE

log = logging.getLogger(__name__)

MAX_DOCS = 10
MAX_NAME = 200
COUNT_RE = re.compile(r"\d{1,2}")


@dataclass(frozen=True, slots=True)
class Scan:
    """A scan stored in the blob folder, as a row refers to it."""

    sha256: str
    size: int
    mime: str
    filename: str

    def token(self, desk: Desk, request: web.Request) -> str:
        """The signed reference a re-rendered form carries (`doc_keep_<i>`)."""
        return f"{self.sha256}:{self.size}:{self.mime}:{_mac(desk, request, self)}"


@dataclass(frozen=True, slots=True)
class Document:
    """One row of the form, checked: what form 01 lists, with its scan if one was chosen."""

    index: int
    name: str
    kind: str
    count: int
    scan: Scan | None

    def entry(self) -> dict[str, Any]:
        """The attachment entry for `DossierStore.attach` (a paper document has no sha256)."""
        info: dict[str, Any] = {"label": self.name, "doc_kind": self.kind, "count": self.count}
        if self.scan is not None:
            info.update(sha256=self.scan.sha256, name=self.scan.filename, mime=self.scan.mime,
                        size=self.scan.size)
        return info


def _mac(desk: Desk, request: web.Request, scan: Scan) -> str:
    message = "\n".join((request.cookies.get(COOKIE, ""), scan.sha256, str(scan.size), scan.mime,
                         scan.filename))
    return hmac.new(desk.secret, message.encode(), hashlib.sha256).hexdigest()[:32]


def _kept(desk: Desk, request: web.Request, values: dict[str, str], i: int) -> Scan | None:
    token = values.get(f"doc_keep_{i}", "")
    parts = token.split(":")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    scan = Scan(parts[0], int(parts[1]), parts[2], values.get(f"doc_keep_name_{i}", "")[:255])
    if not hmac.compare_digest(parts[3], _mac(desk, request, scan)):
        return None
    return scan if desk.store.blobs.has(scan.sha256) else None


async def _store(desk: Desk, upload: Upload, i: int, errors: dict[str, Error]) -> Scan | None:
    mime = sniff(upload.data[:16])
    if mime is None:
        errors[f"doc_file_{i}"] = ("v.file_type", {})
        return None
    if len(upload.data) > MAX_ATTACHMENT:
        errors[f"doc_file_{i}"] = ("v.file_size", {"mb": MAX_ATTACHMENT // 2**20})
        return None
    sha = await desk.store.blobs.put(upload.data)
    return Scan(sha, len(upload.data), mime, PurePath(upload.filename).name[:255] or "scan")


async def read_documents(desk: Desk, request: web.Request, values: dict[str, str],
                         files: dict[str, Upload], errors: dict[str, Error]
                         ) -> tuple[list[Document], dict[int, Scan]]:
    """The filled rows, and every scan now held for a row (to keep if the form is refused). A
    new file replaces a kept one; `doc_drop_<i>` lets a kept one go. Problems go into `errors`."""
    docs: list[Document] = []
    held: dict[int, Scan] = {}
    for i in range(MAX_DOCS):
        upload = files.get(f"doc_file_{i}")
        scan: Scan | None = None
        if upload is not None:
            scan = await _store(desk, upload, i, errors)
        elif values.get(f"doc_keep_{i}") and not values.get(f"doc_drop_{i}"):
            scan = _kept(desk, request, values, i)
            if scan is None:
                errors[f"doc_file_{i}"] = ("v.keep_lost", {})
        if scan is not None:
            held[i] = scan
        name = " ".join(values.get(f"doc_label_{i}", "").split())
        if not name and scan is None:
            continue  # an empty row (its kind and count keep their defaults)
        if not name and scan is not None:
            name = PurePath(scan.filename).stem
        if len(name) > MAX_NAME:
            errors[f"doc_label_{i}"] = ("v.too_long", {"max": MAX_NAME})
        raw = values.get(f"doc_count_{i}", "").strip() or "1"
        if not COUNT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_DOC_COUNT:
            errors[f"doc_count_{i}"] = ("v.doc_count", {"max": MAX_DOC_COUNT})
            raw = "1"
        kind = values.get(f"doc_kind_{i}", "")
        docs.append(Document(i, name, kind if kind in DOC_KINDS else DOC_KINDS[0], int(raw),
                             scan))
    return docs, held


def filled_rows(values: dict[str, str], held: dict[int, Scan]) -> int:
    """How many rows the re-rendered form needs to show what was filled in."""
    named = [i + 1 for i in range(MAX_DOCS) if values.get(f"doc_label_{i}")]
    return max([*named, *(i + 1 for i in held)], default=0)


def kept_view(desk: Desk, request: web.Request, held: dict[int, Scan]) -> dict[int, dict[str, Any]]:
    """What a re-rendered form shows of each kept scan, with its signed reference."""
    return {i: {"filename": s.filename, "kb": max(1, round(s.size / 1024)),
                "token": s.token(desk, request)} for i, s in held.items()}
