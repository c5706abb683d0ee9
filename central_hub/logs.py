"""Structured logs: one JSON object per line (`log_format = "json"` in hub.toml), for a log shipper.

Each line has `ts` (ISO 8601, UTC), `level`, `logger`, `msg`, the exception if any, and every
`extra={…}` field the call passed (`node`, `health`, …).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A LogRecord as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def use_json(level: int | None = None) -> None:
    """Make every handler of the root logger write JSON lines (adding one on stderr if none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    if level is not None:
        root.setLevel(level)
