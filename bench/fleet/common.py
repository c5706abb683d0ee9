"""What the fleet's modules share: targets, the day's length, progress output."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

log = logging.getLogger(__name__)

TARGET_P99_MS = 500.0
TARGET_INGEST = 20_000.0
DAY_MS = 86_400_000
WORKDAY_S = 9.5 * 3600  # 07:30–17:00


class Output:
    """Where progress lines go: stdout, or stderr with --json."""

    stream: TextIO = sys.stdout


def say(text: str) -> None:
    """One progress line."""
    print(text, file=Output.stream, flush=True)
