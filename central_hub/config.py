"""The hub's configuration: `hub.toml` in the data dir."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from central_hub.nodes.health import DEFAULT_RULES, HealthRules
from protocol.errors import ValidationError
from service import config as cfg
from service.db import is_pg_url

log = logging.getLogger(__name__)

CONFIG_FILE = "hub.toml"
AGENCY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]{0,31}$")
NODE_LIKE = re.compile(r"^\d{5}\.\d+$")  # node ids (`02245.01`) are the edges' prefixes
LOG_FORMATS = ("text", "json")
# The name a province's code is shown with when hub.toml gives no `province_name`.
PROVINCE_NAMES = {"08": "Tỉnh Tuyên Quang"}


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Where the hub keeps its data, how it serves, when a node is unhealthy and whom to tell.

    `health` holds the thresholds, `central_hub.nodes.health.HealthRules` (hub.toml `[health]`;
    the older flat `health_warn_no_contact_s = …` keys still load; 0 turns a rule off); history
    keeps every exchange for `history_raw_hours`, hourly sums until `history_hourly_days`, and
    daily sums until `history_days`; `alert_webhook_url` receives a JSON POST on each change of a
    node's health."""

    db: str = "sqlite"
    host: str = "127.0.0.1"
    port: int = 8700
    max_want_bytes: int = 4 * 1024 * 1024
    province: str = "08"
    province_name: str = ""  # as the dashboard's header shows it; "" = PROVINCE_NAMES[province]
    public_url: str = ""
    log_format: str = "text"
    health: HealthRules = DEFAULT_RULES
    health_check_s: float = 30.0
    history_raw_hours: int = 48
    history_hourly_days: int = 30
    history_days: int = 30
    history_prune_s: float = 600.0
    alert_webhook_url: str = ""
    alert_webhook_timeout_s: float = 10.0
    # trust (docs/security.md): node certificate lifetime, how long after expiry a node may still
    # renew with its old key, and each node's request rate (token bucket; 0 turns it off)
    node_cert_days: float = 365.0
    recover_max_days: float = 3650.0
    node_rate_per_s: float = 20.0
    node_burst: int = 200
    # admission control (central_hub/admission.py): exchanges served at once per process (0: no
    # admission control), and how many may wait behind them before the hub answers 503 +
    # Retry-After (0: none wait)
    sync_inflight: int = 8
    sync_waiting: int = 64
    # online intake and tracking (docs/portal.md): the prefix of the codes the hub issues to
    # dossiers filed online ("" = `<province>.DVC`), per client address the failed tracking
    # lookups and the /submit filings allowed (token buckets; 0 turns one off), and the reverse
    # proxies (comma-separated addresses) whose X-Forwarded-For names the client
    agency: str = ""
    track_fail_per_min: float = 10.0
    track_fail_burst: int = 20
    submit_per_hour: float = 20.0
    submit_burst: int = 5
    trusted_proxies: str = ""
    # the address citizens reach the hub's /submit and /track pages at, printed in receipts' QR
    # codes ("" = `public_url`, when nodes and citizens use one address)
    citizen_url: str = ""

    @property
    def citizens_url(self) -> str:
        """Where citizens reach the public pages ("" if the hub does not know)."""
        return (self.citizen_url or self.public_url).rstrip("/")

    @property
    def hub_agency(self) -> str:
        """The agency prefix of the codes the hub issues."""
        return self.agency or f"{self.province}.DVC"

    @property
    def province_title(self) -> str:
        """The province as people name it: `Tỉnh Tuyên Quang` (its code if not known)."""
        return self.province_name.strip() or PROVINCE_NAMES.get(self.province) \
            or f"Tỉnh {self.province}"

    def validate(self) -> None:
        """Raise ValidationError naming the first bad field."""
        if len(self.province_name) > 80:
            raise ValidationError("province_name: at most 80 characters", field="province_name")
        if self.db != "sqlite" and not is_pg_url(self.db):
            raise ValidationError(
                "db must be sqlite (the embedded store in the data dir) or a postgresql:// URL",
                field="db")
        if not 0 < self.port < 65536:
            raise ValidationError("port must be 1–65535", field="port")
        if self.log_format not in LOG_FORMATS:
            raise ValidationError(f"log_format must be one of {', '.join(LOG_FORMATS)}",
                                  field="log_format")
        for name in ("health_check_s", "history_prune_s", "alert_webhook_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name} must be more than 0", field=name)
        if self.history_raw_hours < 1:
            raise ValidationError("history_raw_hours must be at least 1", field="history_raw_hours")
        if not self.history_raw_hours <= self.history_hourly_days * 24 <= self.history_days * 24:
            raise ValidationError("history must be history_raw_hours ≤ history_hourly_days ≤ "
                                  "history_days", field="history_days")
        if not self.node_cert_days > 0:
            raise ValidationError("node_cert_days must be more than 0", field="node_cert_days")
        if self.recover_max_days < 0:
            raise ValidationError("recover_max_days must be 0 or more", field="recover_max_days")
        if self.sync_inflight < 0 or self.sync_waiting < 0:
            raise ValidationError("sync_inflight and sync_waiting must be 0 (off) or more",
                                  field="sync_inflight")
        if self.node_rate_per_s < 0 or self.node_burst < 1:
            raise ValidationError("node_rate_per_s must be ≥ 0 and node_burst ≥ 1",
                                  field="node_rate_per_s")
        if not AGENCY_RE.fullmatch(self.hub_agency) or NODE_LIKE.fullmatch(self.hub_agency):
            raise ValidationError("agency must be 1–32 letters, digits and dots, and not look "
                                  "like a node id (each issuer needs its own prefix)",
                                  field="agency")
        for name in ("track_fail_per_min", "submit_per_hour"):
            if getattr(self, name) < 0:
                raise ValidationError(f"{name} must be 0 (off) or more", field=name)
        if self.track_fail_burst < 1 or self.submit_burst < 1:
            raise ValidationError("track_fail_burst and submit_burst must be at least 1",
                                  field="track_fail_burst")
        for name in ("public_url", "citizen_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ValidationError(f"{name} must start with http:// or https://", field=name)
        if self.alert_webhook_url and not self.alert_webhook_url.startswith(
                ("http://", "https://")):
            raise ValidationError("alert_webhook_url must start with http:// or https://",
                                  field="alert_webhook_url")


def load(data_dir: Path) -> HubConfig:
    """Read the hub's config; a clear error if the data dir is not initialized."""
    if not (data_dir / CONFIG_FILE).is_file():
        raise ValidationError(f"{data_dir} is not a hub data dir: run `central-hub init` first")
    return cfg.load(HubConfig, data_dir / CONFIG_FILE)


def save(data_dir: Path, config: HubConfig) -> None:
    """Write the hub's config."""
    cfg.dump(config, data_dir / CONFIG_FILE)
