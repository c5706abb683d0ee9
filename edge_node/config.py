"""The edge node's configuration and identity: `node.toml` in the data dir, written at enrollment."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import ValidationError
from service import config as cfg
from service.loopback import is_loopback_url

log = logging.getLogger(__name__)

CONFIG_FILE = "node.toml"
DB_FILE = "edge.db"


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """Who this node is, where its hub is, and how it syncs."""

    node: str
    commune: str
    commune_name: str
    agency: str
    hub_url: str
    credential: str
    host: str = "127.0.0.1"
    port: int = 8701
    sync_interval_s: float = 30.0
    backoff_cap_s: float = 300.0
    request_timeout_s: float = 60.0
    batch_bytes: int = 64 * 1024
    batch_bytes_max: int = 4 * 1024 * 1024
    want_bytes: int = 1024 * 1024
    auto_sync: bool = True
    insecure_http: bool = False  # allow plain http:// to a hub that is not on this machine
    idle_logout_min: float = 30.0  # a desk session ends after this long without activity; 0: never
    disk_floor_mb: int = 500  # below this much free disk: no new intake or attachments
    disk_hard_floor_mb: int = 100  # below this: the hub's answers are not applied either
    lan_names: str = ""  # extra names/IPs (comma-separated) for the LAN certificate
    backup_dir: str = ""  # the daily backup's folder (another disk, a USB stick); "": none
    backup_every_h: float = 24.0  # a backup there once this long has passed since the newest
    backup_keep: int = 7  # how many of them are kept there (the oldest go)

    def validate(self) -> None:
        """Raise ValidationError naming the first bad field."""
        if not self.hub_url.startswith(("http://", "https://")):
            raise ValidationError("hub_url must start with http:// or https://", field="hub_url")
        if self.hub_url.startswith("http://") and not self.insecure_http \
                and not is_loopback_url(self.hub_url):
            raise ValidationError("hub_url: plain http:// only to a hub on this machine; use "
                                  "https:// or set insecure_http = true", field="hub_url")
        if not 0 < self.port < 65536:
            raise ValidationError("port must be 1–65535", field="port")
        if self.backoff_cap_s <= 0 or self.sync_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ValidationError("intervals and timeouts must be positive", field="backoff_cap_s")
        if self.idle_logout_min < 0:
            raise ValidationError("idle_logout_min must be 0 (never) or more", field="idle_logout_min")
        if not 0 <= self.disk_hard_floor_mb <= self.disk_floor_mb:
            raise ValidationError("need 0 <= disk_hard_floor_mb <= disk_floor_mb",
                                  field="disk_hard_floor_mb")
        if self.backup_every_h <= 0:
            raise ValidationError("backup_every_h must be positive", field="backup_every_h")
        if self.backup_keep < 1:
            raise ValidationError("backup_keep must be 1 or more", field="backup_keep")
        if not 1024 <= self.batch_bytes <= self.batch_bytes_max:
            raise ValidationError("batch_bytes must be 1 KiB … batch_bytes_max", field="batch_bytes")


def load(data_dir: Path) -> EdgeConfig:
    """Read the node's config; a clear error if the data dir is not initialized."""
    if not data_dir.is_dir():
        raise ValidationError(f"data dir {data_dir} does not exist: run `edge-node init` first")
    return cfg.load(EdgeConfig, data_dir / CONFIG_FILE)


def save(data_dir: Path, config: EdgeConfig) -> None:
    """Write the node's config (owner-only: it holds the node credential)."""
    cfg.dump(config, data_dir / CONFIG_FILE)
