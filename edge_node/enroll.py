"""Enrollment: exchange the hub's one-time token for this node's identity, then create the data dir."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import aiohttp

from edge_node import config as edge_config
from edge_node.app import open_accounts
from edge_node.config import EdgeConfig
from edge_node.store import EdgeStore
from protocol.errors import AuthError, NetworkError, ValidationError
from service.dossier_store import wall_clock_ms

log = logging.getLogger(__name__)


async def enroll(data: Path, hub_url: str, token: str) -> EdgeConfig:
    """Enroll with the hub and initialize `data`; nothing is left behind if it fails."""
    if (data / edge_config.CONFIG_FILE).exists():
        raise ValidationError(f"{data} is already initialized as a node")
    hub = hub_url.rstrip("/")
    if not hub.startswith(("http://", "https://")):
        raise ValidationError("--hub must start with http:// or https://")
    t_sent = wall_clock_ms()
    try:
        async with aiohttp.ClientSession() as http, http.post(
                f"{hub}/v1/enroll", json={"token": token},
                timeout=aiohttp.ClientTimeout(total=30)) as resp:
            answer = await resp.json(content_type=None)
            status = resp.status
        t_received = wall_clock_ms()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NetworkError(f"cannot reach the hub at {hub}: {exc or exc.__class__.__name__}") \
            from exc
    except ValueError as exc:
        raise NetworkError(f"{hub} did not answer like a hub") from exc
    if status != 200 or not isinstance(answer, dict):
        message = answer.get("message") if isinstance(answer, dict) else str(answer)
        raise AuthError(f"enrollment refused ({status}): {message}")
    created = not data.exists()
    data.mkdir(parents=True, exist_ok=True)
    try:
        config = EdgeConfig(node=answer["node"], commune=answer["commune"],
                            commune_name=answer["commune_name"], agency=answer["agency"],
                            hub_url=hub, credential=answer["credential"])
        edge_config.save(data, config)
        store = await EdgeStore.open(data / edge_config.DB_FILE, config.node, config.commune,
                                     config.agency)
        hub_time = answer.get("hub_time")
        if isinstance(hub_time, int):  # start with corrected time, before the first sync
            await store.set_meta("clock_correction_ms", hub_time - (t_sent + t_received) // 2)
        await store.close()
        accounts = await open_accounts(data)
        await accounts.conn.close()
    except BaseException:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        raise
    return config
