"""The README's first hour, run as a newcomer would: its "Running it by hand" block, verbatim, in a
fresh directory with real processes; and `make demo` stopping cleanly on Ctrl-C.

The block runs in a private network namespace (root), so its fixed ports 8700/8701 never meet
another server on this machine. Each line runs as written; the test only gives each command its
own standard input (a password where the command asks for one, like a person typing it) and, after
a line that starts a server in the background, waits for the server to say it is serving, as a
person would before typing on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PASSWORD = "first-hour-2026"
ASKS_PASSWORD = re.compile(r"\b(operator|user) add\b")

# What the test checks once the block has run, inside the same namespace (the servers still up).
CHECKS = r'''
import json, ssl, subprocess, sys, urllib.request
from pathlib import Path

PASSWORD = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from tests.harness import birth
ca = ssl.create_default_context(cafile="hub/tls/ca.crt")

def call(base, path, body=None, token=None, ctx=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
        return json.loads(resp.read())

hub, edge = "https://127.0.0.1:8700", "http://127.0.0.1:8701"
assert call(hub, "/healthz", ctx=ca)["ok"] is True       # https, with the province CA
assert call(edge, "/healthz")["node"] == "02245.01"
clerk = call(edge, "/api/login", {"username": "clerk1", "password": PASSWORD})["token"]
made = call(edge, "/api/dossiers", birth(), clerk)
sync = subprocess.run(["edge-node", "sync", "--data", "con-lon"], capture_output=True, text=True)
assert sync.returncode == 0, sync.stderr
op = call(hub, "/api/login", {"username": "op", "password": PASSWORD}, ctx=ca)["token"]
[node] = call(hub, "/api/nodes", token=op, ctx=ca)["items"]
assert node["node"] == "02245.01" and node["last_success_at"], node
assert call(hub, f"/api/dossiers/{made['id']}", token=op, ctx=ca)["code"] == made["code"]
assert Path("hub-backup-1/backup.json").is_file()
# the classic first mistake, http:// to a hub that serves https: one line that says what to do
wrong = subprocess.run(["edge-node", "init", "--data", "again", "--hub", "http://127.0.0.1:8700",
                        "--token", "enr_x.00"], capture_output=True, text=True)
assert wrong.returncode != 0 and "Traceback" not in wrong.stderr, wrong.stderr
assert len(wrong.stderr.splitlines()) == 1, wrong.stderr
assert "serves HTTPS: try --hub https://127.0.0.1:8700" in wrong.stderr, wrong.stderr
print("README CHECKS PASSED")
'''


def by_hand_block(text: str) -> str:
    """The first ```sh block under the "Running it by hand" heading."""
    section = text.split("## Running it by hand", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no ```sh block under 'Running it by hand'"
    return match.group(1)


def commands(block: str) -> list[str]:
    """The block's command lines (continuations joined), comments and blank lines left out."""
    lines: list[str] = []
    pending = ""
    for raw in block.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = pending + raw
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


def script(lines: list[str], workdir: Path) -> str:
    """A bash script running each line as written, with its own stdin; after `… &`, waiting for
    the server's "serving on" line (and failing with its log if it dies first)."""
    password = workdir / ".password"
    password.write_text(PASSWORD + "\n")
    out = ["set -eo pipefail", "set -x",
           'wait_serving() { for _ in $(seq 600); do grep -q "serving on" "$1" && return 0; '
           'kill -0 "$2" 2>/dev/null || break; sleep 0.1; done; cat "$1"; return 1; }']
    for i, line in enumerate(lines):
        stdin = password if ASKS_PASSWORD.search(line) else "/dev/null"
        if re.search(r"&\s*(#.*)?$", line):
            log = workdir / f".server-{i}.log"
            out += ["{ " + line, f"}} < {stdin} > {log} 2>&1", f'wait_serving {log} "$!"']
        else:
            out += ["{ " + line, f"}} < {stdin}"]
    return "\n".join(out) + "\n"


def test_the_block_is_the_first_hour_path() -> None:
    """What the block must keep showing (a newcomer's path, in order)."""
    lines = commands(by_hand_block(README.read_text(encoding="utf-8")))
    order = ["activate", "central-hub init", "operator add", "central-hub enroll", "central-hub serve",
             "edge-node init", "user add", "edge-node serve", "edge-node sync", "edge-node status"]
    positions = [next(i for i, line in enumerate(lines) if word in line) for word in order]
    assert positions == sorted(positions), lines
    assert any("--hub https://" in line for line in lines), "the hub serves https once initialized"
    joined = commands("a \\\n  b # c\n# d\n\ne &\n")
    assert [" ".join(c.split()) for c in joined] == ["a b # c", "e &"]


def test_the_readme_cites_nothing_outside_the_repository() -> None:
    text = README.read_text(encoding="utf-8")
    assert "DESIGN.md" not in text and "../shared" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    for path in re.findall(r"\b((?:docs|etc|bench|requirements)/[\w./-]+\.\w+)", text):
        assert (ROOT / path).exists(), path


@pytest.mark.slow
def test_running_it_by_hand_works_verbatim(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root and unshare/ip for a private network namespace")
    if not (Path(sys.prefix) / "bin" / "activate").is_file():
        pytest.skip(f"the tests do not run in a venv with bin/activate ({sys.prefix})")
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the README runs from a checkout with .venv
    (tmp_path / ".checks.py").write_text(CHECKS, encoding="utf-8")
    body = script(commands(by_hand_block(README.read_text(encoding="utf-8"))), tmp_path)
    body += f"python .checks.py {PASSWORD} {ROOT}\n"
    (tmp_path / ".readme.sh").write_text(body, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # no venv yet
    proc = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec bash .readme.sh"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        transcript, _ = proc.communicate(timeout=240)
    finally:
        stop_group(proc)
    assert proc.returncode == 0, transcript
    assert "README CHECKS PASSED" in transcript, transcript
    assert "central hub serving on https://127.0.0.1:8700/" in logs(tmp_path)
    assert "Traceback" not in transcript + logs(tmp_path), transcript


def logs(workdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(workdir.glob(".server-*.log")))


def stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the block's process group (its background servers), SIGKILL what lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_make_demo_stops_cleanly_on_ctrl_c() -> None:
    """What the README says: Ctrl-C stops every process and removes the data dir, exit 0."""
    proc = subprocess.Popen([sys.executable, "bench/demo.py"], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # Ctrl-C goes to the terminal's group
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("t="):  # the first status table: everything is running
                break
        transcript = "".join(lines)
        assert any(line.startswith("t=") for line in lines), transcript
        data = Path(re.search(r"data in (\S+);", transcript).group(1))  # type: ignore[union-attr]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4, transcript  # a hub and three edges
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            stop_group(proc)  # type: ignore[arg-type]
    transcript = "".join(lines) + rest
    assert proc.returncode == 0, transcript
    assert "stopped (Ctrl-C); every process is down" in transcript, transcript
    assert "Traceback" not in transcript, transcript
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not data.exists(), data
