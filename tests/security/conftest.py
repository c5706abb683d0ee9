"""Fixtures: an HTTPS hub with two communes' nodes enrolled by certificate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.tlsnet import TlsNet


@pytest.fixture
async def tnet(tmp_path: Path) -> AsyncIterator[TlsNet]:
    """A started HTTPS hub; add nodes with `await tnet.add_edge("02245")`."""
    network = TlsNet(tmp_path / "tlsnet")
    await network.start()
    try:
        yield network
    finally:
        await network.close()
