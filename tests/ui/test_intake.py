"""The intake form without a browser: the friendly checks (pure) and a full POST with scans."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import aiohttp
import pytest

from edge_node.ui.intake_form import check_citizen_id, check_intake, form_value
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import validate_create
from service.ui.formats import parse_day
from tests.harness import EdgeHandle
from tests.ui.conftest import Staff

TODAY = date(2026, 11, 28)
BIRTH = DEFAULT_CATALOGUE.get("1.001193")
PDF = b"%PDF-1.4\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def good_form(**changes: str) -> dict[str, str]:
    form = {
        "applicant.full_name": "  Nguyễn   Văn An ", "applicant.citizen_id": "008 090 001 234",
        "applicant.phone": "0912.345.678", "applicant.address": "Thôn Nà Khá",
        "fields.relationship": "Cha", "fields.child_full_name": "Nguyễn Văn Bình",
        "fields.child_birth_date": "20/11/2025", "fields.child_sex": "Nam",
        "fields.child_ethnicity": "Tày", "fields.child_nationality": "Việt Nam",
        "fields.child_birth_place": "Trạm y tế xã Côn Lôn", "fields.mother_birth_year": "1995",
    }
    form.update(changes)
    return form


@pytest.mark.parametrize(("value", "key"), [
    ("00809000123", "v.cid_digits"), ("00809000123a", "v.cid_digits"),
    ("000090001234", "v.cid_province"), ("097090001234", "v.cid_province"),
    ("008290001234", "v.cid_century"),  # 2090: in the future
    ("008990001234", "v.cid_century"),
])
def test_citizen_id_problems(value: str, key: str) -> None:
    problem = check_citizen_id(value, TODAY)
    assert problem is not None and problem[0] == key


@pytest.mark.parametrize("value", ["008090001234", "001000000000", "096326000001",
                                   "008126123456"])
def test_valid_citizen_ids(value: str) -> None:
    assert check_citizen_id(value, TODAY) is None


def test_a_good_form_becomes_the_api_body_the_protocol_accepts() -> None:
    assert BIRTH is not None
    checked = check_intake(BIRTH, good_form(), TODAY)
    assert checked.ok, checked.errors
    assert checked.body["applicant"] == {"full_name": "Nguyễn Văn An",
                                         "citizen_id": "008090001234", "phone": "0912345678",
                                         "address": "Thôn Nà Khá"}
    assert checked.body["fields"]["child_birth_date"] == "2025-11-20"
    assert "father_full_name" not in checked.body["fields"]
    validate_create(checked.body, DEFAULT_CATALOGUE, TODAY)  # the authority agrees


@pytest.mark.parametrize(("change", "name", "key"), [
    ({"applicant.full_name": " "}, "applicant.full_name", "v.required"),
    ({"applicant.phone": "12345"}, "applicant.phone", "v.phone"),
    ({"fields.child_birth_date": "31/02/2026"}, "fields.child_birth_date", "v.date"),
    ({"fields.child_birth_date": "01/12/2026"}, "fields.child_birth_date", "v.date_future"),
    ({"fields.child_sex": "X"}, "fields.child_sex", "v.choice"),
    ({"fields.mother_birth_year": "95"}, "fields.mother_birth_year", "v.year"),
    ({"fields.child_full_name": ""}, "fields.child_full_name", "v.required"),
])
def test_form_problems_name_the_field(change: dict[str, str], name: str, key: str) -> None:
    assert BIRTH is not None
    checked = check_intake(BIRTH, good_form(**change), TODAY)
    assert checked.errors[name][0] == key and len(checked.errors) == 1, checked.errors


def test_dates() -> None:
    assert parse_day("20/11/2026") == parse_day("20-11-2026") == parse_day("2026-11-20") \
        == "2026-11-20"
    assert parse_day("5/1/2026") == "2026-01-05"
    assert parse_day("31/02/2026") is None and parse_day("20/11/26") is None
    assert BIRTH is not None
    spec = BIRTH.field("child_birth_date")
    assert spec is not None and form_value(spec, "2026-11-20") == "20/11/2026"


def multipart(token: str, form: dict[str, str], files: dict[str, tuple[str, bytes, str]],
              ) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("csrf", token)
    data.add_field("procedure_code", "1.001193")
    for key, value in form.items():
        data.add_field(key, value)
    for key, (name, body, ctype) in files.items():
        data.add_field(key, body, filename=name, content_type=ctype)
    return data


async def intake(person: Staff, form: dict[str, str],
                 files: dict[str, tuple[str, bytes, str]] | None = None) -> Any:
    token = (await person.get("/dossiers/new?procedure=1.001193")).csrf
    return await person.post("/dossiers/new", multipart(token, form, files or {}))


async def test_server_side_checks_when_javascript_is_off(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    page = await intake(clerk, good_form(**{"applicant.citizen_id": "008290001234",
                                            "fields.child_birth_date": "2026/13/01"}))
    assert page.status == 422
    assert "Hồ sơ chưa lưu" in page.text
    assert "năm sinh ở tương lai" in page.text
    assert "Ngày không đúng" in page.text
    assert 'value="Nguyễn Văn Bình"' in page.text  # what was typed is kept
    assert (await edge.api.get("/api/dossiers"))[1]["items"] == []


async def test_intake_with_scans_then_the_dossier_page(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    page = await intake(clerk, {**good_form(), "doc_label_0": "Giấy chứng sinh",
                                "doc_kind_0": "bản chính", "doc_label_1": "",
                                "doc_kind_1": "bản sao"},
                        {"doc_file_0": ("gcs.pdf", PDF, "application/pdf"),
                         "doc_file_1": ("cccd.png", PNG, "image/png")})
    assert page.status == 200 and "?new=1" in page.url
    assert "Đã tiếp nhận hồ sơ" in page.text
    _, listing = await edge.api.get("/api/dossiers")
    (d,) = listing["items"]
    assert d["applicant"]["citizen_id"] == "008090001234"
    docs = sorted((a["document"], a["doc_kind"], a["count"]) for a in d["attachments"])
    assert docs == [("Giấy chứng sinh", "bản chính", 1), ("cccd", "bản sao", 1)]
    assert d["created_by"]["actor"] == "clerk1"
    assert "Giấy chứng sinh" in page.text and "bản chính" in page.text
    for a in d["attachments"]:
        async with clerk.http.get(f"{clerk.base}/api/dossiers/{d['id']}/attachments/"
                                  f"{a['sha256']}") as resp:
            assert resp.status == 200 and await resp.read() in (PDF, PNG)


async def test_a_scan_that_is_not_pdf_jpeg_or_png_is_refused(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    page = await intake(clerk, {**good_form(), "doc_label_0": "Tờ khai"},
                        {"doc_file_0": ("to-khai.docx", b"PK\x03\x04 not a scan", "x/y")})
    assert page.status == 422 and "Chỉ đính kèm được tệp PDF, JPEG hoặc PNG" in page.text
    page = await intake(clerk, {**good_form(), "doc_label_0": "Tờ khai", "doc_count_0": "0"})
    assert page.status == 422 and "Số lượng là số nguyên từ 1 đến 99" in page.text
    assert (await edge.api.get("/api/dossiers"))[1]["items"] == []


async def test_a_paper_document_is_listed_without_a_scan(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    page = await intake(clerk, {**good_form(), "doc_label_0": "Giấy chứng nhận kết hôn",
                                "doc_kind_0": "bản sao", "doc_count_0": "2"})
    assert page.status == 200 and "?new=1" in page.url, page.text
    (d,) = (await edge.api.get("/api/dossiers"))[1]["items"]
    [entry] = d["attachments"]
    assert (entry["document"], entry["doc_kind"], entry["count"], entry["sha256"]) == (
        "Giấy chứng nhận kết hôn", "bản sao", 2, None)
    assert "chưa có bản quét" in page.text
    _, sync = await edge.api.get("/api/sync")
    assert sync["pending_blobs"] == 0  # nothing to upload for paper


async def test_a_refused_form_keeps_its_scans_by_signed_reference(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    bad = good_form(**{"applicant.citizen_id": "008290001234"})
    page = await intake(clerk, {**bad, "doc_label_0": "Giấy chứng sinh"},
                        {"doc_file_0": ("gcs.pdf", PDF, "application/pdf")})
    assert page.status == 422 and "Đã giữ tệp gcs.pdf" in page.text
    token = re.search(r'name="doc_keep_0" value="([^"]+)"', page.text)
    assert token is not None, page.text
    kept = {"doc_keep_0": token.group(1), "doc_keep_name_0": "gcs.pdf",
            "doc_label_0": "Giấy chứng sinh"}
    # a reference this session did not get is refused (another file name, a forged blob)
    forged = await intake(clerk, {**good_form(), **kept, "doc_keep_name_0": "other.pdf"})
    assert forged.status == 422 and "không còn được giữ" in forged.text
    other = staff()
    await other.login("leader1")
    stolen = await intake(other, {**good_form(), **kept})
    assert stolen.status == 422 and "không còn được giữ" in stolen.text
    assert (await edge.api.get("/api/dossiers"))[1]["items"] == []
    page = await intake(clerk, {**good_form(), **kept})
    assert page.status == 200 and "?new=1" in page.url
    (d,) = (await edge.api.get("/api/dossiers"))[1]["items"]
    [entry] = d["attachments"]
    assert entry["document"] == "Giấy chứng sinh" and entry["name"] == "gcs.pdf"
    assert entry["sha256"] == hashlib.sha256(PDF).hexdigest()


async def test_edit_writes_only_what_changed(edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = staff()
    await clerk.login("clerk1")
    await intake(clerk, good_form())
    _, listing = await edge.api.get("/api/dossiers")
    d = listing["items"][0]
    form = await clerk.get(f"/dossiers/{d['id']}/edit")
    assert 'value="20/11/2025"' in form.text
    page = await clerk.post(f"/dossiers/{d['id']}/edit", {
        **good_form(**{"applicant.phone": "0987654321"}), "base": d["version"]},
        csrf=form.csrf)
    assert "Đã lưu thay đổi" in page.text
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["applicant"]["phone"] == "0987654321"
    assert now["history"][-1]["kind"] == "set" and now["history"][-1]["fields"] == [
        "applicant.phone"]
