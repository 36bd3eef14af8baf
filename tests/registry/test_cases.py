"""Shoppers' reports worked as cases: transitions, notes, attachments, visibility, publication."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from PIL import Image
from sqlalchemy import select

from registry.accounts import AccountService
from registry.cases import TRANSITIONS, AttachmentRejected, CaseService, publish_confirmed, sniff_media_type
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import AuditEvent, CaseNote, Publication, Report
from registry.publications import PublicationService
from registry.services import SYSTEM, Actor, Role

INSPECTOR = Actor(role=Role.INSPECTOR, name="user:minh")
AUTHORITY = Actor(role=Role.AUTHORITY, name="user:boss")
PARTNER = Actor(role=Role.PARTNER, name="token:7")


def make_report(session, number: int, *, producer_id: str | None, status: str = "new", seller: str = "Shop X",
                contact: str = "0909 000 000") -> Report:
    report = Report(case_number=f"VN-2026-{number:06d}", code="https://verify.example.vn/01/x", gtin="08936000010010",
                    lot="LOT-1", producer_id=producer_id, verdict="counterfeit", where_kind="market",
                    where_text="Chợ Lớn", seller=seller, contact=contact, status=status,
                    created_at=datetime(2026, 11, 1, tzinfo=timezone.utc))
    session.add(report)
    session.flush()
    return report


@pytest.fixture
def cases(session):
    accounts = AccountService(session)
    for username, role in (("minh", "inspector"), ("hoa", "inspector"), ("boss", "authority")):
        accounts.create_user(SYSTEM, username=username, password="a long enough password", role=role)
    return CaseService(session)


@pytest.fixture
def other(registry):
    """A second producer."""
    from registry.services import SYSTEM

    return registry.admit_producer(SYSTEM, name="Cơ sở B", tax_code="0399999999", gs1_prefixes=["893600002"],
                                   country="VN").id


def test_the_main_path_records_every_transition(cases, session, world):
    make_report(session, 1, producer_id=world.producer_id)
    cases.assign(INSPECTOR, "VN-2026-000001", assignee="user:minh")
    cases.transition(INSPECTOR, "VN-2026-000001", to="investigating", text="visiting the market")
    case = cases.transition(INSPECTOR, "VN-2026-000001", to="confirmed", text="fake labels seized")
    assert case.status == "confirmed" and case.assigned_to == "user:minh"
    moves = [(n.status_from, n.status_to) for n in cases.notes(INSPECTOR, "VN-2026-000001")]
    assert moves == [("new", "assigned"), ("assigned", "investigating"), ("investigating", "confirmed")]
    actions = [a for (a,) in session.execute(select(AuditEvent.action).where(AuditEvent.target == "VN-2026-000001"))]
    assert actions == ["case.assign", "case.transition", "case.transition"]


def test_allowed_and_refused_transitions(cases, session, world):
    make_report(session, 2, producer_id=world.producer_id)
    cases.transition(INSPECTOR, "VN-2026-000002", to="investigating")  # new -> investigating directly
    with pytest.raises(Invalid):
        cases.transition(INSPECTOR, "VN-2026-000002", to="dismissed")  # needs a reason
    cases.transition(INSPECTOR, "VN-2026-000002", to="dismissed", text="genuine after all")
    with pytest.raises(Conflict):
        cases.transition(INSPECTOR, "VN-2026-000002", to="confirmed")
    with pytest.raises(Conflict):
        cases.assign(INSPECTOR, "VN-2026-000002", assignee="x")
    cases.transition(INSPECTOR, "VN-2026-000002", to="investigating", text="reopened: new evidence")
    with pytest.raises(Invalid):
        cases.transition(INSPECTOR, "VN-2026-000002", to="closed")
    make_report(session, 3, producer_id=world.producer_id)
    with pytest.raises(Conflict):
        cases.transition(INSPECTOR, "VN-2026-000003", to="confirmed", text="too fast")
    for status, targets in TRANSITIONS.items():  # any -> dismissed, except from dismissed itself
        assert ("dismissed" in targets) == (status != "dismissed")


def test_only_inspectors_and_the_authority_work_cases(cases, session, world):
    make_report(session, 4, producer_id=world.producer_id)
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    for actor in (producer, PARTNER):
        with pytest.raises(Forbidden):
            cases.transition(actor, "VN-2026-000004", to="investigating")
        with pytest.raises(Forbidden):
            cases.add_note(actor, "VN-2026-000004", text="hi")
        with pytest.raises(Forbidden):
            cases.notes(actor, "VN-2026-000004")
    cases.transition(AUTHORITY, "VN-2026-000004", to="investigating")
    with pytest.raises(NotFound):
        cases.transition(INSPECTOR, "VN-2099-000000", to="investigating")


def test_producers_see_only_reports_about_their_own_products(cases, session, world, other):
    make_report(session, 5, producer_id=world.producer_id)
    make_report(session, 6, producer_id=other)
    make_report(session, 7, producer_id=None)
    own = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    someone_else = Actor(role=Role.PRODUCER, producer_id=other, name="q")
    assert [c.case_number for c in cases.list(own)] == ["VN-2026-000005"]
    assert [c.case_number for c in cases.list(someone_else)] == ["VN-2026-000006"]
    assert len(cases.list(INSPECTOR)) == 3
    cases.get(own, "VN-2026-000005")
    for number in ("VN-2026-000006", "VN-2026-000007"):
        with pytest.raises(Forbidden):
            cases.get(own, number)
    view = cases.view(own, cases.get(own, "VN-2026-000005"))
    assert "contact" not in view and "0909" not in str(view)
    assert cases.view(INSPECTOR, cases.get(INSPECTOR, "VN-2026-000005"))["contact"] == "0909 000 000"


def test_partners_read_confirmed_cases_only(cases, session, world):
    make_report(session, 8, producer_id=world.producer_id)
    make_report(session, 9, producer_id=world.producer_id, status="confirmed")
    assert [c.case_number for c in cases.list(PARTNER)] == ["VN-2026-000009"]
    assert cases.list(PARTNER, status="new") == []
    with pytest.raises(Forbidden):
        cases.get(PARTNER, "VN-2026-000008")
    assert "contact" not in cases.view(PARTNER, cases.get(PARTNER, "VN-2026-000009"))


def test_a_case_is_assigned_only_to_an_account_that_can_work_it(cases, session, world, registry):
    """A portal username that does not exist, is deactivated or belongs to a producer is refused
    (a typo must not leave the case with nobody); names that are not portal accounts stay free."""
    make_report(session, 20, producer_id=world.producer_id)
    accounts = AccountService(session)
    accounts.create_user(SYSTEM, username="gone", password="a long enough password", role="inspector")
    accounts.deactivate(SYSTEM, "gone")
    accounts.create_user(SYSTEM, username="maker", password="a long enough password", role="producer",
                         producer_id=world.producer_id)
    for assignee in ("user:nobody", "user:gone", "user:maker", "user:"):
        with pytest.raises(Invalid) as refused:
            cases.assign(INSPECTOR, "VN-2026-000020", assignee=assignee)
        assert refused.value.code == "UNKNOWN_ASSIGNEE" and refused.value.field == "assignee"
    case = cases.get(INSPECTOR, "VN-2026-000020")
    assert case.status == "new" and case.assigned_to is None
    assert cases.assign(INSPECTOR, "VN-2026-000020", assignee="user:boss").assigned_to == "user:boss"
    assert cases.assign(INSPECTOR, "VN-2026-000020", assignee="Đội QLTT số 1").assigned_to == "Đội QLTT số 1"


def test_assignment_is_an_event_of_the_note_apart_from_its_text(cases, session, world):
    """What the system did is stored as an event, for each page to name in its reader's language;
    the note's text stays what a person wrote (empty when nobody wrote anything)."""
    make_report(session, 21, producer_id=world.producer_id)
    cases.assign(INSPECTOR, "VN-2026-000021", assignee="user:hoa")
    cases.assign(INSPECTOR, "VN-2026-000021", assignee="Đội QLTT số 1", text="Đội 1 gần chợ hơn")
    first, second = (CaseService.note_view(n) for n in cases.notes(INSPECTOR, "VN-2026-000021"))
    assert first["event"] == {"kind": "assigned", "detail": "user:hoa"} and first["text"] == ""
    assert (first["status_from"], first["status_to"]) == ("new", "assigned")
    assert second["event"] == {"kind": "assigned", "detail": "Đội QLTT số 1"}
    assert second["text"] == "Đội 1 gần chợ hơn" and second["status_to"] is None
    note = cases.add_note(INSPECTOR, "VN-2026-000021", text="Đã đến quầy")
    assert CaseService.note_view(note)["event"] is None


def test_filters(cases, session, world):
    make_report(session, 10, producer_id=world.producer_id)
    make_report(session, 11, producer_id=world.producer_id, status="investigating")
    assert [c.case_number for c in cases.list(INSPECTOR, status="investigating")] == ["VN-2026-000011"]
    with pytest.raises(Invalid):
        cases.list(INSPECTOR, status="nonsense")
    cases.assign(INSPECTOR, "VN-2026-000010", assignee="user:hoa")
    assert [c.case_number for c in cases.list(INSPECTOR, assigned_to="user:hoa")] == ["VN-2026-000010"]
    assert cases.counts(INSPECTOR)["assigned"] == 1


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG")
    return out.getvalue()


def test_notes_with_attachments_are_sniffed_and_size_limited(session, world):
    cases = CaseService(session, max_attachment_bytes=2000)
    make_report(session, 12, producer_id=world.producer_id)
    note = cases.add_note(INSPECTOR, "VN-2026-000012", text="photo of the shelf", attachment=_png(),
                          attachment_name="../../etc/shelf.exe")
    assert note.attachment_type == "image/png" and note.attachment_name == "shelf.exe"
    pdf = cases.add_note(INSPECTOR, "VN-2026-000012", attachment=b"%PDF-1.7\n...", attachment_name="decision.pdf")
    assert pdf.attachment_type == "application/pdf"
    data, media_type, name = cases.attachment(INSPECTOR, "VN-2026-000012", pdf.id)
    assert data.startswith(b"%PDF") and media_type == "application/pdf" and name == "decision.pdf"
    with pytest.raises(AttachmentRejected) as info:  # an executable dressed as a photo
        cases.add_note(INSPECTOR, "VN-2026-000012", attachment=b"MZ\x90\x00\x03" + b"\x00" * 50,
                       attachment_name="photo.jpg")
    assert info.value.status == 415
    with pytest.raises(AttachmentRejected) as info:
        cases.add_note(INSPECTOR, "VN-2026-000012", attachment=b"a" * 3000, attachment_name="big.txt")
    assert info.value.status == 413
    with pytest.raises(Invalid):
        cases.add_note(INSPECTOR, "VN-2026-000012", text="  ")
    assert [n.text for n in cases.notes(INSPECTOR, "VN-2026-000012")] == ["photo of the shelf", ""]


@pytest.mark.parametrize("data,media_type", [
    (b"\xff\xd8\xff\xe0rest", "image/jpeg"), (b"GIF89a...", "image/gif"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    ("Biên bản kiểm tra".encode(), "text/plain"), (b"\x00\x01\x02binary", "application/octet-stream"),
])
def test_sniffing(data, media_type):
    assert sniff_media_type(data) == media_type


def test_publish_confirmed_through_the_publication_service(cases, session, registry, world):
    make_report(session, 13, producer_id=world.producer_id, seller="Cửa hàng Gà Vàng")
    publications = PublicationService(session, authority=registry.authority)
    publisher = lambda **fields: publications.publish(AUTHORITY, **fields)  # noqa: E731
    with pytest.raises(Conflict):
        cases.publish(AUTHORITY, "VN-2026-000013", publisher)  # not confirmed yet
    cases.transition(INSPECTOR, "VN-2026-000013", to="investigating")
    cases.transition(INSPECTOR, "VN-2026-000013", to="confirmed", text="decision 12/QĐ")
    with pytest.raises(Forbidden):
        cases.publish(INSPECTOR, "VN-2026-000013", publisher)
    size = registry.log().size()
    item = cases.publish(AUTHORITY, "VN-2026-000013", publisher, decision_ref="12/QĐ-QLTT", tax_code="0311111111")
    assert isinstance(item, Publication) and item.kind == "violator"
    assert item.name == "Cửa hàng Gà Vàng" and item.decision_ref == "12/QĐ-QLTT" and item.place == "Chợ Lớn"
    assert item.decided_on is not None and registry.log().size() == size + 1
    assert cases.published(cases.get(AUTHORITY, "VN-2026-000013"))["publication"] == item.id
    with pytest.raises(Conflict):
        cases.publish(AUTHORITY, "VN-2026-000013", publisher)
    last = session.execute(select(CaseNote).order_by(CaseNote.id.desc()).limit(1)).scalar_one()
    assert (last.event, last.event_detail, last.text) == ("published", str(item.id), "")


def test_a_published_case_stays_confirmed_until_the_publication_is_withdrawn(cases, session, registry, world):
    """A second inspector had dismissed a case published as a violator: the shopper read "not
    confirmed" under "the seller is on the list of violators", and the list went on naming the
    seller. While the publication stands the case stays confirmed; once withdrawn, the case moves
    again and, confirmed anew, may be published again."""
    from registry.cases import live_publication

    other = Actor(role=Role.INSPECTOR, name="user:hoa")
    make_report(session, 15, producer_id=world.producer_id, seller="Cửa hàng Gà Vàng")
    publications = PublicationService(session, authority=registry.authority)
    publisher = lambda **fields: publications.publish(AUTHORITY, **fields)  # noqa: E731
    cases.transition(INSPECTOR, "VN-2026-000015", to="investigating")
    cases.transition(INSPECTOR, "VN-2026-000015", to="confirmed", text="decision 12/QĐ")
    first = cases.publish(AUTHORITY, "VN-2026-000015", publisher, decision_ref="12/QĐ-QLTT")
    with pytest.raises(Conflict) as refused:
        cases.transition(other, "VN-2026-000015", to="dismissed", text="not a fake after all")
    assert refused.value.code == "CASE_PUBLISHED" and f"publication {first.id}" in refused.value.message
    assert cases.get(AUTHORITY, "VN-2026-000015").status == "confirmed"
    publications.withdraw(AUTHORITY, first.id, reason="decision annulled")
    assert cases.published(cases.get(AUTHORITY, "VN-2026-000015")) is None
    cases.transition(other, "VN-2026-000015", to="dismissed", text="decision annulled")
    cases.transition(other, "VN-2026-000015", to="investigating", text="new evidence")
    cases.transition(other, "VN-2026-000015", to="confirmed", text="new decision 14/QĐ")
    second = cases.publish(AUTHORITY, "VN-2026-000015", publisher, decision_ref="14/QĐ-QLTT")
    assert second.id != first.id and cases.published(cases.get(AUTHORITY, "VN-2026-000015"))["publication"] == second.id
    assert live_publication(session, cases.get(AUTHORITY, "VN-2026-000015").id) == second.id  # the shopper's too


def test_a_decision_confirmed_after_midnight_in_vietnam_is_dated_that_day(session, registry, world):
    """Confirmed at 01:30 in Hà Nội (18:30 UTC the day before): the publication's decision date,
    left to the confirmation's, had been the UTC day, one day early."""
    from datetime import datetime, timezone

    night = datetime(2026, 12, 7, 18, 30, tzinfo=timezone.utc)
    cases = CaseService(session, clock=lambda: night)
    make_report(session, 16, producer_id=world.producer_id, seller="Cửa hàng Gà Vàng")
    cases.transition(INSPECTOR, "VN-2026-000016", to="investigating")
    cases.transition(INSPECTOR, "VN-2026-000016", to="confirmed", text="decision 15/QĐ")
    publications = PublicationService(session, authority=registry.authority, clock=lambda: night)
    item = cases.publish(AUTHORITY, "VN-2026-000016", lambda **f: publications.publish(AUTHORITY, **f),
                         decision_ref="15/QĐ-QLTT")
    assert item.decided_on.isoformat() == "2026-12-08"


def test_publish_confirmed_hook_takes_any_callable(session, world):
    report = make_report(session, 14, producer_id=world.producer_id, status="confirmed", seller="")
    calls = []
    with pytest.raises(Invalid):  # no seller named in the report, none given
        publish_confirmed(report, lambda **f: calls.append(f))
    publish_confirmed(report, lambda **f: calls.append(f) or "ok", name="Hộ kinh doanh B")
    assert calls[0]["kind"] == "violator" and calls[0]["name"] == "Hộ kinh doanh B"
    assert calls[0]["title"] == "Hàng giả đã xác nhận / Confirmed counterfeit (VN-2026-000014)"  # Vietnamese first
