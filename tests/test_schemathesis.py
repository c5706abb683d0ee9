"""schemathesis against both live servers: real `central-hub serve` and `edge-node serve` processes,
an enrolled edge, a seeded dossier that has synced, with an attachment, a comment and an open
conflict on both sides. Every generated request (valid and invalid) must get no 5xx, a status and
content type the document declares, a body matching its schema, 4xx for schema-invalid input,
and 401 without a login where one is needed.

`make test` runs API_FUZZ_EXAMPLES (default 10) cases per operation with a fixed seed;
`make fuzz` runs many more with a fresh seed each time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import PASSWORD, birth
from tests.served import ROOT, Served, serve, serve_edge

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("API_FUZZ_SEED", "1")  # "random": a fresh seed
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@dataclass
class Live:
    hub: Served
    edge: Served
    hub_token: str
    edge_token: str
    dossier: dict[str, Any]
    node: str
    sha: str
    portal_key: str = ""
    filing: dict[str, Any] | None = None


def cli(module: str, *args: str | Path, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], input=stdin,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def call(base: str, method: str, path: str, body: Any = None, token: str = "",
         data: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    raw = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=raw, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login(base: str, username: str) -> str:
    status, answer = call(base, "POST", "/api/login", {"username": username,
                                                       "password": PASSWORD})
    assert status == 200, answer
    return str(answer["token"])


def until(what: str, check: Any, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def upload(base: str, token: str, dossier: str) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"scan.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").encode() + PDF + \
        f"\r\n--{boundary}--\r\n".encode()
    status, view = call(base, "POST", f"/api/dossiers/{dossier}/attachments", token=token,
                        data=form, content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 201, view
    return dict(view)


def seed(hub: Served, edge: Served) -> Live:
    """A dossier received at the edge, with a scan and a comment, synced, then edited on both
    sides at once: an open conflict everywhere."""
    hub_token, edge_token = login(hub.url, "op"), login(edge.url, "leader")
    status, made = call(edge.url, "POST", "/api/dossiers", birth(), edge_token)
    assert status == 201, made
    did = made["id"]
    upload(edge.url, edge_token, did)
    status, _ = call(edge.url, "POST", f"/api/dossiers/{did}/comments", {"text": "đã nhận"},
                     edge_token)
    assert status == 200
    _, before = call(edge.url, "GET", f"/api/dossiers/{did}", token=edge_token)

    def at_hub() -> Any:
        call(edge.url, "POST", "/api/sync", token=edge_token)
        status, view = call(hub.url, "GET", f"/api/dossiers/{did}", token=hub_token)
        return view if status == 200 and len(view["history"]) == len(before["history"]) else None

    hub_view = until("the dossier at the hub", at_hub)
    status, answer = call(hub.url, "PATCH", f"/api/dossiers/{did}",
                          {"set": {"applicant.address": "Huyện sửa"},
                           "base": hub_view["version"]}, hub_token)
    assert status == 200, answer
    status, answer = call(edge.url, "PATCH", f"/api/dossiers/{did}",
                          {"set": {"applicant.address": "Xã sửa"}, "base": before["version"]},
                          edge_token)
    assert status == 200, answer

    def conflicted() -> Any:
        call(edge.url, "POST", "/api/sync", token=edge_token)
        views = [call(base, "GET", f"/api/dossiers/{did}", token=token)[1]
                 for base, token in ((edge.url, edge_token), (hub.url, hub_token))]
        return views[0] if all(v["conflicts"] for v in views) else None

    view = until("the conflict on both sides", conflicted)
    status, nodes = call(hub.url, "GET", "/api/nodes", token=hub_token)
    assert status == 200 and len(nodes["items"]) == 1, nodes
    return Live(hub, edge, hub_token, edge_token, view, nodes["items"][0]["node"],
                view["attachments"][0]["sha256"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("schemathesis")
    hub_dir, edge_dir = root / "hub", root / "edge"
    cli("central_hub", "init", "--data", hub_dir)
    cli("central_hub", "operator", "add", "--data", hub_dir, "--username", "op",
        stdin=PASSWORD + "\n")
    with serve(hub_dir) as hub:
        token = cli("central_hub", "enroll", "--data", hub_dir, "--commune", "02245",
                    "--name", "Xã Côn Lôn").strip()
        cli("edge_node", "init", "--data", edge_dir, "--hub", hub.url, f"--token={token}")
        cli("edge_node", "user", "add", "--data", edge_dir, "--username", "leader",
            "--role", "leader", stdin=PASSWORD + "\n")
        with serve_edge(edge_dir) as edge:
            live = seed(hub, edge)
            # the province portal's key and one filing of its own (online intake)
            key = cli("central_hub", "portal", "add", "--data", hub_dir, "--name", "dvc").strip()
            status, made = call(hub.url, "POST", "/api/submissions",
                                {**birth(citizen_id="008090004321"), "commune": "02245"}, key)
            assert status == 201, made
            yield dataclasses.replace(live, portal_key=key, filing=made)


def config(live: Live, where: Path) -> Path:
    """Real values schemathesis draws from often (ids of the seeded dossier, its version…), so
    the cases reach the stores, not only the 404s of made-up ids."""
    view, filing = live.dossier, live.filing or {}
    dictionaries = {
        "ids": [view["id"], filing.get("id", view["id"])], "shas": [live.sha],
        "nodes": [live.node], "codes": [view["code"], filing.get("code", view["code"])],
        "checks": [filing.get("tracking", "0000000000")], "communes": ["02245"],
        "versions": [view["version"]], "paths": [view["conflicts"][0]["field"]],
        "procedures": [view["procedure_code"]], "citizens": ["008090001234"],
    }
    bindings = {"path.id": "ids", "path.sha": "shas", "path.node": "nodes",
                "body.base": "versions", "body.field": "paths",
                "body.procedure_code": "procedures", "body.applicant.citizen_id": "citizens",
                "query.code": "codes", "query.check": "checks", "body.commune": "communes"}
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.7 }}'
              for key, name in bindings.items()]
    path = where / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(base: str, token: str, where: Path, cfg: Path) -> subprocess.CompletedProcess[str]:
    seed_args = [] if SEED == "random" else ["--seed", SEED]
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(cfg), "run",
            f"{base}/api/openapi.json", "--url", base,
            "-H", f"Authorization: Bearer {token}",
            "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--workers", "2",
            "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
            # ending the run's own token would turn every later case into a 401
            "--exclude-path", "/api/logout",
            "--request-timeout", "30", "--no-color", "--output-truncate", "false",
            "--report", "junit", "--report-dir", str(where), *seed_args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=where, timeout=900,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("side", ["edge", "hub", "portal"])
def test_the_live_api_matches_its_document(live: Live, side: str, tmp_path: Path) -> None:
    """`portal`: the hub's API with the portal's key, which files dossiers and is nobody (401)
    on every operator route."""
    base, token = {"edge": (live.edge.url, live.edge_token),
                   "hub": (live.hub.url, live.hub_token),
                   "portal": (live.hub.url, live.portal_key)}[side]
    result = run_schemathesis(base, token, tmp_path, config(live, tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-20000:]
    assert " passed" in out, out[-5000:]
    logs = live.edge.log() + live.hub.log()
    assert "unhandled error" not in logs, logs[-5000:]  # the 500s error_middleware logs
