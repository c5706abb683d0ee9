"""The base of every declared JSON answer (service/api/answers.py)."""

from __future__ import annotations

import logging

import msgspec

log = logging.getLogger(__name__)


class Answer(msgspec.Struct, kw_only=True):
    """A JSON answer."""
