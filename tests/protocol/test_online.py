"""Online intake in the pure core: the commune list (mergers followed, bad rows named), the
tracking check (made, typed back, compared by digest) and exactly what tracking shows, and a
dossier filed online whose time limit starts at its acceptance."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.calendar import Calendar, iso
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import create_draft, transition_draft, validate_create
from protocol.communes import DEFAULT_COMMUNES, communes_to_plain, parse_communes
from protocol.errors import RemoteProtocolError, ValidationError
from protocol.events import Event
from protocol.hlc import pack as hlc_pack
from protocol.merge import apply
from protocol.refdata import DEFAULT_REFDATA, KINDS, check_refdata, import_communes, with_public_url
from protocol.tracking import (
    ALPHABET,
    PUBLIC_KEYS,
    check_digest,
    code_in_link,
    display_check,
    make_check,
    normalize_check,
    public_status,
    track_link,
)
from tests.protocol.test_commands import DOSSIER, GOOD_BODY, TODAY, T, stamp

MERGER_DAY = date(2025, 7, 1)


# -- the commune list ---------------------------------------------------------------------------


def test_the_sample_list_is_published_by_default_and_follows_the_2025_merger() -> None:
    assert "communes" in KINDS and DEFAULT_REFDATA["communes"]["sample"] is True
    check_refdata("communes", DEFAULT_REFDATA["communes"])
    sinh_long = DEFAULT_COMMUNES.get("02227")
    assert sinh_long is not None and sinh_long.merged_into == "02245"
    assert DEFAULT_COMMUNES.resolve("02227", MERGER_DAY) == "02245"
    assert DEFAULT_COMMUNES.resolve("02227", date(2025, 6, 30)) == "02227"  # before it took effect
    assert DEFAULT_COMMUNES.resolve("02245", MERGER_DAY) == "02245"
    assert DEFAULT_COMMUNES.resolve("77777", MERGER_DAY) == "77777"  # not listed: itself
    current = [c.code for c in DEFAULT_COMMUNES.current(MERGER_DAY)]
    assert "02245" in current and "02227" not in current


def test_mergers_are_followed_through_several_steps() -> None:
    communes = parse_communes({"communes": [
        {"code": "00001", "name": "A", "merged_into": "00002", "effective": "2025-01-01"},
        {"code": "00002", "name": "B", "merged_into": "00003", "effective": "2025-07-01"},
        {"code": "00003", "name": "C"}]})
    assert communes.resolve("00001", date(2025, 3, 1)) == "00002"
    assert communes.resolve("00001", date(2025, 8, 1)) == "00003"


@pytest.mark.parametrize(("rows", "field"), [
    ([{"code": "2245", "name": "x"}], "communes[0].code"),
    ([{"code": "02245", "name": ""}], "communes[0].name"),
    ([{"code": "02245", "name": "a"}, {"code": "02245", "name": "b"}], "communes[1].code"),
    ([{"code": "02245", "name": "a", "merged_into": "02245"}], "communes[0].merged_into"),
    ([{"code": "02245", "name": "a", "merged_into": "09999"}], "communes[0].merged_into"),
    ([{"code": "02245", "name": "a", "effective": "1/7/2025"}], "communes[0].effective"),
    ([{"code": "00001", "name": "a", "merged_into": "00002"},
      {"code": "00002", "name": "b", "merged_into": "00001"}], "communes[0].merged_into"),
])
def test_a_bad_row_is_named(rows: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_communes({"communes": rows})
    assert caught.value.field == field
    with pytest.raises(RemoteProtocolError):  # and an edge refuses such data from a hub
        check_refdata("communes", {"communes": rows})


def test_import_from_csv_and_toml_keeps_the_hubs_address() -> None:
    csv_text = ("code,name,merged_into,effective\n02245,Xã Côn Lôn,,\n"
                "02227,Xã Sinh Long,02245,2025-07-01\n")
    from_csv = import_communes(csv_text, "csv", "https://dvc.example.vn/")
    assert from_csv.public_url == "https://dvc.example.vn" and not from_csv.sample
    assert from_csv.resolve("02227", MERGER_DAY) == "02245"
    toml_text = ('province = "08"\n[[communes]]\ncode = "02245"\nname = "Xã Côn Lôn"\n')
    from_toml = import_communes(toml_text, "toml", "")
    assert from_toml.province == "08" and [c.code for c in from_toml.items] == ["02245"]
    assert parse_communes(communes_to_plain(from_csv)) == from_csv  # the wire form round-trips
    with pytest.raises(ValidationError):
        import_communes(csv_text, "csv", "ftp://nope")


def test_a_new_public_url_is_a_new_version_only_when_it_changes() -> None:
    plain = communes_to_plain(DEFAULT_COMMUNES)
    moved = with_public_url(plain, "https://dvc.example.vn")
    assert moved is not None and parse_communes(moved).public_url == "https://dvc.example.vn"
    assert with_public_url(moved, "https://dvc.example.vn/") is None


# -- the tracking check -------------------------------------------------------------------------


@given(st.binary(min_size=7, max_size=7))
def test_a_check_reads_back_however_it_is_typed(rand: bytes) -> None:
    check = make_check(rand)
    assert len(check) == 10 and set(check) <= set(ALPHABET)
    shown = display_check(check)
    assert normalize_check(shown) == check
    assert normalize_check(shown.lower().replace("-", " ")) == check
    assert normalize_check(check.replace("0", "O").replace("1", "l")) == check


def test_checks_differ_and_carry_fifty_bits() -> None:
    assert make_check(b"\x00" * 7) == "0" * 10
    assert make_check(b"\xff" * 7) == "Z" * 10
    assert make_check(b"\x00" * 6 + b"\x40") != make_check(b"\x00" * 7)  # the 50th bit counts
    with pytest.raises(ValueError):
        make_check(b"\x00" * 6)


@pytest.mark.parametrize("typed", ["", "ABC", "U" * 10, "A" * 11, None, 12, "A" * 41])
def test_what_is_not_a_check(typed: Any) -> None:
    assert normalize_check(typed) is None


def test_the_digest_hides_the_length_of_a_guess() -> None:
    assert len(check_digest("A")) == len(check_digest("A" * 10)) == 32
    assert check_digest("0" * 10) != check_digest("1" + "0" * 9)


def test_the_link_a_receipts_qr_code_holds() -> None:
    link = track_link("https://dvc.example.vn/", "02245.01-260105-0001", "7K3QDM2X9F")
    assert link == ("https://dvc.example.vn/track?code=02245.01-260105-0001&check=7K3QD-M2X9F")
    assert code_in_link(link) == "02245.01-260105-0001"  # a scanner typing it into the desk
    assert code_in_link("Nguyễn Văn An") == "Nguyễn Văn An"


# -- a dossier filed online ---------------------------------------------------------------------


def filed_online() -> Any:
    new = validate_create({**GOOD_BODY, "channel": "online"}, DEFAULT_CATALOGUE, TODAY)
    draft = create_draft(new, commune="02245", code="08.DVC-260105-0001", received_ms=T,
                         calendar=Calendar(), status="submitted", track="7K3QDM2X9F",
                         received_by="online")
    return draft, apply(None, stamp(draft, "hub", 1))


def test_a_dossier_filed_online_has_no_due_date_until_accepted() -> None:
    draft, state = filed_online()
    assert draft.payload["status"] == "submitted" and draft.payload["due_at"] is None
    assert draft.payload["track"] == "7K3QDM2X9F" and draft.payload["received_by"] == "online"
    Event("hub", 1, 1, DOSSIER, "portal:dvc", "create", draft.payload, {}, b"")  # valid payload
    accepted_at = T + 2 * 86_400_000 + 3_600_000  # Wednesday 16:00: after the 15:00 cutoff
    accept = transition_draft({"to": "accepted"}, state, Calendar(), accepted_at,
                              DEFAULT_CATALOGUE)
    assert iso(accept.payload["due_at"]) == "2026-01-08T17:00:00+07:00"  # from acceptance
    # without the catalogue (an older caller) nothing is invented
    assert "due_at" not in transition_draft({"to": "accepted"}, state, Calendar(), accepted_at
                                            ).payload


def test_a_supplement_before_acceptance_starts_the_limit_at_processing() -> None:
    _, state = filed_online()
    asked = transition_draft({"to": "supplement_requested", "note": "Giấy chứng sinh"}, state,
                             Calendar(), T + 1000, DEFAULT_CATALOGUE)
    assert "due_at" not in asked.payload
    state = apply(state, stamp(asked, "02245.01", 1, at=1000))
    later = T + 86_400_000 - 3_600_000  # Tuesday 14:00, before the cutoff
    resumed = transition_draft({"to": "processing"}, state, Calendar(), later, DEFAULT_CATALOGUE)
    assert iso(resumed.payload["due_at"]) == "2026-01-06T17:00:00+07:00"


@pytest.mark.parametrize("payload", [{"track": "short"}, {"track": "IIIIIIIIII"},
                                     {"track": 7}, {"received_by": ""}, {"received_by": 5}])
def test_a_hostile_create_is_refused(payload: dict[str, Any]) -> None:
    draft, _ = filed_online()
    with pytest.raises(RemoteProtocolError):
        Event("hub", 1, 1, DOSSIER, "x", "create", {**draft.payload, **payload}, {}, b"")


def _move(state: Any, seq: int, to: str, note: str) -> Any:
    return apply(state, Event("02245.01", seq, hlc_pack(T + seq * 1000, 0), DOSSIER, "clerk",
                              "transition", {"to": to, "note": note},
                              dict(state.vv), b"" if seq == 1 else b"\x00" * 32))


def test_tracking_shows_exactly_the_public_keys() -> None:
    draft, state = filed_online()
    events = [stamp(draft, "hub", 1)]
    shown = public_status(state, events)
    assert tuple(shown) == PUBLIC_KEYS
    assert shown == {"code": "08.DVC-260105-0001", "status": "submitted",
                     "status_label": "Mới đăng ký", "due_at": None, "missing": []}
    assert public_status(state, events, "en")["status_label"] == "Submitted"
    text = repr(shown)
    for private in ("Nguyễn Văn An", "008095001234", "0912345678", "7K3QDM2X9F", "Côn Lôn"):
        assert private not in text


def test_tracking_lists_what_is_asked_for_and_why_it_was_refused() -> None:
    _, state = filed_online()
    asked = _move(state, 1, "supplement_requested", "Giấy chứng sinh\n\n Bản sao CCCD ")
    events = [Event("02245.01", 1, hlc_pack(T + 1000, 0), DOSSIER, "clerk", "transition",
                    {"to": "supplement_requested", "note": "Giấy chứng sinh\n\n Bản sao CCCD "},
                    dict(state.vv), b"")]
    assert public_status(asked, events)["missing"] == ["Giấy chứng sinh", "Bản sao CCCD"]
    refused = _move(state, 1, "refused", "Không thuộc thẩm quyền")
    events = [Event("02245.01", 1, hlc_pack(T + 1000, 0), DOSSIER, "clerk", "transition",
                    {"to": "refused", "note": "Không thuộc thẩm quyền"}, dict(state.vv), b"")]
    assert public_status(refused, events)["missing"] == ["Không thuộc thẩm quyền"]
    assert public_status(state, events)["missing"] == []  # still submitted: nothing asked
