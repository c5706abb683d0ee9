"""Attachment entries: a scan (a verified blob, by its sha256) or a paper document listed by its
name, each with how it was handed in and how many; grow-only, never in conflict."""

from __future__ import annotations

import logging
from typing import Any

from protocol.commands import Draft
from protocol.errors import Conflict, ValidationError
from protocol.events import MAX_DOC_COUNT, MAX_LABEL
from protocol.merge import DossierState

log = logging.getLogger(__name__)

ATTACHMENT_TYPES = ("application/pdf", "image/jpeg", "image/png")
MAX_ATTACHMENT = 20 * 1024 * 1024
# How a received document was handed in, as form 01 prints it after its name (Vietnamese data).
DOC_KINDS = ("bản chính", "bản sao", "bản sao có chứng thực", "bản chụp")


def attach_draft(info: Any, state: DossierState) -> Draft:
    """Record an attachment entry on the dossier: a scan (a verified blob, by its sha256) or,
    without a sha256, a paper document listed by its name; grow-only, never conflicts."""
    if not isinstance(info, dict):
        raise ValidationError("attachment info must be an object")
    label = " ".join(str(info.get("label") or "").split())[:MAX_LABEL]
    payload: dict[str, Any]
    if info.get("sha256") is None:
        if not label:
            raise ValidationError("a document listed without a scan needs its name",
                                  field="label")
        payload = {"label": label}
    else:
        payload = _scan(info)
        if label:
            payload["label"] = label
    kind, count = info.get("doc_kind"), info.get("count")
    if kind is not None:
        if kind not in DOC_KINDS:
            raise ValidationError(f"doc_kind must be one of {', '.join(DOC_KINDS)}",
                                  field="doc_kind")
        payload["doc_kind"] = kind
    if count is not None:
        if type(count) is not int or not 1 <= count <= MAX_DOC_COUNT:
            raise ValidationError(f"count must be a whole number from 1 to {MAX_DOC_COUNT}",
                                  field="count")
        payload["count"] = count
    if state.header is None:
        raise Conflict("dossier is not complete here yet")
    return Draft("attach", payload, dict(state.vv))


def _scan(info: dict[str, Any]) -> dict[str, Any]:
    name = str(info.get("name") or "").strip()[:255] or "tệp đính kèm"
    mime, size, sha = info.get("mime"), info.get("size"), info.get("sha256")
    if mime not in ATTACHMENT_TYPES:
        raise ValidationError("attachments must be PDF, JPEG or PNG", field="file")
    if type(size) is not int or not 0 < size <= MAX_ATTACHMENT:
        raise ValidationError(f"attachments must be 1 byte to {MAX_ATTACHMENT // 2**20} MB",
                              field="file")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ValidationError("attachment needs its sha256", field="sha256")
    return {"sha256": sha, "name": name, "mime": mime, "size": size}
