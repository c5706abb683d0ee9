"""Inline SVG charts as geometry: the templates draw what these functions compute (no script, no
external library, nothing for the page's Content-Security-Policy to refuse)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 420, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 22


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle with its tooltip."""

    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What a template needs to draw one chart."""

    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (css class, points)
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y, tooltip)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    xticks: list[tuple[float, str, str]] = field(default_factory=list)  # (x, label, anchor)
    empty: bool = True
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


class _Frame:
    def __init__(self, start: int, end: int, vmax: float) -> None:
        self.start, self.end, self.vmax = start, end, nice_max(vmax)
        self.pw = WIDTH - LEFT - RIGHT
        self.ph = HEIGHT - TOP - BOTTOM

    def x(self, t: float) -> float:
        return round(LEFT + (t - self.start) / (self.end - self.start) * self.pw, 1)

    def y(self, v: float) -> float:
        return round(TOP + self.ph - v / self.vmax * self.ph, 1)

    def yticks(self, fmt: Callable[[float], str]) -> list[tuple[float, str]]:
        return [(self.y(self.vmax * k / 2), fmt(self.vmax * k / 2)) for k in range(3)]

    def xticks(self, label: Callable[[int], str],
               count: int = 4) -> list[tuple[float, str, str]]:
        # the outer labels lean inwards: centred on the plot's edges they would be cut off
        step = (self.end - self.start) / count
        return [(self.x(self.start + step * k), label(int(self.start + step * k)),
                 "start" if k == 0 else "end" if k == count else "middle")
                for k in range(count + 1)]


def _count(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def backlog(buckets: list[dict[str, Any]], start: int, end: int, bucket_ms: int,
            label: Callable[[int], str], tip: Callable[[dict[str, Any]], str]) -> Chart:
    """The highest backlog reported in each bucket, as a line broken where nothing was heard."""
    points = [(b["t"], b["pending"]) for b in buckets if b.get("pending") is not None]
    frame = _Frame(start, end, max((v for _, v in points), default=0))
    lines, run, last_t = [], [], None
    dots = []
    for t, v in points:
        if last_t is not None and t - last_t > bucket_ms and run:
            lines.append(("line-backlog", " ".join(run)))
            run = []
        x, y = frame.x(t + bucket_ms / 2), frame.y(v)
        run.append(f"{x},{y}")
        dots.append((x, y, tip({"t": t, "pending": v})))
        last_t = t
    if run:
        lines.append(("line-backlog", " ".join(run)))
    return Chart(lines=lines, dots=dots, yticks=frame.yticks(_count),
                 xticks=frame.xticks(label), empty=not points)


def stacked(buckets: list[dict[str, Any]], start: int, end: int, bucket_ms: int,
            keys: tuple[tuple[str, str], ...], label: Callable[[int], str],
            tip: Callable[[dict[str, Any]], str], fmt: Callable[[float], str] = _count) -> Chart:
    """Bars per bucket, `keys` = ((value key, css class), …) stacked bottom up."""
    top = max((sum(b[k] for k, _ in keys) for b in buckets), default=0)
    frame = _Frame(start, end, top)
    width = max(1.0, frame.x(start + bucket_ms) - frame.x(start) - 1)
    bars = []
    for b in buckets:
        base = 0.0
        for key, cls in keys:
            value = b[key]
            if value <= 0:
                continue
            y0, y1 = frame.y(base), frame.y(base + value)
            bars.append(Bar(frame.x(b["t"]), y1, round(width, 1), round(y0 - y1, 1), cls, tip(b)))
            base += value
    return Chart(bars=bars, yticks=frame.yticks(fmt), xticks=frame.xticks(label),
                 empty=not bars)
