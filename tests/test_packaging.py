"""What a province installs: the extras per role (an edge without asyncpg or prometheus_client),
the version from the package metadata, the hash-pinned locks, the wheelhouse installed offline into
a fresh venv, and the files under etc/ (sample configs through the real loaders, systemd units
through the real command lines, the nginx example through `nginx -t` and real traffic)."""

from __future__ import annotations

import ast
import configparser
import dataclasses
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import protocol
from central_hub import cli as hub_cli
from central_hub import config as hub_config
from edge_node import cli as edge_cli
from edge_node import config as edge_config
from tests.served import free_port

ROOT = Path(__file__).resolve().parent.parent
ETC = ROOT / "etc"
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ROLES = {"edge": ["edge"], "hub": ["hub"], "hub-postgres": ["hub", "postgres"]}
HUB_ONLY = {"asyncpg", "prometheus-client"}
HUB_NAME, DASHBOARD_NAME = "hub.sotttt.example.gov.vn", "dashboard.sotttt.example.gov.vn"

# Run code as on a PC where these distributions are not installed: their imports fail.
BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Block())
""")


def run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked) + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


# -- version and extras ---------------------------------------------------------------------------

def test_the_version_is_the_one_in_pyproject_read_from_the_metadata() -> None:
    assert protocol.APP_VERSION == metadata.version("commune-sync") == PYPROJECT["project"]["version"]
    tree = ast.parse((ROOT / "protocol" / "__init__.py").read_text(encoding="utf-8"))
    [assign] = [n for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "APP_VERSION" for t in n.targets)]
    assert isinstance(assign.value, ast.Call), "APP_VERSION must not repeat the number"


def test_an_uninstalled_tree_says_its_version_is_unknown() -> None:
    assert protocol.installed_version("commune-sync-not-installed") == protocol.UNKNOWN_VERSION
    assert protocol.UNKNOWN_VERSION.startswith("0+")  # a valid version, lower than any release


def test_the_extras_split_the_dependencies_by_role() -> None:
    project = PYPROJECT["project"]
    base = {Requirement(r).name for r in project["dependencies"]}
    extras = {k: {Requirement(r).name for r in v} for k, v in project["optional-dependencies"].items()}
    assert not base & {"asyncpg", "prometheus_client"}
    assert extras["edge"] == set() and extras["hub"] == {"prometheus_client"}
    assert extras["postgres"] == {"asyncpg"}
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    assert any(r.name == "commune-sync" and r.extras == {"hub", "postgres"} for r in dev)
    assert project["license"] == "Apache-2.0"  # SPDX: no deprecation warning on every install


def test_an_edge_runs_without_asyncpg_or_prometheus_client() -> None:
    result = run_without({"asyncpg", "prometheus_client"}, textwrap.dedent("""
        import importlib, pkgutil, edge_node
        for m in pkgutil.walk_packages(edge_node.__path__, "edge_node."):
            if m.name != "edge_node.__main__":
                importlib.import_module(m.name)
        from edge_node.cli import main
        assert main(["status", "--data", "/nonexistent/node"]) != 0
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        loaded = [m for m in sys.modules if m.split(".")[0] in ("asyncpg", "prometheus_client",
                                                                 "central_hub")]
        assert loaded == [], loaded
        print("EDGE OK")
    """))
    assert result.returncode == 0 and "EDGE OK" in result.stdout, result.stderr


def test_a_sqlite_hub_runs_without_asyncpg_and_says_when_postgresql_needs_it() -> None:
    result = run_without({"asyncpg"}, textwrap.dedent("""
        import asyncio, importlib, pkgutil, central_hub
        for m in pkgutil.walk_packages(central_hub.__path__, "central_hub."):
            if m.name != "central_hub.__main__":
                importlib.import_module(m.name)
        from protocol.errors import StoreError
        from service.db import PgConnection
        try:
            asyncio.run(PgConnection.open("postgresql://nobody@127.0.0.1:1/none"))
        except StoreError as exc:
            print(exc)
    """))
    assert result.returncode == 0, result.stderr
    assert "pip install 'commune-sync[hub,postgres]'" in result.stdout


def test_central_hub_without_the_hub_extra_says_so_in_one_line() -> None:
    result = run_without({"prometheus_client"}, "import runpy; runpy.run_module('central_hub', "
                                                "run_name='__main__')")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("central-hub: error:") and len(result.stderr.splitlines()) == 1
    assert "'commune-sync[hub]'" in result.stderr


# -- the locks ------------------------------------------------------------------------------------

def pins(name: str) -> dict[str, str]:
    """{distribution: version} of a lock, checking that every pin carries hashes."""
    text = (LOCKS / f"{name}.txt").read_text(encoding="utf-8")
    assert "make lock" in text.splitlines()[1]
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2]):
        head = block.split(" \\", 1)[0]
        req = Requirement(head)
        assert "--hash=sha256:" in block, head
        [spec] = req.specifier
        assert spec.operator == "==", head
        found[req.name] = spec.version
    return found


def satisfied(requirements: list[str], locked: dict[str, str]) -> None:
    for line in requirements:
        req = Requirement(line)
        if req.name == "commune-sync":
            continue
        name = req.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in the lock"
        assert req.specifier.contains(locked[name]), f"{name}=={locked[name]} breaks {req}"


def test_each_role_has_a_hash_pinned_lock_that_satisfies_pyproject() -> None:
    project = PYPROJECT["project"]
    dev = pins("dev")
    satisfied(project["dependencies"] + project["optional-dependencies"]["dev"], dev)
    for role, extras in ROLES.items():
        locked = pins(role)
        satisfied(project["dependencies"] + [r for e in extras
                                             for r in project["optional-dependencies"][e]], locked)
        assert all(dev[name] == version for name, version in locked.items()), role  # one resolution
    assert not set(pins("edge")) & HUB_ONLY
    assert set(pins("hub")) & HUB_ONLY == {"prometheus-client"}
    assert set(pins("hub-postgres")) >= HUB_ONLY


# -- etc/: sample configs, systemd units ----------------------------------------------------------

def sample_keys(path: Path) -> dict[str, object]:
    """The sample's settings; each must be explained (a comment on its line or just above)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            above = next((x for x in reversed(lines[:i]) if not re.match(r"^\w+ = ", x)), "")
            assert "#" in line or above.startswith("#"), f"{path.name}: {line} is not explained"
    return tomllib.loads(path.read_text(encoding="utf-8"))


def same_as_defaults(raw: dict[str, object], cls: type, where: str) -> None:
    """Every field of `cls` is in the sample, no other, at its default; a field whose default is
    a dataclass is a `[table]` of its own."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(raw) == set(fields), f"{where} and {cls.__name__} differ: {set(raw) ^ set(fields)}"
    for name, field in fields.items():
        if dataclasses.is_dataclass(field.default):
            assert isinstance(raw[name], dict), f"{where}: {name} must be a [{name}] table"
            same_as_defaults(raw[name], type(field.default), f"{where} [{name}]")
        elif field.default is not dataclasses.MISSING:
            assert raw[name] == field.default, f"{where}: {name} = {raw[name]!r}, default {field.default!r}"


@pytest.mark.parametrize(("sample", "cls", "module"), [
    ("hub.toml", hub_config.HubConfig, hub_config), ("node.toml", edge_config.EdgeConfig, edge_config)])
def test_sample_configs_list_every_setting_with_its_default_and_load(
        tmp_path: Path, sample: str, cls: type, module: object) -> None:
    raw = sample_keys(ETC / sample)
    same_as_defaults(raw, cls, sample)
    shutil.copy(ETC / sample, tmp_path / sample)
    loaded = module.load(tmp_path)  # type: ignore[attr-defined]
    required = {f.name: raw[f.name] for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING}  # the identity `edge-node init` writes
    assert loaded == cls(**required)  # through the real loader: the defaults, nothing else


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ETC / "systemd" / name).read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize(("name", "prog", "handler"), [
    ("commune-hub.service", "central-hub", "serve"), ("commune-edge.service", "edge-node", "serve")])
def test_systemd_units_start_the_real_command_as_its_own_user(name: str, prog: str,
                                                             handler: str) -> None:
    u = unit(name)
    assert u.sections() == ["Unit", "Service", "Install"]
    service = u["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == f"/opt/commune-sync/bin/{prog}"
    args = (hub_cli if prog == "central-hub" else edge_cli).parser().parse_args(argv[1:])
    assert args.handler == handler
    assert args.data == Path("/var/lib") / service["StateDirectory"]
    assert service["User"] not in ("", "root") and service["Restart"] == "always"
    assert service["KillSignal"] == "SIGTERM" and service["ProtectSystem"] == "strict"
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_the_backup_timer_runs_a_real_backup_command() -> None:
    service, timer = unit("commune-hub-backup.service"), unit("commune-hub-backup.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
    shell = shlex.split(service["Service"]["ExecStart"])
    assert shell[:2] == ["/bin/sh", "-c"]
    argv = shlex.split(re.sub(r"\$\(date [^)]*\)", "2026-12-06-0230", shell[2]))  # as sh expands it
    assert argv[:2] == ["exec", "/opt/commune-sync/bin/central-hub"]
    args = hub_cli.parser().parse_args(argv[2:])
    assert args.handler == "backup" and args.data == Path("/var/lib/commune-hub")
    assert str(args.dest).startswith("/backup/") and "/backup" in service["Service"]["ReadWritePaths"]


def settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_deployment_page_shows_every_file_under_etc() -> None:
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for path in sorted(ETC.rglob("*")):
        if path.is_file():
            assert f"etc/{path.relative_to(ETC)}" in page, path
    shown = [settings(block) for block in re.findall(r"```ini\n(.*?)```", page, re.S)]
    for name in ("commune-hub.service", "commune-edge.service"):  # shown in full: the same file
        assert settings((ETC / "systemd" / name).read_text(encoding="utf-8")) in shown, name


# -- the nginx example ----------------------------------------------------------------------------

NGINX = (ETC / "nginx" / "commune-hub.conf").read_text(encoding="utf-8")


def blocks(text: str) -> dict[str, str]:
    """Top-level `name { … }` blocks of an nginx file, comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    assert text.count("{") == text.count("}")
    found, depth, start, name = {}, 0, 0, ""
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                name, start = text[text.rfind(";", 0, i) + 1:i].split("}")[-1].strip(), i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                found[name] = text[start:i]
    return found


def test_nginx_passes_the_nodes_tls_through_and_keeps_them_off_the_terminating_name() -> None:
    top = blocks(NGINX)
    assert {"events", "stream", "http"} <= set(top)
    stream = top["stream"]
    assert "ssl_preread on" in stream and "ssl_certificate" not in stream  # nodes: not decrypted
    assert re.search(r"default\s+commune_hub;", stream)
    http = top["http"]
    assert re.search(r"location /v1/ \{\s*return 403;", http)  # no node API through termination
    assert "proxy_ssl_verify on" in http and "proxy_set_header Host $http_host" in http


def nginx_files(tmp: Path, hub_ca: Path) -> dict[str, str]:
    """Test stand-ins for the example's certificate and log paths."""
    key, cert = tmp / "dashboard.key", tmp / "dashboard.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={DASHBOARD_NAME}", "-addext", f"subjectAltName=DNS:{DASHBOARD_NAME}"],
                   check=True, capture_output=True)
    return {"/etc/nginx/tls/dashboard.crt": str(cert), "/etc/nginx/tls/dashboard.key": str(key),
            "/etc/nginx/tls/commune-hub-ca.crt": str(hub_ca), "/run/nginx.pid": str(tmp / "nginx.pid"),
            "/var/log/nginx/": str(tmp) + "/"}


def need_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing in CI: .ci/run installs nginx and libnginx-mod-stream")
        pytest.skip("nginx is not installed (apt-get install nginx libnginx-mod-stream)")
    return found


def test_nginx_accepts_the_example(tmp_path: Path) -> None:
    nginx = need_nginx()
    text = NGINX
    for old, new in nginx_files(tmp_path, hub_ca=tmp_path / "dashboard.crt").items():
        text = text.replace(old, new)
    (tmp_path / "nginx.conf").write_text(text, encoding="utf-8")
    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and "syntax is ok" in result.stderr, result.stderr


# -- a real hub (https) for the tests that talk to one --------------------------------------------

@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    data = tmp_path_factory.mktemp("hub") / "hub"
    subprocess.run([sys.executable, "-m", "central_hub", "init", "--data", str(data), "--host",
                    HUB_NAME], check=True, capture_output=True, cwd=ROOT, timeout=120)
    port = free_port()
    with (data.parent / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "central_hub", "serve", "--data", str(data),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while b"serving on https" not in (data.parent / "serve.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (data.parent / "serve.log").read_text()
            time.sleep(0.1)
        yield data, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def token(data: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "central_hub", "enroll", "--data", str(data),
                          "--commune", "02245", "--name", "Xã Côn Lôn"], check=True,
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    return out.stdout.strip()


def get(port: int, sni: str, path: str, cafile: Path) -> tuple[int, str]:
    """One HTTPS GET to 127.0.0.1:port asking for the name `sni` (what a browser would send)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.slow
def test_through_the_nginx_example_nodes_keep_their_certificates_and_operators_get_theirs(
        tmp_path: Path, hub: tuple[Path, int]) -> None:
    nginx = need_nginx()
    if os.geteuid() != 0:
        pytest.skip("running nginx with the example's `user` needs root")
    data, hub_port = hub
    files = nginx_files(tmp_path, data / "tls" / "ca.crt")
    edge_port, dashboard_port = free_port(), free_port()
    text = re.sub(r"#[^\n]*", "", NGINX).replace("server 10.0.0.12:8700;", "")
    text = text.replace("10.0.0.11:8700", f"127.0.0.1:{hub_port}")  # loopback only
    text = text.replace("listen 443;", f"listen 127.0.0.1:{edge_port};")
    text = text.replace("127.0.0.1:8443", f"127.0.0.1:{dashboard_port}")
    for old, new in files.items():
        text = text.replace(old, new)
    assert "10.0.0." not in text and "443" not in text.replace(str(edge_port), "")
    (tmp_path / "nginx.conf").write_text(text, encoding="utf-8")
    proc = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # logs: error.log
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "nginx.pid").exists():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "error.log").read_text(errors="replace")
            time.sleep(0.05)
        # a node enrolls and syncs through the passthrough: its certificate reaches the hub
        node = tmp_path / "node"
        for argv in (["init", "--data", str(node), "--hub", f"https://127.0.0.1:{edge_port}",
                      "--token", token(data)], ["sync", "--data", str(node)]):
            result = subprocess.run([sys.executable, "-m", "edge_node", *argv], capture_output=True,
                                    text=True, cwd=ROOT, timeout=120, check=False)
            assert result.returncode == 0, result.stderr
        status, body = get(edge_port, HUB_NAME, "/healthz", data / "tls" / "ca.crt")
        assert status == 200 and '"ok": true' in body
        # an operator's browser: nginx's own certificate for the dashboard's name
        status, body = get(edge_port, DASHBOARD_NAME, "/healthz",
                           Path(files["/etc/nginx/tls/dashboard.crt"]))
        assert status == 200 and '"ok": true' in body, body
        status, _ = get(edge_port, DASHBOARD_NAME, "/v1/ca", Path(files["/etc/nginx/tls/dashboard.crt"]))
        assert status == 403
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=30)


# -- the wheelhouse, installed offline ------------------------------------------------------------

def offline_pip(venv: Path, wheelhouse: Path, role: str) -> subprocess.CompletedProcess[str]:
    """The documented command, with no pip configuration and (as root) no network at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    jail = ["unshare", "--net", "--"] if os.geteuid() == 0 and shutil.which("unshare") else []
    return subprocess.run([*jail, str(venv / "bin" / "pip"), "install", "--no-index", "--find-links",
                           str(wheelhouse), "--require-hashes", "-r", str(wheelhouse / f"{role}.txt")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def installed(venv: Path) -> set[str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
                          "print('\\n'.join(d.metadata['Name'].lower().replace('_', '-') "
                          "for d in m.distributions()))"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.slow
def test_the_wheelhouse_installs_an_edge_and_a_hub_offline(tmp_path: Path,
                                                           hub: tuple[Path, int]) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    made = subprocess.run(["make", "--no-print-directory", "wheelhouse", f"WHEELHOUSE={wheelhouse}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    assert {f"{role}.txt" for role in ROLES} <= {p.name for p in wheelhouse.iterdir()}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)

    result = offline_pip(venv, wheelhouse, "edge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "commune-sync" in installed(venv) and not installed(venv) & HUB_ONLY
    data, port = hub
    node = tmp_path / "node"
    for argv in (["--help"], ["init", "--data", str(node), "--hub", f"https://127.0.0.1:{port}",
                              "--token", token(data)], ["sync", "--data", str(node)]):
        result = subprocess.run([str(venv / "bin" / "edge-node"), *argv], capture_output=True,
                                text=True, cwd=tmp_path, timeout=120, check=False)
        assert result.returncode == 0, result.stderr

    result = offline_pip(venv, wheelhouse, "hub")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(venv) & HUB_ONLY == {"prometheus-client"}
    hub_help = subprocess.run([str(venv / "bin" / "central-hub"), "--help"], capture_output=True,
                              text=True, timeout=120, check=False)
    assert hub_help.returncode == 0, hub_help.stderr
    result = offline_pip(venv, wheelhouse, "hub-postgres")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(venv) >= HUB_ONLY
