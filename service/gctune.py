"""Garbage-collector settings for a long-running server process (the hub, an edge's web server).

Why: a sync request allocates tens of thousands of short-lived containers (decoded events, folded
states, rows); with CPython's default gen-0 threshold of 700 the cyclic collector runs every few
hundred of them and walks every long-lived object the process imported or loaded at start (modules,
templates, the catalogue) each time it reaches the older generations. `gc.freeze()` after start moves
those into a permanent generation the collector never scans again, and a larger gen-0 threshold
runs it less often on the request path. Reference counting still frees almost everything at once;
the collector is only for cycles, which the request path does not build on purpose.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)
DEFAULT = (700, 10, 10)


def tune_for_server(gen0: int = GEN0_THRESHOLD) -> None:
    """Collect once, freeze what survives (the process's start-up objects), raise the gen-0
    threshold. Call after start-up, before serving."""
    if gen0 < 1:
        raise ValueError("gen0 must be ≥ 1")
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
    log.info("gc: %d start-up objects frozen, gen-0 threshold %d", gc.get_freeze_count(), gen0)


def restore_defaults() -> None:
    """Undo `tune_for_server` (benchmarks that compare both in one process)."""
    gc.unfreeze()
    gc.set_threshold(*DEFAULT)
