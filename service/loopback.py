"""Whether an address is this machine: plain HTTP is allowed there and nowhere else."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) and `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True iff the URL's host is a loopback address or `localhost`."""
    return is_loopback(urlsplit(url).hostname or "")
