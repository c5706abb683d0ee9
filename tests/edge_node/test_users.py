"""Staff accounts from the command line (`edge-node user list|disable|enable|passwd|role`) against a
serving edge: a change there ends the running server's sessions at once."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.processes import ROOT
from tests.harness import PASSWORD, Net


def edge_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_node", *args], input=stdin, text=True,
                          capture_output=True, cwd=ROOT, timeout=60, check=False)


async def test_the_user_commands_manage_accounts_of_a_serving_edge(net: Net) -> None:
    edge = await net.add_edge("02245")
    data = str(edge.data)
    token = await edge.api.login("clerk")
    assert (await edge.api.get("/api/me", token=token))[0] \
        == 200

    done = edge_cli("user", "add", "--data", data, "--username", "clerk2", stdin="first-pass-1\n")
    assert done.returncode == 0, done.stderr
    listing = edge_cli("user", "list", "--data", data, "--json")
    users = {u["username"]: u for u in json.loads(listing.stdout)}
    assert users["clerk2"]["role"] == "clerk" and users["clerk2"]["disabled"] is False
    assert "clerk2" in edge_cli("user", "list", "--data", data).stdout

    # disabling ends the session of the running server's user at once
    assert edge_cli("user", "disable", "--data", data, "--username", "clerk").returncode == 0
    status, body = await edge.api.get("/api/me", token=token)
    assert status == 401, body
    status, _ = await edge.api.post("/api/login", {"username": "clerk", "password": PASSWORD})
    assert status == 401
    assert "disabled" in edge_cli("user", "list", "--data", data).stdout
    assert edge_cli("user", "enable", "--data", data, "--username", "clerk").returncode == 0
    token = await edge.api.login("clerk")

    # a new password: the old one and the sessions made with it are gone
    done = edge_cli("user", "passwd", "--data", data, "--username", "clerk",
                    stdin="second-pass-2\n")
    assert done.returncode == 0, done.stderr
    assert (await edge.api.get("/api/me", token=token))[0] \
        == 401
    assert (await edge.api.post("/api/login", {"username": "clerk",
                                               "password": PASSWORD}))[0] == 401
    await edge.api.login("clerk", "second-pass-2")

    assert edge_cli("user", "role", "--data", data, "--username", "clerk2", "--role",
                    "leader").returncode == 0
    _, login = await edge.api.post("/api/login", {"username": "clerk2",
                                                  "password": "first-pass-1"})
    _, me = await edge.api.get("/api/me", token=login["token"])
    assert me == {"username": "clerk2", "role": "leader"}

    # mistakes: one line, non-zero, nothing changed
    for args, stdin, words in (
            (("user", "disable", "--username", "nobody"), "", "no user 'nobody'"),
            (("user", "role", "--username", "clerk2", "--role", "king"), "", "invalid choice"),
            (("user", "passwd", "--username", "clerk2"), "short\n", "at least 8 characters"),
            (("user", "passwd", "--username", "clerk2"), "", "no password on standard input")):
        done = edge_cli(*args[:2], "--data", data, *args[2:], stdin=stdin)
        assert done.returncode != 0 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    done = edge_cli("user", "list", "--data", str(edge.data.parent / "nowhere"))
    assert done.returncode != 0 and "run `edge-node init` first" in done.stderr
