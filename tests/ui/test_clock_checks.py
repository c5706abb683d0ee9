"""The desk tells staff which dossiers were stamped with a wrong clock, and lets them mark each
checked: the banner's link, the list, the notice on the dossier, the flag cleared at the hub too."""

from __future__ import annotations

from collections.abc import Callable

from edge_node.ui.syncview import describe
from service.dossier_store import wall_clock_ms
from tests.central_hub.operator import operator
from tests.harness import EdgeHandle, Net, birth
from tests.ui.conftest import Staff
from tests.ui.test_sync_indicator import EN, NOW, VI, status

DAY_MS = 86_400_000


def test_the_banner_says_how_far_off_and_links_the_dossiers_to_check() -> None:
    out = describe(status(clock_warning=True, clock_offset_ms=-30 * DAY_MS - 5000,
                          clock_checks=2), VI, NOW)
    assert "30 ngày chậm" in out["parts"]["clock"] and out["level"] == "danger"
    assert out["parts"]["checks"].startswith("2 hồ sơ có thể sai giờ nhận")
    en = describe(status(clock_checks=1), EN, NOW)
    assert en["parts"]["checks"].startswith("1 dossier may have a wrong") and en["level"] == "warn"
    assert describe(status(), EN, NOW)["parts"]["checks"] == ""


async def test_flagged_dossiers_are_listed_and_cleared(net: Net, edge: EdgeHandle,
                                                       staff: Callable[[], Staff]) -> None:
    edge.store.wall = lambda: wall_clock_ms() + DAY_MS  # wrong before the first contact
    _, d = await edge.api.post("/api/dossiers", birth())
    _, ok = await edge.api.post("/api/dossiers", birth("Người khác"))
    await edge.sync()  # the hub's time is learned: the first dossier's stamps were a day off
    _, ok2 = await edge.api.post("/api/dossiers", birth("Sau khi biết giờ"))
    clerk = staff()
    await clerk.login("clerk1")
    home = await clerk.get("/")
    assert 'href="/clock-checks"' in home.text and "2 hồ sơ có thể sai giờ" in home.text
    page = await clerk.get("/clock-checks")
    assert page.status == 200 and d["id"] in page.text and ok["id"] in page.text
    assert ok2["id"] not in page.text and "1 ngày nhanh" in page.text
    page = await clerk.get(f"/dossiers/{d['id']}")
    assert 'id="clock-check"' in page.text and "1 ngày nhanh" in page.text
    done = await clerk.post(f"/dossiers/{d['id']}/clock-check", {"next": "/clock-checks"})
    assert done.status == 200 and d["id"] not in done.text  # back on the list, one left
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["clock_check"] is None
    assert [h["actor"] for h in view["history"]][-2:] == ["clock-check", "clerk1"]
    await edge.sync()
    _, hub_view = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert hub_view["clock_check"] is None
    _, hub_list = await net.hub.api.get("/api/clock-checks")
    assert [i["id"] for i in hub_list["items"]] == [ok["id"]]
    # an admin manages accounts, not dossiers
    admin = staff()
    await admin.login("admin1")
    await admin.get("/clock-checks")
    refused = await admin.post(f"/dossiers/{ok['id']}/clock-check", {})
    assert refused.status == 403


async def test_the_hub_dashboard_lists_them_and_an_operator_clears_one(
        net: Net, edge: EdgeHandle) -> None:
    edge.store.wall = lambda: wall_clock_ms() - 30 * DAY_MS  # a month behind, never corrected
    _, d = await edge.api.post("/api/dossiers", birth(child_birth_date="2026-10-20"))
    await edge.sync()
    op = operator(net.hub.url)
    try:
        await op.login()
        page = await op.get("/clock-checks")
        assert page.status == 200 and d["code"] in page.text and "chậm 30 ngày" in page.text
        assert 'href="/clock-checks"' in page.text  # in the navigation
        dossier = await op.get(f"/dossiers/{d['id']}")
        assert 'id="clock-check"' in dossier.text and edge.config.node in dossier.text
        done = await op.post(f"/dossiers/{d['id']}/clock-check", {"next": "/clock-checks"})
        assert done.status == 200 and f'data-dossier="{d["id"]}"' not in done.text
    finally:
        await op.close()
    await edge.sync()
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["clock_check"] is None and view["history"][-1]["where"] == "hub"
