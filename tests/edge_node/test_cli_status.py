"""`edge-node status` on a data dir whose hub warned of a restore: the text has a `warning` line
(kind, since when, the log message) like the `rejected` one, and --json has the API's shape."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from edge_node import config as edge_config
from edge_node.cli import main, status_lines
from edge_node.config import EdgeConfig
from edge_node.store import EdgeStore
from protocol.calendar import iso
from protocol.messages import SyncResponse
from tests.harness import birth

CONFIG = EdgeConfig(node="02245.01", commune="02245", commune_name="Xã Côn Lôn",
                    agency="02245.01", hub_url="http://127.0.0.1:9", credential="x")


async def hub_acks_less(data: Path) -> int:
    """Two dossiers sent, then an answer acking one of them: the hub was restored. Its time."""
    store = await EdgeStore.open(data / edge_config.DB_FILE, CONFIG.node, CONFIG.commune,
                                 CONFIG.agency)
    try:
        for name in ("Nguyễn Văn An", "Lý Thị Mai"):
            await store.dossiers.create(birth(name), "clerk")
        now = store.now_ms()
        for ack, sent_after in ((2, 0), (1, 2)):
            await store.sync.apply_response(SyncResponse(ack=ack, events=[], cursor=1, more=False,
                                                    hub_time_ms=now), 0.0, time.monotonic(),
                                       sent_after=sent_after)
        return now
    finally:
        await store.close()


def test_status_text_and_json_show_the_warning(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    edge_config.save(tmp_path, CONFIG)
    at = asyncio.run(hub_acks_less(tmp_path))
    assert main(["status", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    warning = [line for line in lines if line.startswith("warning ")]
    assert warning == [f"{'warning':22} hub_restored since {iso(at)}: hub holds less than it "
                       "acknowledged (restored from backup?): it holds 1 of this node's events, "
                       "had acknowledged 2; sending the rest again"]
    assert f"{'pending_events':22} 1" in lines
    assert main(["status", "--data", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["warning"]["code"] == "hub_restored" and status["warning"]["at"] == at
    assert status["warning"]["message"].startswith("hub holds less than it acknowledged")


def test_status_text_without_a_warning_has_no_such_line() -> None:
    status = {key: 0 for key in ("node", "commune", "hub", "dossiers", "pending_events",
                                 "oldest_pending_age_s", "last_success_at", "clock_offset_ms",
                                 "conflicts_open", "ack", "cursor")}
    lines = status_lines({**status, "rejected": [], "warning": None})
    assert len(lines) == 11 and not any(line.startswith(("warning", "rejected")) for line in lines)
    lines = status_lines({**status, "rejected": [{"seq": 3}], "warning": None})
    assert lines[-1] == f"{'rejected':22} 1 events refused by the hub"
