"""The dossier list (search, filters, paging), the dossier page's actions, and form 02."""

from __future__ import annotations

import re
from collections.abc import Callable

import aiohttp

from tests.harness import EdgeHandle, Net
from tests.ui.conftest import Staff
from tests.ui.seed import citizen, create, move, seed_desk


def codes(html: str) -> list[str]:
    return re.findall(r'<td class="code"><a href="/dossiers/[^"]+">([^<]+)</a>', html)


async def test_search_by_name_without_diacritics_code_and_citizen_id(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    seeded = await seed_desk(net, edge)
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get("/dossiers?q=HOANG+thi")
    assert len(codes(page.text)) == 1 and "Hoàng Thị Lan" in page.text
    page = await clerk.get("/dossiers?q=" + citizen(5))
    assert codes(page.text) == [seeded["today"][2]["code"]]
    code = seeded["waiting"]["code"]
    page = await clerk.get("/dossiers?q=" + code)  # a scanned QR code goes straight there
    assert page.url.endswith(f"/dossiers/{seeded['waiting']['id']}")
    page = await clerk.get("/dossiers?q=" + code[:-2])  # a code's beginning lists
    assert code in codes(page.text)
    page = await clerk.get("/dossiers?q=nobody+here")
    assert codes(page.text) == [] and "Không có hồ sơ nào phù hợp" in page.text


async def test_filters(net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    seeded = await seed_desk(net, edge)
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get("/dossiers?status=supplement_requested")
    assert codes(page.text) == [seeded["waiting"]["code"]]
    page = await clerk.get("/dossiers?overdue=1&status=accepted")
    assert codes(page.text) == [seeded["old"][1]["code"]]
    page = await clerk.get("/dossiers?conflicts=1")
    assert codes(page.text) == [seeded["conflicted"]["code"]]
    page = await clerk.get("/dossiers?procedure=1.004873")
    assert codes(page.text) == []
    page = await clerk.get("/dossiers?procedure=1.001193&status=bogus")
    assert len(codes(page.text)) == 7


async def test_keyset_paging(edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    made = [await create(edge, i) for i in range(53)]
    clerk = staff()
    await clerk.login("clerk1")
    first = await clerk.get("/dossiers")
    assert len(codes(first.text)) == 50
    match = re.search(r'href="(/dossiers\?after=[^"]+)" class="button" rel="next"', first.text)
    assert match
    second = await clerk.get(match.group(1).replace("&amp;", "&"))
    assert len(codes(second.text)) == 3 and 'rel="next"' not in second.text
    assert set(codes(first.text) + codes(second.text)) == {d["code"] for d in made}
    assert 'rel="prev"' in second.text and "Trang 2/2" in second.text
    assert "Tìm thấy 53 hồ sơ" in first.text and "hồ sơ 1–50" in first.text
    back = re.search(r'href="(/dossiers\?before=[^"]+)" class="button" rel="prev"', second.text)
    assert back
    again = await clerk.get(back.group(1).replace("&amp;", "&"))
    assert codes(again.text) == codes(first.text) and 'rel="prev"' not in again.text
    numbered = await clerk.get("/dossiers?page=2")
    assert codes(numbered.text) == codes(second.text) and "hồ sơ 51–53" in numbered.text
    assert 'aria-current="page">2<' in numbered.text
    assert codes((await clerk.get("/dossiers?page=99")).text) == codes(second.text)  # the last


async def test_supplement_request_prints_form_02(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await move(edge, await create(edge, 1), "processing")
    clerk = staff()
    await clerk.login("clerk1")
    assert (await clerk.get(f"/dossiers/{d['id']}/supplement")).status == 404
    page = await clerk.get(f"/dossiers/{d['id']}")
    page = await clerk.post(f"/dossiers/{d['id']}/transition",
                            {"to": "supplement_requested", "base": d["version"], "note": ""})
    assert "Hãy ghi các giấy tờ cần bổ sung" in page.text
    page = await clerk.post(f"/dossiers/{d['id']}/transition", {
        "to": "supplement_requested", "base": d["version"],
        "note": "Giấy chứng sinh (bản chính)\n\nCăn cước của người đi đăng ký",
        "supplement_by": edge.store.today().strftime("%d/%m/%Y")})
    assert "Yêu cầu bổ sung giấy tờ" in page.text and 'id="print-supplement"' in page.text
    slip = await clerk.get(f"/dossiers/{d['id']}/supplement")
    assert slip.status == 200
    assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in slip.text
    assert slip.text.count('<article class="sheet"') == 2
    assert "<li>Giấy chứng sinh (bản chính)</li>" in slip.text
    assert "<li>Căn cước của người đi đăng ký</li>" in slip.text
    assert d["code"] in slip.text and 'class="segno qr"' in slip.text


async def test_a_stale_button_press_says_so(edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await create(edge, 1)
    clerk = staff()
    await clerk.login("clerk1")
    await clerk.get(f"/dossiers/{d['id']}")
    await move(edge, d, "processing")  # someone else, meanwhile
    page = await clerk.post(f"/dossiers/{d['id']}/transition",
                            {"to": "withdrawn", "base": d["version"]})
    assert "Hồ sơ vừa được thay đổi ở nơi khác" in page.text
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["status"] == "processing"


async def test_comments_and_a_later_scan(edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await create(edge, 1)
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get(f"/dossiers/{d['id']}")
    page = await clerk.post(f"/dossiers/{d['id']}/comments", {"text": "Đã gọi điện cho bố"})
    assert "Đã lưu ghi chú" in page.text and "Đã gọi điện cho bố" in page.text
    data = aiohttp.FormData()
    data.add_field("csrf", page.csrf)
    data.add_field("label", "Giấy chứng nhận kết hôn")
    data.add_field("kind", "bản sao")
    data.add_field("file", b"\xff\xd8\xff\xe0 jpeg", filename="kethon.jpg",
                   content_type="image/jpeg")
    page = await clerk.post(f"/dossiers/{d['id']}/attachments", data)
    assert "Đã thêm giấy tờ" in page.text
    assert "Giấy chứng nhận kết hôn" in page.text
    # a document received on paper only, two copies
    data = aiohttp.FormData()
    data.add_field("csrf", page.csrf)
    data.add_field("label", "Sổ hộ khẩu")
    data.add_field("kind", "bản sao có chứng thực")
    data.add_field("count", "2")
    page = await clerk.post(f"/dossiers/{d['id']}/attachments", data)
    assert "Đã thêm giấy tờ" in page.text and "chưa có bản quét" in page.text
    data = aiohttp.FormData()
    data.add_field("csrf", page.csrf)
    page = await clerk.post(f"/dossiers/{d['id']}/attachments", data)  # neither name nor file
    assert "Hãy nhập tên giấy tờ hoặc chọn tệp quét" in page.text
    receipt = await clerk.get(f"/dossiers/{d['id']}/receipt")
    assert '<td>Giấy chứng nhận kết hôn</td><td>bản sao</td><td class="num">01</td>' in receipt.text
    assert '<td>Sổ hộ khẩu</td><td>bản sao có chứng thực</td><td class="num">02</td>' \
        in receipt.text


async def test_an_unknown_dossier_is_a_404_page(staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    for path in ("/dossiers/01a21e4d-0000-7000-8000-000000000000", "/dossiers/not-an-id",
                 "/dossiers/not-an-id/receipt"):
        page = await clerk.get(path)
        assert page.status == 404 and "Không tìm thấy" in page.text, path


async def test_the_api_pages_back_with_prev(edge: EdgeHandle) -> None:
    """GET /api/dossiers: `prev` as `before` walks back over the pages `next` walked."""
    for i in range(7):
        await create(edge, i)
    forward, after = [], None
    while True:
        status, page = await edge.api.get("/api/dossiers?limit=3" + (f"&after={after}" if after
                                                                      else ""))
        assert status == 200, page
        forward.append([d["id"] for d in page["items"]])
        after = page["next"]
        if after is None:
            break
    assert [len(p) for p in forward] == [3, 3, 1]
    backward, before = [forward[-1]], page["prev"]
    while before is not None:
        status, page = await edge.api.get(f"/api/dossiers?limit=3&before={before}")
        assert status == 200, page
        backward.insert(0, [d["id"] for d in page["items"]])
        before = page["prev"]
    assert backward == forward
    status, answer = await edge.api.get("/api/dossiers?before=garbage")
    assert status == 422 and answer["field"] == "before", answer


async def test_search_by_a_name_or_date_in_the_form_by_phone_and_by_day(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    """Item 18.8: people ask by the child's name; the catalogue's searchable fields are found."""
    binh = await create(edge, 1, child_full_name="Lò Văn Bình", child_birth_date="2025-10-02")
    other = await create(edge, 2, child_full_name="Hà Thị Mây", mother_full_name="Lò Thị Bình")
    status, changed = await edge.api.patch(f"/api/dossiers/{other['id']}", {
        "set": {"applicant.phone": "0987 654 321"}, "base": other["version"]})
    assert status == 200, changed
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get("/dossiers?q=lo+van+binh")  # the child's name, no diacritics
    assert codes(page.text) == [binh["code"]]
    assert "Họ, chữ đệm, tên: Lò Văn Bình" in page.text  # why it was found
    page = await clerk.get("/dossiers?q=02/10/2025")  # the child's date of birth
    assert codes(page.text) == [binh["code"]] and "Ngày, tháng, năm sinh: 02/10/2025" in page.text
    page = await clerk.get("/dossiers?q=lo+thi+binh")  # the mother's name: not searchable
    assert codes(page.text) == []
    page = await clerk.get("/dossiers?q=0987.654.321")  # by phone, however it is typed
    assert codes(page.text) == [other["code"]]
    page = await clerk.get("/dossiers?q=%2B84987654321")
    assert codes(page.text) == [other["code"]]
    today = edge.store.today().strftime("%d/%m/%Y")
    page = await clerk.get("/dossiers?q=" + today)  # received that day
    assert set(codes(page.text)) == {binh["code"], other["code"]}
    status, found = await edge.api.get("/api/dossiers?q=lo+van+binh")
    assert status == 200 and [d["code"] for d in found["items"]] == [binh["code"]]
