"""ReportService: stored with everything an inspector needs; each way a report can be refused."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from PIL import Image

from registry.cases import CaseService
from registry.errors import NotFound
from registry.lookup import RegistryLookup
from registry.models import Report, ReportPhoto, ScanEvent
from registry.publications import PublicationService
from registry.reports import (
    PhotoTooLarge,
    ReportInput,
    ReportInvalid,
    ReportLimits,
    ReportService,
    TooManyReports,
    case_number,
)
from registry.scans import ScanHistory, ScanWriter
from registry.services import Actor, Role
from tests.app.verdict_codes import make_codes
from tests.conftest import FixedClock
from verification.decoding import ImageTooLarge, ImageUndecodable, NotAnImage
from verification.verdicts import Verifier


def jpeg(size=(64, 48), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def png(size=(40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, 255).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 3, 14, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def writer():
    return ScanWriter()


@pytest.fixture
def service(session, clock, writer):
    verifier = Verifier(lookup=RegistryLookup(session), scans=ScanHistory(session, writer))
    return ReportService(session, clock=clock, verifier=verifier, limits=ReportLimits(per_client_per_hour=3))


def valid(**extra) -> ReportInput:
    values = {"code": "", "where_kind": "market", "where_text": "Chợ Bến Thành, sạp 12", "seller": "Cô Lan",
              "price": "120.000 đ", "bought_on": "2026-03-10", "description": "Nhãn mờ, nắp lỏng"}
    photos = extra.pop("photos", [jpeg()])
    values.update(extra)
    return ReportInput.from_mapping(values, photos)


def test_case_number_format():
    assert case_number(123, 2026) == "VN-2026-000123"


def test_report_is_stored_with_everything_an_inspector_needs(service, session, registry, world, clock):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    photos = [jpeg(), png()]
    report = service.create(valid(code=codes["counterfeit"], link="https://shopee.vn/item/1", contact="0901234567",
                                  photos=photos), client_hash="c" * 32).report
    session.commit()
    stored = session.get(Report, report.id)
    assert stored.case_number == f"VN-2026-{report.id:06d}"
    assert (stored.gtin, stored.lot, stored.serial) == ("08936000010010", "LOT-1", codes.genuine_serial)
    assert stored.verdict == "counterfeit"
    assert stored.producer_id == world.producer_id  # a fake of its product: the GTIN's producer hears of it
    assert stored.where_kind == "market" and stored.where_text.startswith("Chợ Bến Thành")
    assert stored.seller == "Cô Lan" and stored.price == "120.000 đ" and stored.bought_on == date(2026, 3, 10)
    assert stored.link == "https://shopee.vn/item/1" and stored.contact == "0901234567"
    assert stored.client_hash == "c" * 32 and stored.status == "new" and stored.created_at == clock.now
    # Kept as pixels alone (registry.reports.without_metadata), hashed as kept.
    assert [p.media_type for p in stored.photos] == ["image/jpeg", "image/png"]
    assert all(p.sha256 == hashlib.sha256(p.data).hexdigest() for p in stored.photos)
    with Image.open(io.BytesIO(stored.photos[1].data)) as kept, Image.open(io.BytesIO(photos[1])) as sent:
        assert kept.tobytes() == sent.tobytes()  # a PNG stays lossless


def test_report_on_a_registered_batch_names_its_producer(service, session, registry, world, writer):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    report = service.create(valid(code=codes["recalled"]), client_hash=None).report
    assert report.verdict == "recalled" and report.producer_id == world.producer_id
    writer.flush(session)
    assert session.query(ScanEvent).filter_by(channel="report").count() == 1


@pytest.mark.parametrize("code", ["8936000010010", "(01)08936000010010(10)NEVER-REGISTERED"])
def test_a_report_on_a_plain_barcode_or_an_unknown_lot_names_the_gtins_producer(service, session, registry, world,
                                                                                 code):
    """What shoppers often have in hand is the EAN-13, or a fake's made-up lot: the report had
    named no producer, so the producer whose product it is never saw it."""
    make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    report = service.create(valid(code=code), client_hash=None).report
    assert report.verdict in ("unverifiable", "unknown") and report.producer_id == world.producer_id
    other = service.create(valid(code="(01)08937000000018(10)X"), client_hash=None).report
    assert other.verdict == "unknown" and other.gtin == "08937000000018"
    assert other.producer_id is None  # a GTIN no producer registered: no one's


def test_report_without_code_needs_a_photo(service):
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(photos=[]), client_hash=None)
    assert err.value.errors == {"code": "CODE_OR_PHOTO"}


def test_missing_fields_are_all_named(service):
    with pytest.raises(ReportInvalid) as err:
        service.create(ReportInput.from_mapping({"code": "x", "where_kind": "", "link": "shopee", "bought_on": "hôm qua"}),
                       client_hash=None)
    assert err.value.errors == {"where_kind": "FIELD_REQUIRED", "link": "BAD_LINK", "bought_on": "BAD_DATE"}
    assert err.value.code == "REPORT_INVALID"


@pytest.mark.parametrize("typed, kept", [
    ("shopee.vn/shop/123", "https://shopee.vn/shop/123"),  # as an app's "copy link" or a shopper types it
    ("www.facebook.com/groups/cho-re?ref=share", "https://www.facebook.com/groups/cho-re?ref=share"),
    ("lazada.vn", "https://lazada.vn"),
    ("http://tiki.vn/p/1", "http://tiki.vn/p/1"),  # a scheme given stays
])
def test_a_link_without_its_scheme_is_taken_as_a_web_address(service, typed, kept):
    report = service.create(ReportInput.from_mapping({"code": "08936000010010", "where_kind": "ecommerce",
                                                      "link": typed}), client_hash=None).report
    assert report.link == kept


@pytest.mark.parametrize("typed", ["shopee", "Chợ Lớn", "javascript:alert(1)", "ftp://x.vn/a", "shopee .vn/x"])
def test_what_is_no_web_address_is_still_refused(service, typed):
    with pytest.raises(ReportInvalid) as err:
        service.create(ReportInput.from_mapping({"code": "x", "where_kind": "shop", "where_text": "Chợ",
                                                 "link": typed}), client_hash=None)
    assert err.value.errors == {"link": "BAD_LINK"}


def test_unknown_place_kind_and_future_date(service):
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(where_kind="moon", bought_on="2026-05-01"), client_hash=None)
    assert err.value.errors == {"where_kind": "BAD_CHOICE", "bought_on": "DATE_IN_FUTURE"}


def test_a_link_alone_says_where(service):
    report = service.create(valid(where_kind="livestream", where_text="", link="https://facebook.com/live/1"),
                            client_hash=None).report
    assert report.where_text == "" and report.link.endswith("/live/1")


def test_too_long_text(service):
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(seller="x" * 201), client_hash=None)
    assert err.value.errors == {"seller": "TOO_LONG"}


def test_at_most_three_photos(service):
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(photos=[jpeg()] * 4), client_hash=None)
    assert err.value.errors == {"photo": "TOO_MANY_PHOTOS"}


@pytest.mark.parametrize("data, error, code", [
    (b"%PDF-1.4 not a photo" * 10, NotAnImage, "UNSUPPORTED_MEDIA_TYPE"),
    (jpeg()[:200], ImageUndecodable, "IMAGE_UNDECODABLE"),
])
def test_bad_photos_are_refused(service, session, data, error, code):
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(photos=[jpeg(), data]), client_hash=None)
    assert isinstance(err.value.photo_error, error)
    assert err.value.errors == {"photo": code} and err.value.code == code
    assert "photo 2" in err.value.details["photo"]
    assert session.query(Report).count() == 0 and session.query(ReportPhoto).count() == 0


def test_photo_with_too_many_pixels(session, clock):
    service = ReportService(session, clock=clock, limits=ReportLimits(max_pixels=1000))
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(photos=[png((40, 40))]), client_hash=None)
    assert isinstance(err.value.photo_error, ImageTooLarge)


def test_photo_file_too_large(session, clock):
    service = ReportService(session, clock=clock, limits=ReportLimits(max_photo_bytes=1000))
    with pytest.raises(ReportInvalid) as err:
        service.create(valid(photos=[jpeg((400, 400)) + b"\0" * 2000]), client_hash=None)
    assert isinstance(err.value.photo_error, PhotoTooLarge) and err.value.code == "PHOTO_TOO_LARGE"


def test_flood_from_one_client_is_limited_per_hour(service, clock):
    for _ in range(3):
        service.create(valid(), client_hash="a" * 32)
    with pytest.raises(TooManyReports):
        service.create(valid(), client_hash="a" * 32)
    service.create(valid(), client_hash="b" * 32)  # another device is not affected
    clock.now += timedelta(hours=1, seconds=1)
    service.create(valid(), client_hash="a" * 32)


def test_case_numbers_are_unique_and_readable(service, session):
    first = service.create(valid(), client_hash=None).report
    second = service.create(valid(), client_hash=None).report
    assert first.case_number != second.case_number
    assert service.get(second.case_number).id == second.id
    view = ReportService.view(second)
    assert view["where"] == {"kind": "market", "text": "Chợ Bến Thành, sạp 12"}
    assert view["photos"][0]["media_type"] == "image/jpeg"


# -- following a report ------------------------------------------------------------------------------
INSPECTOR = Actor(role=Role.INSPECTOR, name="user:minh")
AUTHORITY = Actor(role=Role.AUTHORITY, name="user:an")


def test_the_follow_up_code_is_given_once_and_only_its_hash_kept(service, session, clock):
    filed = service.create(valid(), client_hash=None)
    session.commit()
    code, report = filed.followup_code, filed.report
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code)
    row = session.execute(sa.text("SELECT * FROM reports WHERE id = :id"), {"id": report.id}).mappings().one()
    assert not any(code in str(value) or code.replace("-", "") in str(value) for value in row.values())
    assert row["followup_hash"] == hashlib.sha256(f"{report.case_number}|{code.replace('-', '')}".encode()).hexdigest()
    status = service.followup(report.case_number, code)
    assert status == {"case_number": report.case_number, "status": "received", "received_at": "2026-03-14T09:00:00Z",
                      "updated_at": "2026-03-14T09:00:00Z", "published": False}
    # as a shopper may type it: without the hyphen, in small letters, O for 0 and l for 1
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert service.followup(" " + report.case_number.lower() + " ", typed)["status"] == "received"
    assert service.create(valid(), client_hash=None).followup_code != code


def test_a_wrong_code_an_unknown_case_and_an_old_report_get_the_same_answer(service, session):
    filed = service.create(valid(), client_hash=None)
    old = service.create(valid(), client_hash=None).report
    old.followup_hash = None  # filed before follow-up codes (migration 0010)
    session.commit()
    other = "00000-00000" if filed.followup_code != "00000-00000" else "11111-11111"
    for case, code in ((filed.report.case_number, other), ("VN-2026-999999", filed.followup_code),
                       (old.case_number, filed.followup_code), (old.case_number, ""),
                       ("not a case", filed.followup_code), (filed.report.case_number, "")):
        with pytest.raises(NotFound) as caught:
            service.followup(case, code)
        assert caught.value.code == "REPORT_UNKNOWN"
        assert caught.value.message == "no report has this case number and follow-up code"


def test_the_shopper_sees_the_status_in_plain_terms_and_when_it_changed(service, session, clock, registry):
    filed = service.create(valid(seller="Cửa hàng Gà Vàng"), client_hash=None)
    session.commit()
    case, code = filed.report.case_number, filed.followup_code
    cases = CaseService(session, clock=clock)
    clock.now += timedelta(days=1)
    cases.assign(INSPECTOR, case, assignee="Đội QLTT số 3", text="internal: the seller is known to us")
    assert service.followup(case, code)["status"] == "investigating"
    clock.now += timedelta(days=2)
    cases.transition(INSPECTOR, case, to="investigating")
    cases.transition(INSPECTOR, case, to="confirmed", text="fake labels seized")
    status = service.followup(case, code)
    assert status["status"] == "confirmed" and status["updated_at"] == "2026-03-17T09:00:00Z"
    assert status["published"] is False and "seized" not in str(status) and "QLTT" not in str(status)
    publications = PublicationService(session, authority=registry.authority)
    item = cases.publish(AUTHORITY, case, lambda **fields: publications.publish(AUTHORITY, **fields),
                         decision_ref="12/QĐ-QLTT")
    assert service.followup(case, code)["published"] is True
    publications.withdraw(AUTHORITY, item.id, reason="decision annulled")
    assert service.followup(case, code)["published"] is False


def test_a_dismissed_report_reads_closed(service, session, clock):
    filed = service.create(valid(), client_hash=None)
    CaseService(session, clock=clock).transition(INSPECTOR, filed.report.case_number, to="dismissed",
                                                 text="the product is genuine")
    assert service.followup(filed.report.case_number, filed.followup_code)["status"] == "closed"


def test_a_case_number_is_read_as_the_shopper_types_it(service, session):
    """Without its hyphens, in lower case, with O for 0 (how a case number is read out and
    written down): the same case. Another case number with the same code is still unknown."""
    filed = service.create(valid(), client_hash=None)
    session.commit()
    case, code = filed.report.case_number, filed.followup_code
    for typed in (case.replace("-", ""), case.lower(), case.replace("0", "O"), " " + case.replace("-", " ") + " "):
        assert service.followup(typed, code)["status"] == "received", typed
    other = case[:-1] + str((int(case[-1]) + 1) % 10)
    with pytest.raises(NotFound):
        service.followup(other, code)
    with pytest.raises(NotFound):
        service.followup("VN2026", code)
