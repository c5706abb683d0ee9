"""Shared fixtures: a loopback network of one hub and edge nodes on temporary SQLite files."""

from __future__ import annotations

import os
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


# In CI every environment-dependent test must run: a skip for a missing browser, root, network
# namespace tool or database server there means .ci/run failed to install or start something.
MUST_RUN_IN_CI = ("chromium", "root", "netns", "nft", "tc ", "postgres", "playwright")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).lower()
        if any(word in reason for word in MUST_RUN_IN_CI):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, where it must run: {report.longrepr[2]}"
