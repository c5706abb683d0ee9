"""The hub's configuration: `hub.toml` in the data dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import ValidationError
from service import config as cfg

log = logging.getLogger(__name__)

CONFIG_FILE = "hub.toml"


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Where the hub keeps its data and how it serves."""

    db: str = "sqlite"
    host: str = "127.0.0.1"
    port: int = 8700
    max_want_bytes: int = 4 * 1024 * 1024
    province: str = "08"

    def validate(self) -> None:
        """Raise ValidationError naming the first bad field."""
        if self.db != "sqlite":
            raise ValidationError(
                "db: only the embedded SQLite store is available in this version "
                "(PostgreSQL is planned)", field="db")
        if not 0 < self.port < 65536:
            raise ValidationError("port must be 1–65535", field="port")


def load(data_dir: Path) -> HubConfig:
    """Read the hub's config; a clear error if the data dir is not initialized."""
    if not (data_dir / CONFIG_FILE).is_file():
        raise ValidationError(f"{data_dir} is not a hub data dir: run `central-hub init` first")
    return cfg.load(HubConfig, data_dir / CONFIG_FILE)


def save(data_dir: Path, config: HubConfig) -> None:
    """Write the hub's config."""
    cfg.dump(config, data_dir / CONFIG_FILE)
