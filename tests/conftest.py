"""Shared fixtures: a loopback network of one hub and edge nodes on temporary SQLite files."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Net
from tests.pg import create_db, drop_db


@pytest.fixture
async def hub_db(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Where the hub keeps its store: "sqlite" (the default) or, for the tests of the contract
    suite (parametrized with `indirect=True`), a throwaway PostgreSQL database's URL."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield "sqlite"
        return
    url = await create_db()
    try:
        yield url
    finally:
        await drop_db(url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The contract suite: every test marked `both_stores` that runs a hub (through `net` or
    `hub_db`) runs once on SQLite and once on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_stores") and \
            "hub_db" in metafunc.fixturenames:
        metafunc.parametrize("hub_db", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A throwaway PostgreSQL database for tests that need one whatever the store (several
    processes, concurrency); skipped without a server (a failure in CI)."""
    url = await create_db()
    try:
        yield url
    finally:
        await drop_db(url)


@pytest.fixture
async def procs() -> AsyncIterator[Any]:
    """Child processes of a test (real hubs and edges, tests.faults.procs.Procs), every one
    stopped at the end. Imported here, not at the top: the edge's tests also run in an
    interpreter without POSIX-only modules (tests/edge_node/nonposix.py), which bench/ needs."""
    from tests.faults.procs import Procs

    p = Procs()
    try:
        yield p
    finally:
        await p.stop_all()


@pytest.fixture
async def net(tmp_path: Path, hub_db: str) -> AsyncIterator[Net]:
    """A started hub; add edges with `await net.add_edge("02245")`."""
    network = Net(tmp_path, db=hub_db)
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
