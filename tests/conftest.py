"""Shared fixtures: a loopback network of one hub and edge nodes on temporary SQLite files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    """A started hub; add edges with `await net.add_edge("02245")`."""
    network = Net(tmp_path)
    await network.start_hub()
    try:
        yield network
    finally:
        await network.close()
