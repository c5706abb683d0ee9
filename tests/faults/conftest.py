"""Fixtures of the fault tests: a namespace link (skipped, with the reason, where it cannot be made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.netns import Link, LinkUnavailable, unavailable


@pytest.fixture
def link() -> Iterator[Link]:
    """Two fresh network namespaces joined by a veth pair; deleted afterwards, whatever happened."""
    why = unavailable()
    if why:
        pytest.skip(why)
    made = Link()
    try:
        made.create()
    except LinkUnavailable as exc:
        made.close()
        pytest.skip(f"cannot make a netns link here: {exc}")
    try:
        yield made
    finally:
        made.close()
