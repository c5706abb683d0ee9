"""Several desks, one office: a real hub and a real edge process, the edge serving HTTPS with the
LAN certificate the province's CA issued it at enrollment, and five Chromium sessions taking in a
dossier each at the same moment. Every dossier is saved once, every code is unique, the session
cookie is Secure, and the certificate verifies against the province's CA for the address used."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import ssl
from pathlib import Path

import aiohttp
import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, async_playwright, expect

from bench.sync_throughput import free_port
from edge_node.lan import certificate_names, lan_file
from service import pki
from service.web import COOKIE
from tests.faults.procs import PASSWORD, Procs, acli
from tests.ui.browser import ARGS, CHROMIUM, Tab

DESKS = 5
SCAN = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
# each desk a different child: the same child again would be flagged as a likely duplicate
APPLICANT = ("{name}", "008090001234", "0912 345 678", "Thôn Nà Khá, xã Côn Lôn", "Cha",
             "Con Của {name}", "20/11/2025", "Hai mươi tháng mười một năm hai nghìn không trăm "
             "hai mươi lăm")
REST = ("Tày", "Việt Nam", "Trạm y tế xã Côn Lôn", "Côn Lôn, Tuyên Quang", "Hoàng Thị Cúc",
        "1995")



def spki_pin(cert_pem: bytes) -> str:
    """Chromium's pin of a certificate's key (base64 SHA-256 of its SubjectPublicKeyInfo)."""
    spki = pki.load_cert(cert_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def take_in(tab: Tab, name: str) -> str:
    """One birth registration at one desk, by keyboard; the receipt code."""
    page = tab.page
    await tab.goto("/dossiers/new?procedure=1.001193")
    await expect(page.locator("#f-applicant-full_name")).to_be_focused()
    for text in APPLICANT:
        await page.keyboard.type(text.format(name=name))
        await page.keyboard.press("Tab")
    await page.keyboard.type("N")
    await page.keyboard.press("Tab")
    for text in REST:
        await page.keyboard.type(text)
        await page.keyboard.press("Tab")
    await page.locator("#doc_label_0").fill("Giấy chứng sinh")
    await page.locator("#doc_file_0").set_input_files(
        {"name": "giay-chung-sinh.pdf", "mimeType": "application/pdf", "buffer": SCAN})
    await page.locator("#f-applicant-full_name").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/dossiers/[0-9a-f-]{36}\?new=1$"), timeout=60_000)
    return (await page.locator("#dossier-code").inner_text()).strip()


async def test_five_desks_write_at_once_over_https(tmp_path: Path, procs: Procs) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    hub_dir, edge_dir = tmp_path / "hub", tmp_path / "edge"
    hub_port, edge_port = free_port(), free_port()
    await acli("central_hub", "init", "--data", str(hub_dir))
    token = await acli("central_hub", "enroll", "--data", str(hub_dir), "--commune", "02245",
                       "--name", "Xã Côn Lôn")
    hub = procs.start("hub", ["central_hub", "serve", "--data", str(hub_dir), "--port",
                              str(hub_port)], tmp_path / "hub.log")
    ca = hub_dir / "tls" / "ca.crt"
    await asyncio.sleep(0.5)
    await acli("edge_node", "init", "--data", str(edge_dir), "--hub",
               f"https://127.0.0.1:{hub_port}", "--token", token, "--lan-name", "desk.local")
    assert hub.alive()
    lan_pem = lan_file(edge_dir).read_bytes()
    names = certificate_names(pki.load_cert(lan_pem[lan_pem.index(b"-----BEGIN CERT"):]))
    assert {"127.0.0.1", "localhost", "desk.local"} <= set(names)
    for i in range(DESKS):
        await acli("edge_node", "user", "add", "--data", str(edge_dir), "--username",
                   f"clerk{i}", stdin=PASSWORD + "\n")
    edge = procs.start("edge", ["edge_node", "serve", "--data", str(edge_dir), "--port",
                                str(edge_port), "--tls", "on"], tmp_path / "edge.log")
    base = f"https://127.0.0.1:{edge_port}"

    # an office PC that trusts the province's CA (and nothing else) accepts the edge's page
    trusting = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as http:
        for _ in range(200):
            try:
                async with http.get(f"{base}/healthz") as resp:
                    assert resp.status == 200
                    break
            except aiohttp.ClientConnectorError:
                assert edge.alive(), edge.tail()
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(edge.tail())
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{edge_port}/healthz") as resp:
                await resp.read()

    leaf = lan_pem[lan_pem.index(b"-----BEGIN CERT"):]
    async with async_playwright() as pw:
        browser: Browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=[*ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(leaf)}"])
        try:
            tabs = [await Tab.open(browser, base, tmp_path / "shots") for _ in range(DESKS)]
            await asyncio.gather(*(t.login(f"clerk{i}") for i, t in enumerate(tabs)))
            for t in tabs:
                cookies = await t.context.cookies()
                assert [c["secure"] for c in cookies if c["name"] == COOKIE] == [True], cookies
            codes = await asyncio.gather(*(take_in(t, f"Người Thứ {i}")
                                           for i, t in enumerate(tabs)))
            for t in tabs:
                t.assert_clean()
        finally:
            await browser.close()
    assert len(set(codes)) == DESKS, codes
    assert all(re.fullmatch(r"02245\.01-\d{6}-000[1-5]", c) for c in codes), codes

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as http:
        async with http.post(f"{base}/api/login",
                             json={"username": "clerk0", "password": PASSWORD}) as resp:
            auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        async with http.get(f"{base}/api/dossiers?limit=100", headers=auth) as resp:
            items = (await resp.json())["items"]
    assert sorted(d["code"] for d in items) == sorted(codes)  # each saved once
    assert sorted(d["applicant"]["full_name"] for d in items) == \
        sorted(f"Người Thứ {i}" for i in range(DESKS))
