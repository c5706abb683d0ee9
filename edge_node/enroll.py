"""Enrollment: exchange the hub's one-time token for this node's identity, then create the data dir."""

from __future__ import annotations

import logging
import shutil
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from edge_node import config as edge_config
from edge_node import hubtime, lan
from edge_node.app import open_accounts
from edge_node.config import EdgeConfig
from edge_node.identity import Identity
from edge_node.store import EdgeStore
from protocol.errors import AuthError, NetworkError, RemoteProtocolError, ValidationError
from protocol.session import hub_clock_at
from service import certclock, pki
from service.hubtime import wall_clock_ms
from service.loopback import is_loopback_url

log = logging.getLogger(__name__)

REPLACES_KEY = "replaces"  # meta: the node this one replaced at enrollment


def check_hub_url(hub: str, insecure_http: bool) -> str:
    """The hub URL without a trailing slash; plain HTTP only to loopback unless forced."""
    hub = hub.rstrip("/")
    if not hub.startswith(("http://", "https://")):
        raise ValidationError("--hub must start with http:// or https://")
    if hub.startswith("http://") and not insecure_http and not is_loopback_url(hub):
        raise ValidationError("plain http:// is for a hub on this machine (loopback) only: use "
                              "https://, or pass --insecure-http to force it")
    return hub


async def _get_ca(hub: str) -> str:
    """The hub's CA certificate, fetched without trusting anything (checked by the caller)."""
    connector = aiohttp.TCPConnector(ssl=pki.unverified_context())
    try:
        async with aiohttp.ClientSession(connector=connector) as http, http.get(
                f"{hub}/v1/ca", timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                raise AuthError(f"the hub did not hand out its CA ({resp.status}): is it "
                                "serving HTTPS with `central-hub init` TLS material?")
            return (await resp.content.read(pki.MAX_PEM)).decode("ascii", "replace")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NetworkError(f"cannot reach the hub at {hub}: {exc or exc.__class__.__name__}") \
            from exc


async def _pinned_ca(hub: str, token: str, ca_file: Path | None) -> str:
    """The CA to pin: from `--ca-cert`, or fetched and matched against the token's
    fingerprint before the token itself is sent anywhere."""
    _, pin = pki.split_token(token)
    if ca_file is not None:
        try:
            ca_pem = ca_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read --ca-cert {ca_file}: {exc}") from exc
    elif pin is None or len(pin) < pki.FINGERPRINT_HEX:
        raise ValidationError("this token carries no CA fingerprint (enr_….<fingerprint>): take a "
                              "token printed by a hub with TLS, or pass --ca-cert")
    else:
        ca_pem = await _get_ca(hub)
    try:
        fingerprint = pki.fingerprint(pki.load_cert(ca_pem))
    except RemoteProtocolError as exc:
        raise AuthError(f"the hub's CA certificate is unreadable: {exc.message}") from exc
    if pin is not None and not fingerprint.startswith(pin):
        raise AuthError("the hub's CA does not match the fingerprint in the token: someone may "
                        "be intercepting the connection; nothing was sent")
    return ca_pem


async def _request(hub: str, body: dict[str, Any], ctx: ssl.SSLContext | None
                   ) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(ssl=ctx) if ctx is not None else None
    try:
        async with aiohttp.ClientSession(connector=connector) as http, http.post(
                f"{hub}/v1/enroll", json=body,
                timeout=aiohttp.ClientTimeout(total=30)) as resp:
            return resp.status, await resp.json(content_type=None)
    except aiohttp.ClientConnectorCertificateError as exc:
        raise hubtime.cert_refusal(exc, hubtime.HubClock()) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        hint = ""
        if hub.startswith("http://") and isinstance(exc, aiohttp.ServerDisconnectedError):
            # a TLS server hangs up on plain HTTP without a word
            hint = (" (a hub set up by `central-hub init` serves HTTPS: try --hub "
                    f"https://{hub.removeprefix('http://')})")
        raise NetworkError(f"cannot reach the hub at {hub}: "
                           f"{exc or exc.__class__.__name__}{hint}") from exc
    except ValueError as exc:
        raise NetworkError(f"{hub} did not answer like a hub") from exc


async def enroll(data: Path, hub_url: str, token: str, ca_file: Path | None = None,
                 insecure_http: bool = False, lan_names: str = "") -> EdgeConfig:
    """Enroll with the hub and initialize `data`; nothing is left behind if it fails.

    Over https:// the node makes its key pair here, pins the province's CA (checked against the
    token's fingerprint, or given with `ca_file`) and sends only a certificate request; over
    plain http:// (loopback development) it receives a bearer credential."""
    if (data / edge_config.CONFIG_FILE).exists():
        raise ValidationError(f"{data} is already initialized as a node")
    hub = check_hub_url(hub_url, insecure_http)
    key: pki.PrivateKey | None = None
    lan_key: pki.PrivateKey | None = None
    ca_pem = ""
    body: dict[str, Any] = {"token": token}
    ctx = None
    if hub.startswith("https://"):
        ca_pem = await _pinned_ca(hub, token, ca_file)
        # The pinned CA only, no system CAs; certificate dates judged by the hub's time, learned
        # first by a probe that carries nothing (this machine's clock may be years off).
        clock = hubtime.HubClock()
        await hubtime.probe(hub, ca_pem, clock, 30)
        ctx = certclock.dated_context(ca_pem, None, clock.view)
        key = pki.new_key()
        body["csr"] = pki.make_csr(key).decode()
        lan_key, lan_body = lan.request_body(hub, lan_names)  # HTTPS for the office's desks
        body.update(lan_body)
    t_sent = wall_clock_ms()
    status, answer = await _request(hub, body, ctx)
    t_received = wall_clock_ms()
    if status != 200 or not isinstance(answer, dict):
        message = answer.get("message") if isinstance(answer, dict) else str(answer)
        raise AuthError(f"enrollment refused ({status}): {message}")
    created = not data.exists()
    data.mkdir(parents=True, exist_ok=True)
    try:
        if key is not None:
            identity = Identity(data)
            identity.pin(ca_pem)
            identity.accept(key, str(answer.get("certificate", "")), str(answer["node"]))
            if lan_key is not None:
                lan.accept(data, identity.ca(), lan_key, answer.get("lan_certificate"))
        config = EdgeConfig(node=answer["node"], commune=answer["commune"],
                            commune_name=answer["commune_name"], agency=answer["agency"],
                            hub_url=hub, credential=str(answer.get("credential", "")),
                            insecure_http=insecure_http, lan_names=lan_names)
        edge_config.save(data, config)
        store = await EdgeStore.open(data / edge_config.DB_FILE, config.node, config.commune,
                                     config.agency)
        if answer.get("replaces"):  # a new PC for a dead one: `edge-node init` says so
            await store.log.set_meta(REPLACES_KEY, str(answer["replaces"]))
        hub_time = answer.get("hub_time")
        if isinstance(hub_time, int):  # start with corrected time, before the first sync
            correction = hub_clock_at(hub_time, (t_received - t_sent) / 1000) - t_received
            await store.log.set_meta("clock_correction_ms", correction)
        await store.close()
        accounts = await open_accounts(data)
        await accounts.conn.close()
    except BaseException:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        raise
    return config


async def replaced_node(data: Path, config: EdgeConfig) -> str:
    """The node this one was enrolled to replace ("" if none)."""
    store = await EdgeStore.open(data / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    try:
        return str(await store.log.get_meta(REPLACES_KEY, "") or "")
    finally:
        await store.close()
