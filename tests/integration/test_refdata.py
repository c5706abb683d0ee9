"""Reference data published at the hub reaches every commune through the same exchange."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from central_hub.cli import main as hub_main
from protocol.calendar import VN_TZ, local
from tests.harness import Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL


def marital(name: str = "Vũ Thị Hoa") -> dict:  # type: ignore[type-arg]
    body = birth(name)
    body["procedure_code"] = "1.004873"
    body["fields"] = {"purpose": "Kết hôn", "marital_status": "Chưa kết hôn"}
    return body


async def run_hub_cli(*args: str) -> int:
    return await asyncio.to_thread(hub_main, list(args))


async def test_holidays_published_at_hub_move_due_dates_at_commune(
        net: Net, tmp_path: Path) -> None:
    edge = await net.add_edge("02245")
    _, before = await edge.api.get("/api/holidays")
    assert before["version"] == 0  # defaults shipped with the node, nothing from the hub yet
    await edge.sync()
    _, synced = await edge.api.get("/api/holidays")
    assert synced["version"] == 1 and "2027-02-08" in synced["items"]  # Tết 2027 by default

    _, d1 = await edge.api.post("/api/dossiers", marital())
    today = local(edge.store.now_ms()).date()
    closure = [today + timedelta(days=i) for i in range(1, 15)]  # two weeks of closure (e.g. floods)
    csv = "date,name\n" + "".join(f"{d.isoformat()},Nghỉ đặc biệt\n" for d in closure)
    (tmp_path / "h.csv").write_text(csv, encoding="utf-8")
    assert await run_hub_cli("holidays", "import", str(tmp_path / "h.csv"),
                             "--data", str(net.hub.data)) == 0
    await edge.sync()
    _, after = await edge.api.get("/api/holidays")
    assert after["version"] == 2 and closure[0].isoformat() in after["items"]
    _, d2 = await edge.api.post("/api/dossiers", marital("Trần Văn Hải"))
    due1 = datetime.fromisoformat(d1["due_at"]).astimezone(VN_TZ).date()
    due2 = datetime.fromisoformat(d2["due_at"]).astimezone(VN_TZ).date()
    assert due1 <= today + timedelta(days=7)
    assert due2 > closure[-1]
    # a dossier's due date is fixed when it is received: the first one did not move
    _, again = await edge.api.get(f"/api/dossiers/{d1['id']}")
    assert again["due_at"] == d1["due_at"]


async def test_procedure_catalogue_update_reaches_commune(net: Net, tmp_path: Path) -> None:
    edge = await net.add_edge("02245")
    csv = ("code,name_vi,name_en,limit_days,same_day_cutoff\n"
           "1.004873,Xác nhận tình trạng hôn nhân,Marital-status certificate,5,\n"
           "1.001193,Đăng ký khai sinh,Birth registration,0,15:00\n")
    (tmp_path / "p.csv").write_text(csv, encoding="utf-8")
    assert await run_hub_cli("procedures", "import", str(tmp_path / "p.csv"),
                             "--data", str(net.hub.data)) == 0
    await edge.sync()
    _, cat = await edge.api.get("/api/procedures")
    assert cat["version"] == 2
    by_code = {p["code"]: p for p in cat["items"]}
    assert set(by_code) == {"1.004873", "1.001193"}
    assert by_code["1.004873"]["limit_days"] == 5
    # form fields of known procedures were kept
    assert any(f["name"] == "child_full_name" for f in by_code["1.001193"]["fields"])
    # a procedure no longer in the catalogue cannot be used for new dossiers
    body = birth()
    body["procedure_code"] = "2.000815"
    body["fields"] = {"document_name": "Giấy khai sinh", "copies": 2}
    status, err = await edge.api.post("/api/dossiers", body)
    assert status == 422 and err["field"] == "procedure_code"


@pytest.mark.parametrize("content, name", [
    ("date,name\n2027-02-30,Tết\n", "bad.csv"),
    ("date,name\n", "empty.csv"),
    ("[[holidays]]\ndate = 2027-02-05\n", "noname.toml"),
    ("date,name\n2027-02-05,Tết\n", "holidays.txt"),
])
async def test_bad_holiday_file_publishes_nothing(net: Net, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  content: str, name: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    assert await run_hub_cli("holidays", "import", str(tmp_path / name),
                             "--data", str(net.hub.data)) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("central-hub: error:")
    assert "Traceback" not in err[0]
    edge = await net.add_edge("02245")
    await edge.sync()
    _, hol = await edge.api.get("/api/holidays")
    assert hol["version"] == 1


def test_default_calendar_has_tet_2027() -> None:
    from protocol.refdata import DEFAULT_HOLIDAYS
    days = {h.day for h in DEFAULT_HOLIDAYS}
    assert date(2027, 2, 8) in days and date(2026, 2, 17) in days
