"""Fleet health, history and the dashboard pages over real HTTP (no browser): health rules from
hub.toml, downsampling, "who has not synced today and why", the node page's charts, enrollment and
revocation, the conflicts queue and dossier search across communes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central_hub import config as hub_config
from central_hub.config import HubConfig
from central_hub.nodes import fleet, history
from central_hub.nodes.fleet import DAY_MS, HOUR_MS
from central_hub.nodes.health import HealthRules, evaluate
from central_hub.store import HubStore
from protocol.errors import SyncError, ValidationError
from tests.central_hub.operator import Operator, operator
from tests.harness import Net, birth
from tests.ui.seed import make_conflict

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

NOW = 1_790_000_000_000


@pytest.fixture
async def op(net: Net) -> AsyncIterator[Operator]:
    assert net.hub is not None
    who = operator(net.hub.url)
    await who.login()
    yield who
    await who.close()


# hub.toml as `central-hub init` wrote it before the thresholds moved into a [health] table
OLD_HUB_TOML = """db = "sqlite"
host = "127.0.0.1"
port = 8700
health_warn_no_contact_s = 60
health_crit_no_contact_s = 86400
health_warn_backlog_age_s = 1800
health_crit_backlog_age_s = 86400
health_warn_clock_ms = 120000
health_crit_clock_ms = 300000
health_warn_disk_bytes = 5368709120
health_crit_disk_bytes = 0
health_warn_pending_blobs = 200
health_check_s = 15.0
"""


def test_health_rules_come_from_hub_toml(tmp_path: Path) -> None:
    hub_config.save(tmp_path, HubConfig())
    text = (tmp_path / "hub.toml").read_text()
    assert "\n[health]\nwarn_no_contact_s = 3600\n" in text and "health_warn" not in text
    assert hub_config.load(tmp_path) == HubConfig()
    (tmp_path / "hub.toml").write_text(text.replace("warn_no_contact_s = 3600",
                                                    "warn_no_contact_s = 60"))
    assert hub_config.load(tmp_path).health == HealthRules(warn_no_contact_s=60)


def test_a_hub_toml_with_the_older_flat_health_keys_still_loads(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(OLD_HUB_TOML)
    config = hub_config.load(tmp_path)
    assert config.health == HealthRules(warn_no_contact_s=60, crit_disk_bytes=0)
    assert config.health_check_s == 15.0 and config.port == 8700
    hub_config.save(tmp_path, config)  # written back in today's spelling, same values
    assert "health_warn" not in (tmp_path / "hub.toml").read_text()
    assert hub_config.load(tmp_path) == config


@pytest.mark.parametrize(("text", "field"), [
    ("health_crit_clock_ms = -1\n", "health_crit_clock_ms"),  # named as the file wrote it
    ("[health]\ncrit_clock_ms = -1\n", "health.crit_clock_ms"),
    ("[health]\ncrit_clock_ms = \"5 min\"\n", "health.crit_clock_ms"),
    ("[health]\nwarn_after_s = 5\n", "health.warn_after_s"),
    ("health = 5\n", "health"),
    ("health_warn_clock_ms = 1\n[health]\nwarn_clock_ms = 2\n", "health_warn_clock_ms"),
    ("health_warn_after_s = 5\n", "health_warn_after_s"),
])
def test_bad_health_settings_are_named(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "hub.toml").write_text(text)
    with pytest.raises(ValidationError) as err:
        hub_config.load(tmp_path)
    assert err.value.field == field and field.split(".")[-1] in err.value.message


def test_health_levels_and_reasons() -> None:
    rules = HealthRules(warn_no_contact_s=60, crit_no_contact_s=600, warn_backlog_age_s=30,
                        crit_backlog_age_s=3600)
    base = {"node": "02245.01", "enrolled_at": NOW - DAY_MS, "last_seen_at": NOW,
            "last_success_at": NOW, "stats": {"disk_free": 50 * 1024**3}}
    assert evaluate(base, NOW, rules) == ("ok", [])
    health, why = evaluate({**base, "last_seen_at": None, "last_success_at": None}, NOW, rules)
    assert health == "critical" and why[0].code == "never_synced"
    health, why = evaluate(base, NOW + 120_000, rules)
    assert health == "warning" and why[0].code == "no_sync" and why[0].params["silent_s"] == 120
    health, why = evaluate(base, NOW + 700_000, rules)
    assert health == "critical" and "no successful sync for 11 min" in why[0].text()
    # contact without success: the reason says when the hub last heard from it
    failing = {**base, "last_seen_at": NOW + 690_000, "last_error": "hash chain broken"}
    health, why = evaluate(failing, NOW + 700_000, rules)
    assert [r.code for r in why] == ["no_sync", "last_error"]
    assert "last contact 10 s ago" in why[0].text()
    # a backlog reported 20 s old, 20 s ago, is 40 s old now
    waiting = {**base, "stats": {"pending_events": 3, "oldest_pending_age_s": 20}}
    health, why = evaluate(waiting, NOW + 20_000, rules)
    assert health == "warning" and why[0].params == {"pending": 3, "age_s": 40}
    low = {**base, "stats": {"disk_free": 10 * 1024**2, "clock_offset_ms": 400_000}}
    health, why = evaluate(low, NOW, rules)
    assert health == "critical" and {r.code for r in why} == {"disk", "clock"}
    assert evaluate({**base, "revoked_at": NOW}, NOW, rules)[0] == "critical"


async def _session(store: HubStore, node: str, at: int, ok: bool = True, pending: int = 0,
                   nbytes: int = 1000) -> None:
    await store.conn.execute(
        "INSERT INTO node_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (node, at, int(ok), None if ok else "hash chain of x broken", nbytes, nbytes // 2, 1, 0,
         pending, 0, 0, 40))


async def test_history_is_downsampled_to_hours_then_days_and_charts_keep_the_sums(
        net: Net) -> None:
    assert net.hub is not None
    store = net.hub.store
    node = "02245.01"
    now = fleet.local_day_start(NOW) + 12 * HOUR_MS
    ages_h = [1, 2, 30, 50, 50.5, 51, 24 * 10, 24 * 10 + 0.2, 24 * 40, 24 * 40 + 1, 24 * 400]
    for i, age in enumerate(ages_h):
        await _session(store, node, int(now - age * HOUR_MS), ok=i % 3 != 0, pending=i)
    await store.conn.commit()
    total = await history.series(store, node, now - 500 * DAY_MS, now + HOUR_MS, 7 * DAY_MS)
    done = await history.downsample(store, now, raw_hours=48, hourly_days=30, days=365)
    assert done == {"sessions": 8, "hours": 3, "days": 1}  # 400 days old: dropped
    async with store.reader.execute("SELECT span, count(*) FROM node_history GROUP BY span") as c:
        spans = dict(await c.fetchall())
    assert spans == {3600: 4, 86400: 1}  # 50.5 h and 51 h share an hour; 40 d and 40 d 1 h a day
    after = await history.series(store, node, now - 500 * DAY_MS, now + HOUR_MS, 7 * DAY_MS)
    kept = [b for b in total if b["t"] >= now - 365 * DAY_MS]
    for key in ("ok", "failed", "bytes_in", "bytes_out"):
        assert sum(b[key] for b in after) == sum(b[key] for b in kept), key
    assert max(b["pending"] or 0 for b in after) == max(b["pending"] or 0 for b in kept)
    assert await history.downsample(store, now, raw_hours=48, hourly_days=30, days=365) == \
        {"sessions": 0, "hours": 0, "days": 0}


async def test_overview_says_which_communes_have_not_synced_today_and_why(
        net: Net, op: Operator) -> None:
    synced = await net.add_edge("02245", "Xã Côn Lôn")
    silent = await net.add_edge("02227", "Xã Thượng Lâm")
    await synced.api.post("/api/dossiers", birth())
    await synced.sync()
    page = await op.get("/")
    assert page.status == 200
    panel = page.text.split('id="not-today"')[1].split("</section>")[0]
    assert "Xã Thượng Lâm" in panel and "chưa đồng bộ lần nào" in panel
    assert "Xã Côn Lôn" not in panel
    assert re.search(r'id="count-critical"><span class="tile-count">1<', page.text)
    assert re.search(r'id="count-ok"><span class="tile-count">1<', page.text)
    only = await op.get("/?health=critical")
    table = only.text.split('id="fleet"')[1]
    assert silent.config.node in table and synced.config.node not in table
    assert 'aria-sort="descending"' in only.text
    by_name = await op.get("/?sort=commune&dir=asc")
    table = by_name.text.split('id="fleet"')[1]
    assert table.index("Xã Côn Lôn") < table.index("Xã Thượng Lâm")
    filtered = await op.get("/?q=con+lon")
    assert silent.config.node not in filtered.text.split('id="fleet"')[1]
    await op.post("/lang", {"lang": "en", "next": "/"})
    english = await op.get("/")
    assert "never synced since enrollment" in english.text
    assert "have not synced successfully today" in english.text or \
        "has not synced successfully today" in english.text


async def test_node_page_draws_its_history_and_the_api_gives_the_data(
        net: Net, op: Operator) -> None:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    for i in range(3):
        await edge.api.post("/api/dossiers", birth(f"Nguyễn Văn {i}"))
        await edge.sync()
    page = await op.get(f"/nodes/{edge.config.node}")
    assert page.status == 200
    assert page.text.count('<svg class="chart"') == 3
    assert "<rect class=\"bar-ok\"" in page.text and "<polyline" in page.text
    week = await op.get(f"/nodes/{edge.config.node}?window=7d")
    assert week.status == 200 and 'aria-current="true">7 ngày' in week.text
    assert net.hub is not None
    status, body = await net.hub.api.get(f"/api/nodes/{edge.config.node}/history?window=24h")
    assert status == 200
    assert sum(b["ok"] for b in body["buckets"]) == 3
    assert body["last_24h"]["sessions"] == 3 and body["last_24h"]["failed"] == 0
    status, _ = await net.hub.api.get(f"/api/nodes/{edge.config.node}/history?window=2y")
    assert status == 422
    missing = await op.get("/nodes/99999.01")
    assert missing.status == 404


async def test_enroll_shows_a_one_time_token_and_revoke_locks_the_node_out(
        net: Net, op: Operator) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    await op.get("/nodes")
    bad = await op.post("/nodes/enroll", {"commune": "2245", "name": ""})
    assert bad.status == 422 and 'aria-invalid="true"' in bad.text
    page = await op.post("/nodes/enroll", {"commune": "02227", "name": "Xã Thượng Lâm"})
    assert page.status == 200
    token = re.search(r'id="enroll-token">([^<]+)<', page.text)
    assert token and token.group(1).startswith("enr_")
    assert "set-cookie" not in {k.lower() for k in page.headers if "flash" in page.headers[k]}
    enrolled = await net.hub.store.enroll(token.group(1))
    assert enrolled.commune == "02227"
    await op.get("/nodes")
    done = await op.post(f"/nodes/{edge.config.node}/revoke", {})
    assert done.status == 200 and f"{edge.config.node}" in done.text
    with pytest.raises(SyncError):
        await edge.sync()
    revoked = await op.get("/?health=revoked")
    assert edge.config.node in revoked.text.split('id="fleet"')[1]


async def test_resolve_a_conflict_from_the_queue_and_find_dossiers_across_communes(
        net: Net, op: Operator) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    other = await net.add_edge("02227", "Xã Thượng Lâm")
    _, dossier = await edge.api.post("/api/dossiers", birth("Hoàng Thị Lan"))
    _, elsewhere = await other.api.post("/api/dossiers", birth("Hoàng Văn Lâm",
                                                               citizen_id="008090009999"))
    await other.sync()
    await make_conflict(net, edge, dossier)
    queue = await op.get("/conflicts")
    assert dossier["code"] in queue.text and "Thôn Nà Mạ" in queue.text
    assert "Thôn Bản Khuổi" in queue.text
    _, at_hub = await net.hub.api.get(f"/api/dossiers/{dossier['id']}")
    values = at_hub["conflicts"][0]["values"]
    keep = next(i for i, v in enumerate(values) if v["value"].startswith("Thôn Bản Khuổi"))
    stale = await op.post(f"/dossiers/{dossier['id']}/resolve", {
        "field": "applicant.address", "choice": "9", "base": at_hub["version"],
        "next": "/conflicts"})
    assert "Hãy chọn một giá trị" in stale.text
    await op.get("/conflicts")
    done = await op.post(f"/dossiers/{dossier['id']}/resolve", {
        "field": "applicant.address", "choice": str(keep), "base": at_hub["version"],
        "next": "/conflicts"})
    assert done.status == 200 and dossier["code"] in done.text and "Đã giải quyết" in done.text
    _, at_hub = await net.hub.api.get(f"/api/dossiers/{dossier['id']}")
    assert not at_hub["conflicts"]
    assert at_hub["applicant"]["address"].startswith("Thôn Bản Khuổi")
    await edge.sync()
    _, at_edge = await edge.api.get(f"/api/dossiers/{dossier['id']}")
    assert not at_edge["conflicts"] and at_hub["history"][-1]["where"] == "hub"

    found = await op.get("/dossiers?q=hoang")
    assert dossier["code"] in found.text and elsewhere["code"] in found.text
    one = await op.get("/dossiers?q=hoang&commune=02227")
    assert elsewhere["code"] in one.text and dossier["code"] not in one.text
    page = await op.get(f"/dossiers/{dossier['id']}")
    assert page.status == 200 and "Hoàng Thị Lan" in page.text


async def test_pages_need_a_login_but_metrics_and_healthz_do_not(net: Net) -> None:
    assert net.hub is not None
    stranger = operator(net.hub.url)
    try:
        page = await stranger.get("/", allow_redirects=False)
        assert page.status == 303 and page.headers["Location"].startswith("/login")
        for path in ("/metrics", "/healthz"):
            assert (await stranger.get(path)).status == 200
        assert (await stranger.get("/stats.csv", allow_redirects=False)).status == 303
        status, _ = await net.hub.api.get("/api/stats", token="")
        assert status == 401
    finally:
        await stranger.close()
