"""`make demo` on real processes: its story produces what a newcomer is told to look at — an
offline node the hub does not call ok, a conflict listed at the hub, a desk whose clock is 2 h off
warning with its dossiers flagged, a dossier taken in hours ago (simulated) and overdue, and a
filing waiting in a desk's online inbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.demo import CLERK_PASSWORD, OPERATOR, OPERATOR_PASSWORD
from bench.demo_scenario import FAKETIME

ROOT = Path(__file__).resolve().parent.parent


def call(base: str, path: str, token: str = "", body: Any = None) -> Any:
    request = urllib.request.Request(base + path, data=None if body is None else
                                     json.dumps(body).encode(), method="POST" if body else "GET",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"}
                                                 if token else {})})
    with urllib.request.urlopen(request, timeout=20) as resp:
        return json.loads(resp.read())


def login(base: str, username: str, password: str) -> str:
    return str(call(base, "/api/login", body={"username": username, "password": password})["token"])


@pytest.mark.slow
@pytest.mark.skipif(not FAKETIME.exists(), reason="libfaketime is not installed (apt-get install "
                    "libfaketime): the demo sets one desk's clock 2 h ahead with it")
def test_the_demo_shows_what_goes_wrong() -> None:
    proc = subprocess.Popen([sys.executable, "bench/demo.py", "--status-every", "60"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 150  # ~50 s alone; 80 s at load 14
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("scenario ready"):
                break
        transcript = "".join(lines)
        assert "scenario ready" in transcript, transcript
        hub = re.search(r"^  hub +(http://\S+)/ ", transcript, re.M).group(1)  # type: ignore[union-attr]
        desks = dict(re.findall(r"^  (\d{5}) \S.*?(http://127\.0\.0\.1:\d+)/ ", transcript, re.M))
        assert set(desks) == {"02245", "02221", "02230"}, transcript  # the 2025 map
        assert "Sinh Long" not in " ".join(re.findall(r"^  \d{5} (\S+ ?\S*)", transcript, re.M))
        op = login(hub, OPERATOR, OPERATOR_PASSWORD)

        nodes = {n["commune"]: n for n in call(hub, "/api/nodes", op)["items"]}
        assert nodes["02230"]["health"] != "ok", nodes["02230"]  # offline
        conflicts = call(hub, "/api/dossiers?conflicts=true", op)["items"]
        assert [d["commune"] for d in conflicts] == ["02245"], conflicts
        flagged = call(hub, "/api/clock-checks?commune=02221", op)["items"]
        assert len(flagged) == 2, flagged
        assert any("clock off" in r for r in nodes["02221"]["reasons"]), nodes["02221"]

        na_hang = login(desks["02221"], "clerk02221", CLERK_PASSWORD)
        sync = call(desks["02221"], "/api/sync", na_hang)
        assert sync["clock_warning"] is True, sync
        assert abs(sync["clock_offset_ms"] - 2 * 3600_000) < 60_000, sync
        con_lon = login(desks["02245"], "clerk02245", CLERK_PASSWORD)
        inbox = call(desks["02245"], "/api/dossiers?status=submitted", con_lon)["items"]
        assert len(inbox) == 1, inbox  # filed for Sinh Long, 02227: now Côn Lôn's
        overdue = re.search(r"overdue \(desk: /dossiers/([0-9a-f-]{36})", transcript)
        assert overdue, transcript
        for base, token in ((desks["02245"], con_lon), (hub, op)):
            view = call(base, f"/api/dossiers/{overdue.group(1)}", token)
            assert view["overdue"] is True and view["clock_check"] is None, view
        if os.environ.get("UI_SCREENSHOTS") == "1":  # docs/screenshots/demo-*.png, from the story
            asyncio.run(screenshots(hub, desks))
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, transcript + rest
    assert "Traceback" not in transcript + rest


async def screenshots(hub: str, desks: dict[str, str]) -> None:
    """The hub's overview, conflicts and clock checks; Côn Lôn's inbox, Na Hang's warning."""
    from tests.ui.browser import SHOTS, Tab, chromium

    async with chromium() as browser:
        for base, user, password, pages in (
                (hub, OPERATOR, OPERATOR_PASSWORD, (("/", "demo-hub"),
                                                    ("/conflicts", "demo-hub-conflicts"),
                                                    ("/clock-checks", "demo-hub-clock-checks"))),
                (desks["02245"], "clerk02245", CLERK_PASSWORD, (("/", "demo-desk"),
                                                                 ("/inbox", "demo-inbox"))),
                (desks["02221"], "clerk02221", CLERK_PASSWORD, (("/", "demo-clock"),))):
            tab = await Tab.open(browser, base, SHOTS)
            await tab.login(user, password)
            for path, name in pages:
                await tab.goto(path)
                await tab.shot(name)
            await tab.context.close()

