"""A commune merger on real processes: `central-hub serve`, an `edge-node serve` of Sinh Long
killed (SIGKILL) with dossiers queued under 02227 it never sent, `central-hub commune merge` beside
the running hub, then plain `edge-node sync` runs: the node converges as a desk of Côn Lôn with no
manual step, nothing rejected or quarantined."""

from __future__ import annotations

import dataclasses
import json
import signal
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

from edge_node import config as edge_config
from tests.harness import PASSWORD, birth
from tests.served import serve, serve_edge
from tests.test_cli import Hub, enroll_token, run


def call(url: str, path: str, body: Any, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def edge(hub: Hub, root: Path, commune: str) -> Path:
    data = root / f"edge-{commune}"
    token = enroll_token(hub, commune)
    result = run("edge-node", "init", "--data", data, "--hub", hub.url, f"--token={token}")
    assert result.returncode == 0, result.stderr
    config = edge_config.load(data)
    edge_config.save(data, dataclasses.replace(config, auto_sync=False))
    assert run("edge-node", "user", "add", "--data", data, "--username", "clerk",
               stdin=PASSWORD + "\n").returncode == 0
    return data


def status(data: Path) -> dict[str, Any]:
    result = run("edge-node", "status", "--data", data, "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_an_edge_offline_through_a_merger_converges_with_no_manual_step(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    assert run("central-hub", "init", "--data", data).returncode == 0
    with serve(data) as served:
        hub = Hub(data, served.url, served.proc)
        sinh_long, con_lon = edge(hub, tmp_path, "02227"), edge(hub, tmp_path, "02245")
        with serve_edge(sinh_long) as desk:
            token = call(desk.url, "/api/login", {"username": "clerk", "password": PASSWORD})
            for name in ("Hoàng Thị Hai", "Đinh Văn Ba"):
                made = call(desk.url, "/api/dossiers", birth(name), token["token"])
                assert made["commune"] == "02227"
            desk.proc.send_signal(signal.SIGKILL)  # the PC dies with both queued
            desk.proc.wait()
        assert run("edge-node", "sync", "--data", con_lon).returncode == 0

        merged = run("central-hub", "commune", "merge", "--data", data, "--into", "02245",
                     "--name", "Xã Côn Lôn", "--from", "02227")
        assert merged.returncode == 0, merged.stderr
        assert "1 node(s) re-scoped" in merged.stdout

        synced = run("edge-node", "sync", "--data", sinh_long)
        assert synced.returncode == 0, synced.stderr + synced.stdout
        after = status(sinh_long)
        assert after["commune"] == "02245" and after["pending_events"] == 0
        assert after["rejected"] == [] and after["warning"] is None, after  # calm, none refused
        assert run("edge-node", "sync", "--data", con_lon).returncode == 0
        assert status(con_lon)["dossiers"] == 2  # Sinh Long's, now Côn Lôn's

    db = sqlite3.connect(data / "hub.db")
    try:
        assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert db.execute("SELECT DISTINCT commune FROM nodes").fetchall() == [("02245",)]
    finally:
        db.close()
