"""The one loopback check, behind both "plain HTTP only on this machine" rules (hub bind, edge hub_url)."""

from __future__ import annotations

import pytest

from service.loopback import is_loopback, is_loopback_url


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
    ("LocalHost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("hub.example.vn", False), ("localhost.example.vn", False), ("", False),
])
def test_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8700", True), ("http://[::1]:8700/", True), ("http://localhost/", True),
    ("http://hub.example.vn:8700", False), ("http://127.0.0.1.example.vn/", False),
    ("not a url", False),
])
def test_urls(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
