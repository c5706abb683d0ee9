"""The real `edge-node` and `central-hub` commands as subprocesses (CONTRACT §6): every user
mistake is one line on stderr with a non-zero exit and no traceback; the happy path enrolls an edge
with a live hub and syncs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import DEAD_URL, PASSWORD
from tests.served import serve

ROOT = Path(__file__).resolve().parent.parent
MODULE = {"edge-node": "edge_node", "central-hub": "central_hub"}


def run(prog: str, *args: str | Path, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", MODULE[prog], *map(str, args)],
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


Call = tuple[str, Sequence[str | Path]] | tuple[str, Sequence[str | Path], str]


def run_many(calls: Sequence[Call]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands side by side (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(run, c[0], *c[1], stdin=c[2] if len(c) == 3 else None)
                   for c in calls]
        return [f.result() for f in futures]


def assert_one_line_error(prog: str, result: subprocess.CompletedProcess[str]) -> str:
    """The error contract: non-zero exit, exactly one stderr line naming the program, no
    traceback anywhere. Return that line."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr!r}"
    assert lines[0].startswith(prog), lines[0]
    assert len(lines[0]) > len(prog) + 10, lines[0]
    return lines[0]


@dataclass
class Hub:
    data: Path
    url: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub initialized with the CLI and served by `central-hub serve` on a free port."""
    data = tmp_path_factory.mktemp("cli") / "hub"
    result = run("central-hub", "init", "--data", data)
    assert result.returncode == 0, result.stderr
    result = run("central-hub", "operator", "add", "--data", data, "--username", "op",
                 stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    with serve(data) as served:
        yield Hub(data, served.url, served.proc)


def enroll_token(hub: Hub, commune: str = "02245") -> str:
    result = run("central-hub", "enroll", "--data", hub.data, "--commune", commune,
                 "--name", "Xã Côn Lôn")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 20, result.stdout
    return lines[0].strip()


# -- usage errors -------------------------------------------------------------------------------


def test_no_arguments_is_a_usage_error() -> None:
    for prog, result in zip(MODULE, run_many([(prog, []) for prog in MODULE]), strict=True):
        assert result.returncode == 2, result
        assert_one_line_error(prog, result)


USAGE: list[tuple[str, list[str]]] = [
    ("edge-node", ["status"]),
    ("edge-node", ["user", "add", "--username", "u"]),
    ("edge-node", ["frobnicate"]),
    ("central-hub", ["enroll", "--commune", "02245"]),
]


def test_missing_or_bad_arguments_are_usage_errors() -> None:
    for (prog, args), result in zip(USAGE, run_many(USAGE), strict=True):
        assert result.returncode == 2, (prog, args, result)
        line = assert_one_line_error(prog, result)
        if "--data" not in args and args[0] != "frobnicate":
            assert "--data" in line, (args, line)


def test_help_exits_zero() -> None:
    for prog, result in zip(MODULE, run_many([(prog, ["--help"]) for prog in MODULE]),
                            strict=True):
        assert result.returncode == 0, result.stderr
        for word in ("init", "serve", "status" if prog == "edge-node" else "enroll"):
            assert word in result.stdout
        assert result.stderr == ""


# -- data dirs that do not exist or are broken --------------------------------------------------


def test_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    calls: list[Call] = [
        ("edge-node", ["status", "--json", "--data", missing]),
        ("edge-node", ["sync", "--data", missing]),
        ("edge-node", ["serve", "--data", missing]),
    ]
    for call, result in zip(calls, run_many(calls), strict=True):
        line = assert_one_line_error(call[0], result)
        assert "init" in line, (call, line)  # the hint: initialize first
    assert not missing.exists()


def test_edge_with_a_broken_config_file(tmp_path: Path) -> None:
    data = tmp_path / "edge"
    data.mkdir()
    (data / "node.toml").write_text("node = \n")
    line = assert_one_line_error("edge-node", run("edge-node", "sync", "--data", data))
    assert "node.toml" in line


def test_hub_init_with_a_database_it_cannot_use_leaves_nothing_behind(tmp_path: Path) -> None:
    calls: list[Call] = [
        ("central-hub", ["init", "--data", tmp_path / "down", "--db",
                         "postgresql://commune@127.0.0.1:9/hub"]),  # nothing listens there
        ("central-hub", ["init", "--data", tmp_path / "mysql", "--db", "mysql://h/db"]),
    ]
    down, other = run_many(calls)
    assert "PostgreSQL" in assert_one_line_error("central-hub", down)
    assert "postgresql://" in assert_one_line_error("central-hub", other)
    assert list(tmp_path.iterdir()) == []


# -- edge-node init -----------------------------------------------------------------------------


def test_edge_init_failures_leave_nothing_behind(hub: Hub, tmp_path: Path) -> None:
    calls: list[Call] = [
        ("edge-node", ["init", "--data", tmp_path / "dead", "--hub", DEAD_URL, "--token", "abc"]),
        ("edge-node", ["init", "--data", tmp_path / "ftp", "--hub", "ftp://hub", "--token", "a"]),
        ("edge-node", ["init", "--data", tmp_path / "bad", "--hub", hub.url,
                       "--token", "not-a-token"]),
    ]
    dead, ftp, bad = run_many(calls)
    assert "127.0.0.1:9" in assert_one_line_error("edge-node", dead)
    assert_one_line_error("edge-node", ftp)
    line = assert_one_line_error("edge-node", bad)
    assert "refused" in line or "token" in line
    assert list(tmp_path.iterdir()) == []


def test_a_token_that_starts_with_a_dash_is_accepted(tmp_path: Path) -> None:
    """`central-hub enroll` prints base64url tokens, and one in 64 starts with "-": the
    `--token TOKEN` form of CONTRACT §6 must still take it (here the hub is unreachable, so
    the right outcome is a network error, not a usage error)."""
    data = tmp_path / "edge"
    result = run("edge-node", "init", "--data", data, "--hub", DEAD_URL, "--token", "-Ab3_x9")
    line = assert_one_line_error("edge-node", result)
    assert result.returncode != 2, line
    assert "127.0.0.1:9" in line
    assert not data.exists()


def test_an_enrollment_token_works_once_from_the_cli(hub: Hub, tmp_path: Path) -> None:
    token = enroll_token(hub)
    first = run("edge-node", "init", "--data", tmp_path / "a", "--hub", hub.url, f"--token={token}")
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "a" / "node.toml").read_bytes()
    reused, again = run_many([
        ("edge-node", ["init", "--data", tmp_path / "b", "--hub", hub.url, f"--token={token}"]),
        # an initialized dir is not enrolled over again
        ("edge-node", ["init", "--data", tmp_path / "a", "--hub", hub.url, f"--token={token}"]),
    ])
    assert_one_line_error("edge-node", reused)
    assert not (tmp_path / "b").exists()
    assert "already" in assert_one_line_error("edge-node", again)
    assert (tmp_path / "a" / "node.toml").read_bytes() == before


# -- central-hub mistakes -----------------------------------------------------------------------


def test_central_hub_mistakes(hub: Hub, tmp_path: Path) -> None:
    data = tmp_path / "hub"
    assert run("central-hub", "init", "--data", data).returncode == 0
    before = (data / "hub.toml").read_bytes()
    twice, pg, bad_code, no_pw, short_pw = run_many([
        ("central-hub", ["init", "--data", data]),
        ("central-hub", ["init", "--data", tmp_path / "pg", "--db", "postgresql://x"]),
        ("central-hub", ["enroll", "--data", hub.data, "--commune", "0224x"]),
        ("central-hub", ["operator", "add", "--data", hub.data, "--username", "ann"]),
        ("central-hub", ["operator", "add", "--data", hub.data, "--username", "ann"], "short\n"),
    ])
    assert "already" in assert_one_line_error("central-hub", twice)
    assert (data / "hub.toml").read_bytes() == before
    assert "postgresql" in assert_one_line_error("central-hub", pg).lower()
    assert not (tmp_path / "pg").exists()
    assert "commune" in assert_one_line_error("central-hub", bad_code)
    assert bad_code.stdout == ""
    assert "password" in assert_one_line_error("central-hub", no_pw)
    line = assert_one_line_error("central-hub", short_pw)
    assert "8" in line or "short" in line


def test_portal_keys_and_the_commune_list(hub: Hub, tmp_path: Path) -> None:
    good, bad = tmp_path / "communes.csv", tmp_path / "bad.csv"
    good.write_text("code,name,merged_into,effective\n02245,Xã Côn Lôn,,\n"
                    "02227,Xã Sinh Long,02245,2025-07-01\n", encoding="utf-8")
    bad.write_text("code,name\n2245,Xã Côn Lôn\n", encoding="utf-8")
    added, bad_name = run_many([
        ("central-hub", ["portal", "add", "--data", hub.data, "--name", "dvc"]),
        ("central-hub", ["portal", "add", "--data", hub.data, "--name", "Bad Name"]),
    ])
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("psk_") and len(added.stdout.splitlines()) == 1
    assert "name" in assert_one_line_error("central-hub", bad_name)
    again, unknown, listing, imported, refused, not_csv = run_many([
        ("central-hub", ["portal", "add", "--data", hub.data, "--name", "dvc"]),
        ("central-hub", ["portal", "revoke", "--data", hub.data, "--name", "nope"]),
        ("central-hub", ["portal", "list", "--data", hub.data]),
        ("central-hub", ["communes", "import", "--data", hub.data, good]),
        ("central-hub", ["communes", "import", "--data", hub.data, bad]),
        ("central-hub", ["communes", "import", "--data", hub.data, tmp_path / "x.txt"]),
    ])
    assert "exists" in assert_one_line_error("central-hub", again)
    assert "nope" in assert_one_line_error("central-hub", unknown)
    assert listing.stdout.split()[:2] == ["dvc", "active"], listing.stdout
    assert imported.returncode == 0 and "published 2 communes" in imported.stdout, imported.stderr
    assert "communes[0].code" in assert_one_line_error("central-hub", refused)
    assert ".csv" in assert_one_line_error("central-hub", not_csv)
    assert run("central-hub", "portal", "revoke", "--data", hub.data, "--name", "dvc"
               ).returncode == 0
    listed = run("central-hub", "portal", "list", "--data", hub.data).stdout
    assert listed.split()[:2] == ["dvc", "revoked"], listed


# -- the happy path, then edge mistakes on a real node ------------------------------------------


def test_enroll_sync_and_status(hub: Hub, tmp_path: Path) -> None:
    # the operator added by the fixture can log in to the served hub
    req = urllib.request.Request(hub.url + "/api/login", method="POST",
                                 data=json.dumps({"username": "op",
                                                  "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["token"]

    data = tmp_path / "edge"
    token = enroll_token(hub)
    result = run("edge-node", "init", "--data", data, "--hub", hub.url, f"--token={token}")
    assert result.returncode == 0, result.stderr
    assert "02245" in result.stdout
    assert (data / "node.toml").exists()
    assert (data / "node.toml").stat().st_mode & 0o077 == 0  # holds the credential

    result = run("edge-node", "user", "add", "--data", data, "--username", "clerk",
                 stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr

    result = run("edge-node", "sync", "--data", data)
    assert result.returncode == 0, result.stderr
    assert "0 pending" in result.stdout
    assert "Traceback" not in result.stderr

    as_json, nodes = run_many([
        ("edge-node", ["status", "--data", data, "--json"]),
        ("central-hub", ["nodes", "--data", hub.data, "--json"]),
    ])
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["node"].startswith("02245.")
    assert status["pending_events"] == 0
    assert status["commune"] == "02245"
    assert status["last_success_at"]
    # the hub lists the node as having synced
    assert nodes.returncode == 0, nodes.stderr
    by_node = {n["node"]: n for n in json.loads(nodes.stdout)}
    assert by_node[status["node"]]["last_success_at"]

    # edge mistakes on this real node, and a sync with the link down
    config = (data / "node.toml").read_text()
    (data / "node.toml").write_text(config.replace(hub.url, DEAD_URL))
    offline, short, empty = run_many([
        ("edge-node", ["sync", "--data", data]),
        ("edge-node", ["user", "add", "--data", data, "--username", "tom"], "short\n"),
        ("edge-node", ["user", "add", "--data", data, "--username", "tom"]),
    ])
    line = assert_one_line_error("edge-node", offline)
    assert "127.0.0.1:9" in line or "reach" in line
    assert "8" in assert_one_line_error("edge-node", short)
    assert "password" in assert_one_line_error("edge-node", empty)
