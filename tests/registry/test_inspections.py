"""Inspections: checks (online, offline-synced, with photos), closing, and the signed evidence file."""

from __future__ import annotations

import copy
import hashlib
import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import select

from keys.encoding import b64url_decode, rfc3339, utcnow
from keys.errors import BadSignature
from keys.signing import public_key_from_raw, verify
from registry.cases import AttachmentRejected
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.inspections import EVIDENCE_TYPE, InspectionService
from registry.models import AuditEvent, Report, Serial
from registry.services import Actor, Role
from tests.conftest import GTIN, batch_data

INSPECTOR = Actor(role=Role.INSPECTOR, name="user:minh")
OTHER_INSPECTOR = Actor(role=Role.INSPECTOR, name="user:hoa")
AUTHORITY = Actor(role=Role.AUTHORITY, name="user:boss")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def service(session, registry):
    return InspectionService(session, authority=registry.authority)


def _authority_key(registry):
    trust = registry.trust_list()
    return public_key_from_raw(b64url_decode(trust["authority"]["public_key"]))


def test_open_check_close_and_evidence_verifies_with_the_trust_list(service, registry, world):
    registry.register_batch(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p"), batch_data())
    inspection = service.open(INSPECTOR, place="Chợ Bến Thành", lat=10.772, lon=106.698)
    photo = _png()
    first = service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine", "reasons": []}, photo=photo)
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "counterfeit", "reasons": [
        {"code": "SIGNATURE_INVALID"}]})
    assert first.photo_sha256 == hashlib.sha256(photo).hexdigest() and first.media_type == "image/png"
    service.close(INSPECTOR, inspection.id)
    evidence = service.evidence(INSPECTOR, inspection.id)
    assert evidence["t"] == EVIDENCE_TYPE
    assert evidence["inspection"]["place"] == "Chợ Bến Thành" and evidence["inspection"]["closed_at"]
    assert [c["verdict"] for c in evidence["checks"]] == ["genuine", "counterfeit"]
    assert evidence["checks"][0]["photo_sha256"] == first.photo_sha256
    assert all(set(c) >= {"at", "verdict", "result", "photo_sha256", "offline"} for c in evidence["checks"])
    checkpoint = evidence["checkpoint"]
    assert checkpoint["t"] == "checkpoint" and checkpoint["size"] == registry.log().size()
    key = _authority_key(registry)
    verify(evidence, key)  # the evidence and the checkpoint it relied on, both under the authority key
    verify(checkpoint, key)


@pytest.mark.parametrize("tamper", [
    lambda e: e["checks"][1].__setitem__("verdict", "genuine"),
    lambda e: e["inspection"].__setitem__("place", "elsewhere"),
    lambda e: e["checks"].pop(),
    lambda e: e.__setitem__("issued_at", "2020-01-01T00:00:00Z"),
])
def test_tampering_with_the_evidence_breaks_the_signature(service, registry, tamper):
    inspection = service.open(INSPECTOR, place="Kho A")
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"})
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "counterfeit"})
    evidence = service.evidence(INSPECTOR, inspection.id)
    forged = copy.deepcopy(evidence)
    tamper(forged)
    with pytest.raises(BadSignature):
        verify(forged, _authority_key(registry))


def test_offline_checks_are_verified_again_and_both_answers_kept(service, session):
    inspection = service.open(INSPECTOR, place="Chợ Đồng Xuân")
    inspection.started_at = utcnow() - timedelta(hours=3)  # a morning at the market, synced at noon
    session.flush()
    seen = []

    def recheck(code, at):
        seen.append((code, at))
        return {"verdict": "suspect", "reasons": [{"code": "KEY_REVOKED"}]}

    at = utcnow() - timedelta(hours=2)
    check = service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine", "offline": True},
                              offline=True, code="https://verify.example.vn/01/x", at=at, recheck=recheck)
    assert seen == [("https://verify.example.vn/01/x", at)]
    assert check.offline and check.verdict == "suspect" and check.at == at
    assert check.result == {"offline": {"verdict": "genuine", "offline": True},
                            "server": {"verdict": "suspect", "reasons": [{"code": "KEY_REVOKED"}]}}
    view = service.check_view(check)
    assert view["offline_verdict"] == "genuine" and view["verdict"] == "suspect"


def test_offline_checks_need_code_and_a_plausible_time(service):
    inspection = service.open(INSPECTOR)
    ok = lambda code, at: {"verdict": "genuine"}  # noqa: E731
    with pytest.raises(Invalid):
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x",
                          recheck=ok)
    with pytest.raises(Invalid):
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x",
                          at=utcnow() + timedelta(hours=1), recheck=ok)
    with pytest.raises(Invalid):
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code=" ",
                          at=utcnow(), recheck=ok)
    # made before the inspection began (the signed evidence would put it in this visit): refused;
    # a phone's clock a minute behind the server's is not
    with pytest.raises(Invalid) as err:
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x",
                          at=inspection.started_at - timedelta(days=2), recheck=ok)
    assert (err.value.code, err.value.field) == ("BAD_DATE", "checked_at") and "before its inspection began" in err.value.message
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x",
                      at=inspection.started_at - timedelta(minutes=1), recheck=ok)
    # made before the inspection was closed: still accepted after closing; made after: refused
    made = utcnow() - timedelta(minutes=1)
    service.close(INSPECTOR, inspection.id)
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x", at=made,
                      recheck=ok)
    with pytest.raises(Conflict):
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"})


def test_an_offline_checks_own_answer_is_held_to_what_a_verification_answer_can_be(service, session):
    """The phone's answer goes into the evidence file the authority signs: it had been taken up to
    the request's 10 MiB, whatever it held."""
    inspection = service.open(INSPECTOR)
    ok = lambda code, at: {"verdict": "genuine"}  # noqa: E731
    big = {"verdict": "genuine", "product": {"name": "ắ" * 6000}}  # 18 KB: a long record, as it can be
    kept = service.add_check(INSPECTOR, inspection.id, result=big, offline=True, code="x", at=utcnow(), recheck=ok)
    with pytest.raises(Invalid) as err:
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine", "junk": "x" * 40_000},
                          offline=True, code="x", at=utcnow(), recheck=ok)
    assert (err.value.code, err.value.field) == ("BAD_RESULT", "result") and "32 KiB" in err.value.message
    assert [c.id for c in service.checks(inspection)] == [kept.id]


def test_an_offline_check_sent_twice_is_kept_once(service, session):
    """Two tabs, or a retry after a lost answer, send the same waiting check: its browser id makes
    it one check (and one entry in the evidence file)."""
    inspection, other = service.open(INSPECTOR), service.open(INSPECTOR)
    ok = lambda code, at: {"verdict": "genuine"}  # noqa: E731
    made = utcnow() - timedelta(minutes=3)
    sent = dict(result={"verdict": "genuine"}, offline=True, code="x", at=made, recheck=ok)
    first = service.add_check(INSPECTOR, inspection.id, client_id="a1b2c3d4e5f60718", **sent)
    again = service.add_check(INSPECTOR, inspection.id, client_id="a1b2c3d4e5f60718", **sent)
    assert again.id == first.id
    assert service.add_check(INSPECTOR, inspection.id, client_id="ffff000011112222", **sent).id != first.id
    assert service.add_check(INSPECTOR, other.id, client_id="a1b2c3d4e5f60718", **sent).id != first.id
    assert len(service.checks(inspection)) == 2 and len(service.checks(other)) == 1
    written = session.query(AuditEvent).filter_by(action="inspection.check").count()
    assert written == 3  # the second sending recorded nothing
    for bad in ("", "x" * 33, "a b", "../1"):
        with pytest.raises(Invalid) as refused:
            service.add_check(INSPECTOR, inspection.id, client_id=bad, **sent)
        assert refused.value.code == "BAD_CLIENT_ID"


@pytest.mark.parametrize("result", [None, {"verdict": "fine"}, {"no": "verdict"}, "genuine"])
def test_results_must_be_verification_json(service, result):
    inspection = service.open(INSPECTOR)
    with pytest.raises(Invalid):
        service.add_check(INSPECTOR, inspection.id, result=result)


def test_photos_are_judged_by_their_bytes_and_size(session, registry):
    service = InspectionService(session, authority=registry.authority, max_photo_bytes=1000)
    inspection = service.open(INSPECTOR)
    with pytest.raises(AttachmentRejected) as info:
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, photo=b"%PDF-1.4 not an image")
    assert info.value.status == 415
    with pytest.raises(AttachmentRejected) as info:
        service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, photo=b"\x89PNG\r\n\x1a\n" * 200)
    assert info.value.status == 413


def test_inspectors_see_and_write_only_their_own(service, world):
    mine = service.open(INSPECTOR, place="A")
    theirs = service.open(OTHER_INSPECTOR, place="B")
    assert [i.id for i in service.list(INSPECTOR)] == [mine.id]
    assert {i.id for i in service.list(AUTHORITY)} == {mine.id, theirs.id}
    with pytest.raises(Forbidden):
        service.get(INSPECTOR, theirs.id)
    with pytest.raises(Forbidden):
        service.add_check(INSPECTOR, theirs.id, result={"verdict": "genuine"})
    with pytest.raises(Forbidden):
        service.evidence(INSPECTOR, theirs.id)
    with pytest.raises(Forbidden):
        service.close(INSPECTOR, theirs.id)
    for actor in (Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p"),
                  Actor(role=Role.PARTNER, name="partner")):
        with pytest.raises(Forbidden):
            service.open(actor)
        with pytest.raises(Forbidden):
            service.list(actor)
    with pytest.raises(NotFound):
        service.get(INSPECTOR, 999_999)


def test_the_authority_reads_an_inspectors_inspection_but_writes_only_its_own(service, registry, session):
    """The evidence file credits every check to the inspection's inspector: no one else, the
    authority included, adds a check to it or closes it. The authority still reads it and its
    evidence (oversight), and its own inspections are its to fill and close."""
    theirs = service.open(OTHER_INSPECTOR, place="Chợ Lớn")
    kept = service.add_check(OTHER_INSPECTOR, theirs.id, result={"verdict": "genuine"}, client_id="q1")
    at = utcnow() - timedelta(minutes=1)
    refused = [
        lambda: service.add_check(AUTHORITY, theirs.id, result={"verdict": "counterfeit"}),
        lambda: service.add_check(AUTHORITY, theirs.id, result={"verdict": "genuine"}, photo=_png()),
        lambda: service.add_check(AUTHORITY, theirs.id, result={"verdict": "genuine"}, offline=True, code="x", at=at,
                                  recheck=lambda code, when: {"verdict": "genuine"}),
        lambda: service.add_check(AUTHORITY, theirs.id, result={"verdict": "genuine"}, client_id="q1"),  # a retry
        lambda: service.add_check(INSPECTOR, theirs.id, result={"verdict": "genuine"}),
        lambda: service.close(AUTHORITY, theirs.id),
    ]
    for write in refused:
        with pytest.raises(Forbidden) as refusal:
            write()
        assert refusal.value.code == "NOT_YOUR_INSPECTION"
    assert service.get(AUTHORITY, theirs.id).closed_at is None
    assert [c.id for c in service.checks(service.get(AUTHORITY, theirs.id))] == [kept.id]
    evidence = service.evidence(AUTHORITY, theirs.id)
    verify(evidence, _authority_key(registry))
    assert evidence["inspection"]["inspector"] == "user:hoa" and [c["id"] for c in evidence["checks"]] == [kept.id]
    written = {a for (a,) in session.query(AuditEvent.action).filter(AuditEvent.actor == "user:boss")}
    assert written == {"inspection.evidence"}

    # The inspector still fills and closes their own; the authority its own.
    service.add_check(OTHER_INSPECTOR, theirs.id, result={"verdict": "suspect"})
    service.close(OTHER_INSPECTOR, theirs.id)
    own = service.open(AUTHORITY, place="Kho C")
    service.add_check(AUTHORITY, own.id, result={"verdict": "genuine"})
    service.close(AUTHORITY, own.id)
    with pytest.raises(Forbidden):
        service.get(OTHER_INSPECTOR, own.id)
    # The authority's "My inspections" are its own; without ``own`` it lists everyone's, each named.
    assert [i.id for i in service.list(AUTHORITY, own=True)] == [own.id]
    assert {(i.id, i.inspector) for i in service.list(AUTHORITY)} == {(own.id, "user:boss"), (theirs.id, "user:hoa")}
    assert [i.id for i in service.list(OTHER_INSPECTOR, own=True)] == [i.id for i in service.list(OTHER_INSPECTOR)]


def test_every_write_is_audited(service, session):
    inspection = service.open(INSPECTOR, place="A")
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"})
    service.close(INSPECTOR, inspection.id)
    service.evidence(INSPECTOR, inspection.id)
    actions = [a for (a,) in session.query(AuditEvent.action).filter(AuditEvent.actor == "user:minh")]
    assert actions == ["inspection.open", "inspection.check", "inspection.close", "inspection.evidence"]
    with pytest.raises(Conflict):
        service.close(INSPECTOR, inspection.id)


def test_flagged_serials_show_their_scan_history(service, registry, session, world):
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data())
    (serial, _), (other, _) = registry.issue_serials(producer, GTIN, "LOT-1", 2)
    from registry.lookup import RegistryLookup
    from registry.scans import ScanHistory, ScanWriter
    from verification.verdicts import CloneThresholds, ScanContext, Verifier

    writer = ScanWriter()
    verifier = Verifier(lookup=RegistryLookup(session), scans=ScanHistory(session, writer),
                        thresholds=CloneThresholds(max_distinct_clients=2, max_networks=2))
    url = next(registry.labels(producer, GTIN, "LOT-1", serial=serial)).url
    for n in range(4):
        verifier.verify_text(url, context=ScanContext(channel="api", client=f"client-{n}", lat=21.0, lon=105.8,
                                                      network=f"network-{n}"))
    writer.flush(session)
    flagged = service.flagged_serials(INSPECTOR)
    assert [f["serial"] for f in flagged] == [serial]
    item = flagged[0]
    assert item["flagged"] == "SERIAL_CLONED" and item["gtin"] == GTIN and item["producer"]["id"] == world.producer_id
    assert item["scans"]["count"] == 4 and len(item["history"]) == 4
    assert "client_hash" not in str(item)
    assert item["reports"] == []
    # Shoppers' reports about this unit come with it, newest first; one about its neighbour does not.
    now = utcnow()
    for number, (unit, status) in enumerate(((serial, "new"), (other, "new"), (serial, "investigating")), start=1):
        session.add(Report(case_number=f"VN-2026-{number:06d}", gtin=GTIN, lot="LOT-1", serial=unit,
                           where_kind="shop", where_text="Chợ Lớn", status=status, created_at=now))
    session.flush()
    linked = service.flagged_serials(INSPECTOR)[0]["reports"]
    assert [(r["case_number"], r["status"]) for r in linked] == [("VN-2026-000003", "investigating"),
                                                                 ("VN-2026-000001", "new")]
    assert session.get(Serial, session.query(Serial.id).filter(Serial.serial == other).scalar()).flagged is None
    with pytest.raises(Forbidden):
        service.flagged_serials(producer)


def test_a_page_of_flagged_serials_gives_each_its_own_history_reports_and_clearance(
        service, registry, session, world):
    """Several flagged serials at once: each gets its own latest scans (up to ``history``), its own
    reports (newest first, at most MAX_LINKED_REPORTS) and its own last clearance; the page's
    statements do not grow with its number of serials."""
    from sqlalchemy import event

    from registry.inspections import MAX_LINKED_REPORTS
    from registry.lookup import RegistryLookup
    from registry.scans import ScanHistory, ScanWriter
    from verification.verdicts import CloneThresholds, ScanContext, Verifier

    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data())
    serials = [serial for serial, _ in registry.issue_serials(producer, GTIN, "LOT-1", 3)]
    urls = {label.serial: label.url for label in registry.labels(producer, GTIN, "LOT-1")}
    writer, later = ScanWriter(), [timedelta(0)]
    verifier = Verifier(lookup=RegistryLookup(session),
                        scans=ScanHistory(session, writer, clock=lambda: utcnow() + later[0]),
                        thresholds=CloneThresholds(max_distinct_clients=2, max_networks=2))

    def scan(serial: str, times: int, channel: str) -> None:
        later[0] += timedelta(seconds=2)  # times are to the second: each round after the last clearance
        for n in range(times):
            verifier.verify_text(urls[serial], context=ScanContext(
                channel=channel, client=f"{serial}-{channel}-{n}", network=f"{serial}-{channel}-{n}"))
        writer.flush(session)

    def statements() -> int:
        seen: list[str] = []
        listen = lambda *args: seen.append(args[2])  # noqa: E731 (conn, cursor, statement, ...)
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", listen)
        try:
            page = service.flagged_serials(INSPECTOR, history=3)
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return page, len(seen)

    first, second, third = serials
    scan(first, 4, "api")
    one, statements_for_one = statements()
    assert [f["serial"] for f in one] == [first]

    # The second is flagged, cleared twice (the second note is the one shown), and flagged again.
    scan(second, 4, "api")
    service.clear_flag(INSPECTOR, GTIN, "LOT-1", second, note="the shop's display unit")
    scan(second, 3, "page")
    service.clear_flag(OTHER_INSPECTOR, GTIN, "LOT-1", second, note="a shopper behind a VPN")
    scan(second, 5, "image")
    scan(third, 6, "page")
    now = utcnow()
    for number in range(MAX_LINKED_REPORTS + 2):
        session.add(Report(case_number=f"VN-2026-{number + 1:06d}", gtin=GTIN, lot="LOT-1", serial=third,
                           where_kind="shop", where_text="Chợ Lớn", status="new", created_at=now))
    session.add(Report(case_number="VN-2026-000099", gtin=GTIN, lot="LOT-1", serial=first,
                       where_kind="online", where_text="shop.example", status="investigating", created_at=now))
    session.flush()

    page, statements_for_three = statements()
    assert statements_for_three == statements_for_one + 1  # + the clearances, read once a serial was cleared
    by_serial = {f["serial"]: f for f in page}
    assert set(by_serial) == {first, second, third}
    assert [h["channel"] for h in by_serial[first]["history"]] == ["api", "api", "api"]
    assert [h["channel"] for h in by_serial[second]["history"]] == ["image", "image", "image"]
    assert [h["channel"] for h in by_serial[third]["history"]] == ["page", "page", "page"]
    assert [r["case_number"] for r in by_serial[first]["reports"]] == ["VN-2026-000099"]
    assert by_serial[second]["reports"] == []
    assert [r["case_number"] for r in by_serial[third]["reports"]] == [
        f"VN-2026-{n:06d}" for n in range(MAX_LINKED_REPORTS + 2, 2, -1)]
    assert by_serial[first]["cleared_before"] is None and by_serial[third]["flag_cleared_at"] is None
    cleared = by_serial[second]["cleared_before"]
    assert (cleared["by"], cleared["note"]) == ("user:hoa", "a shopper behind a VPN")
    assert by_serial[second]["flag_cleared_at"] == cleared["at"]


def _clone_setup(registry, session, world, later=(timedelta(0),)):
    """A serial flagged by 4 clients from 4 networks (limits 2 and 2), written; a verifier for more,
    whose verifications are made ``later[0]`` after now (times are to the second)."""
    from registry.lookup import RegistryLookup
    from registry.scans import ScanHistory, ScanWriter
    from verification.verdicts import CloneThresholds, ScanContext, Verifier

    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data())
    (serial, _), = registry.issue_serials(producer, GTIN, "LOT-1", 1)
    url = next(registry.labels(producer, GTIN, "LOT-1", serial=serial)).url
    writer = ScanWriter()

    def verify(client: str, network: str):
        history = ScanHistory(session, writer, clock=lambda: utcnow() + later[0])
        verifier = Verifier(lookup=RegistryLookup(session), scans=history,
                            thresholds=CloneThresholds(max_distinct_clients=2, max_networks=2))
        return verifier.verify_text(url, context=ScanContext(channel="api", client=client, network=network))

    for n in range(4):
        verify(f"client-{n}", f"network-{n}")
    writer.flush(session)
    return serial, verify, writer


def _unit(session, serial):
    session.expire_all()
    return session.query(Serial).filter(Serial.serial == serial).one()


def test_an_inspector_clears_a_flag_and_counting_starts_again(service, registry, session, world):
    later = [timedelta(0)]
    serial, verify, writer = _clone_setup(registry, session, world, later)
    assert verify("client-0", "network-0").verdict.value == "suspect"
    writer.flush(session)
    assert service.unit_state(INSPECTOR, GTIN, "LOT-1", serial) == {
        "flagged": "SERIAL_CLONED", "flag_cleared_at": None, "cleared_before": None,
        "scans": {"count": 5, "distinct_clients": 4}}
    cleared = service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="  display unit at the shop counter ")
    state = service.unit_state(INSPECTOR, GTIN, "LOT-1", serial)  # what a case about the unit shows
    assert state["flagged"] is None and state["flag_cleared_at"] == cleared["flag_cleared_at"]
    assert state["cleared_before"] == {"at": cleared["flag_cleared_at"], "by": "user:minh",
                                       "note": "display unit at the shop counter"}
    assert service.unit_state(INSPECTOR, GTIN, "LOT-1", "NO-SUCH-UNIT") is None
    with pytest.raises(Forbidden):
        service.unit_state(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p"), GTIN, "LOT-1", serial)
    assert cleared["cleared"] == "SERIAL_CLONED" and cleared["scans"] == {"count": 5, "distinct_clients": 4}
    unit = _unit(session, serial)
    assert unit.flagged is None and unit.clone_baseline == 4 and unit.flag_cleared_at is not None
    audit = session.query(AuditEvent).filter(AuditEvent.action == "serial.flag_clear").one()
    assert audit.actor == "user:minh" and audit.detail["note"] == "display unit at the shop counter"
    assert audit.detail["reason"] == "SERIAL_CLONED" and audit.detail["distinct_clients"] == 4
    assert service.flagged_serials(INSPECTOR) == []
    # The same crowd and three new clients, all on one network: the networks from before the
    # clearance (4 of them) no longer count, so nothing is flagged again.
    for client in ("client-1", "new-a", "new-b", "new-c"):
        result = verify(client, "network-shop")
        assert result.verdict.value == "genuine", result.reasons
    writer.flush(session)
    assert _unit(session, serial).flagged is None
    assert verify("new-a", "network-shop").scans.count == 10
    # A new crowd on many networks flags it again, and the list says it was cleared before (a flag
    # in the clearance's second counts as one from before it: the next verification flags again).
    later[0] = timedelta(seconds=2)
    for n in range(3):
        verify(f"crowd-{n}", f"network-crowd-{n}")
    writer.flush(session)
    unit = _unit(session, serial)
    assert unit.flagged == "SERIAL_CLONED"
    again, = service.flagged_serials(INSPECTOR)
    assert again["flag_cleared_at"] == cleared["flag_cleared_at"]
    assert again["cleared_before"] == {"at": cleared["flag_cleared_at"], "by": "user:minh",
                                       "note": "display unit at the shop counter"}


def test_a_clearance_is_noted_in_the_open_cases_about_the_unit(service, registry, session, world):
    """The inspector working a shopper's report about the unit reads in the case what the one who
    cleared the flag checked; closed cases, and cases about another unit, are left as they were."""
    from registry.cases import CaseService
    from registry.models import CaseNote

    serial, _verify, _writer = _clone_setup(registry, session, world)
    now = utcnow()
    cases = {"VN-2026-000001": (serial, "new"), "VN-2026-000002": (serial, "investigating"),
             "VN-2026-000003": (serial, "dismissed"), "VN-2026-000004": (serial, "confirmed"),
             "VN-2026-000005": ("OTHERSERIAL1", "new")}
    for case_number, (unit, status) in cases.items():
        session.add(Report(case_number=case_number, gtin=GTIN, lot="LOT-1", serial=unit, where_kind="shop",
                           where_text="Chợ Lớn", status=status, created_at=now))
    session.flush()
    cleared = service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="quầy trưng bày <b>của cửa hàng</b>")
    assert cleared["cases"] == ["VN-2026-000001", "VN-2026-000002"]
    notes = CaseService(session)
    for case_number in cases:
        written = [(n.author, n.text, n.event, n.event_detail, n.status_to) for n in notes.notes(INSPECTOR, case_number)]
        expected = [("user:minh", "quầy trưng bày <b>của cửa hàng</b>", "flag_cleared", serial, None)]
        assert written == (expected if case_number in cleared["cases"] else []), case_number
    note = session.query(CaseNote).filter(CaseNote.event == "flag_cleared").first()
    assert rfc3339(note.at) == cleared["flag_cleared_at"]  # the same moment as the clearance
    audit = session.query(AuditEvent).filter(AuditEvent.action == "serial.flag_clear").one()
    assert audit.detail["cases"] == ["VN-2026-000001", "VN-2026-000002"]
    assert [r.status for r in session.query(Report).order_by(Report.id)] == [
        "new", "investigating", "dismissed", "confirmed", "new"]  # a note moves no case


def test_a_flag_from_before_the_clearance_written_after_it_does_not_come_back(service, registry, session, world):
    from registry.scans import unit_key

    serial, verify, writer = _clone_setup(registry, session, world)
    unit = _unit(session, serial)
    other_server = type(writer)()  # flagged it too, a moment before the clearance, not yet written
    other_server.flag(unit_key(GTIN, "LOT-1", serial), unit.id, "SERIAL_CLONED", utcnow())
    service.clear_flag(AUTHORITY, GTIN, "LOT-1", serial, note="checked at the warehouse")
    other_server.flush(session)
    assert _unit(session, serial).flagged is None
    assert verify("client-0", "network-0").verdict.value == "genuine"
    later = type(writer)()  # a verification after the clearance that flags: that one counts
    later.flag(unit_key(GTIN, "LOT-1", serial), unit.id, "SERIAL_CLONED", utcnow() + timedelta(seconds=1))
    later.flush(session)
    assert _unit(session, serial).flagged == "SERIAL_CLONED"


def test_clearing_a_flag_is_for_inspectors_with_a_note(service, registry, session, world):
    serial, _, _ = _clone_setup(registry, session, world)
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    with pytest.raises(Forbidden):
        service.clear_flag(producer, GTIN, "LOT-1", serial, note="it is ours, trust us")
    with pytest.raises(Invalid) as missing:
        service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="   ")
    assert missing.value.code == "FIELD_REQUIRED"
    with pytest.raises(Invalid) as long:
        service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="x" * 2001)
    assert long.value.code == "TOO_LONG"
    with pytest.raises(NotFound):
        service.clear_flag(INSPECTOR, GTIN, "LOT-1", "NOSUCHSERIAL", note="checked")
    assert _unit(session, serial).flagged == "SERIAL_CLONED"  # nothing was cleared by the refusals
    service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="checked")
    with pytest.raises(Conflict) as again:
        service.clear_flag(INSPECTOR, GTIN, "LOT-1", serial, note="checked")
    assert again.value.code == "NOT_FLAGGED"


# -- over the API ---------------------------------------------------------------------------------
def test_api_inspection_flow_with_photo_code_and_offline_sync(client, world, session):
    session.commit()
    auth = world.auth("inspector")
    created = client.post("/api/v1/batches", json=batch_data(), headers=world.auth("producer")).get_json()
    r = client.post("/api/v1/inspections", json={"place": "Chợ Bến Thành", "lat": 10.77, "lon": 106.7}, headers=auth)
    assert r.status_code == 201, r.get_json()
    inspection = r.get_json()["id"]
    r = client.post(f"/api/v1/inspections/{inspection}/checks", json={"code": created["url"]}, headers=auth)
    assert r.status_code == 201 and r.get_json()["verdict"] == "genuine", r.get_json()
    forged = created["url"].replace("LOT-1", "LOT-9")
    r = client.post(f"/api/v1/inspections/{inspection}/checks", json={"code": forged}, headers=auth)
    assert r.status_code == 201 and r.get_json()["verdict"] in ("counterfeit", "unknown")
    r = client.post(f"/api/v1/inspections/{inspection}/checks", data={"image": (io.BytesIO(_png()), "p.png")},
                    headers=auth, content_type="multipart/form-data")
    assert r.status_code == 201 and r.get_json()["verdict"] == "unreadable" and r.get_json()["photo_sha256"]
    r = client.post(f"/api/v1/inspections/{inspection}/checks", data={"image": (io.BytesIO(b"not an image"), "x")},
                    headers=auth, content_type="multipart/form-data")
    assert r.status_code == 415
    at = (utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post(f"/api/v1/inspections/{inspection}/checks", headers=auth, json={
        "code": created["url"], "offline": True, "checked_at": at, "result": {"verdict": "counterfeit"}})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["offline"] and body["verdict"] == "genuine" and body["offline_verdict"] == "counterfeit"
    r = client.post(f"/api/v1/inspections/{inspection}/checks", headers=auth, json={"code": "x", "offline": True})
    assert r.status_code == 422
    evidence = client.get(f"/api/v1/inspections/{inspection}/evidence", headers=auth).get_json()
    trust = client.get("/api/v1/trust-list").get_json()
    verify(evidence, public_key_from_raw(b64url_decode(trust["authority"]["public_key"])))
    assert [c["verdict"] for c in evidence["checks"]][0] == "genuine" and len(evidence["checks"]) == 4
    photo_check = evidence["checks"][2]
    photo = client.get(f"/api/v1/inspections/{inspection}/checks/{photo_check['id']}/photo", headers=auth)
    assert photo.status_code == 200 and hashlib.sha256(photo.data).hexdigest() == photo_check["photo_sha256"]
    assert client.post(f"/api/v1/inspections/{inspection}/close", headers=auth).status_code == 200
    r = client.post(f"/api/v1/inspections/{inspection}/checks", json={"code": created["url"]}, headers=auth)
    assert r.status_code == 409


def test_api_only_whoever_opened_an_inspection_writes_it_the_authority_reads_it(client, world, session):
    """The authority's token reads an inspector's inspection and its signed evidence, but adding a
    check to it (by code, photo or offline sync) or closing it is 403 ``NOT_YOUR_INSPECTION``, refused
    before the code is verified (no scan is counted); the inspector still fills and closes it."""
    from sqlalchemy import func, select

    from registry.models import ScanEvent

    session.commit()
    inspector, authority = world.auth("inspector"), world.auth("authority")
    created = client.post("/api/v1/batches", json=batch_data(), headers=world.auth("producer")).get_json()
    inspection = client.post("/api/v1/inspections", json={"place": "Chợ Lớn"}, headers=inspector).get_json()
    url = f"/api/v1/inspections/{inspection['id']}"
    assert client.post(f"{url}/checks", json={"code": created["url"]}, headers=inspector).status_code == 201
    writer = client.application.extensions["scan_writer"]

    def scans() -> int:
        writer.flush()
        count = session.scalar(select(func.count()).select_from(ScanEvent).where(ScanEvent.channel == "inspection"))
        session.commit()  # release SQLite for the app's next write
        return count

    counted = scans()
    assert counted >= 1  # the inspector's check was counted: a refused one would be too
    at = (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for kwargs in ({"json": {"code": created["url"]}},
                   {"json": {"code": created["url"], "offline": True, "checked_at": at,
                             "result": {"verdict": "genuine"}, "queue_id": "q1"}},
                   {"data": {"image": (io.BytesIO(_png()), "p.png")}, "content_type": "multipart/form-data"}):
        r = client.post(f"{url}/checks", headers=authority, **kwargs)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "NOT_YOUR_INSPECTION", r.get_json()
    r = client.post(f"{url}/close", headers=authority)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "NOT_YOUR_INSPECTION", r.get_json()
    assert scans() == counted

    read = client.get(url, headers=authority).get_json()
    assert read["inspector"] == inspection["inspector"] and read["closed_at"] is None and len(read["checks"]) == 1
    evidence = client.get(f"{url}/evidence", headers=authority)
    assert evidence.status_code == 200
    trust = client.get("/api/v1/trust-list").get_json()
    verify(evidence.get_json(), public_key_from_raw(b64url_decode(trust["authority"]["public_key"])))
    assert evidence.get_json()["inspection"]["inspector"] == inspection["inspector"]
    assert len(evidence.get_json()["checks"]) == 1
    listed = client.get("/api/v1/inspections", headers=authority).get_json()["items"]
    assert [(i["id"], i["inspector"]) for i in listed] == [(inspection["id"], inspection["inspector"])]

    assert client.post(f"{url}/checks", json={"code": created["url"]}, headers=inspector).status_code == 201
    assert client.post(f"{url}/close", headers=inspector).status_code == 200


def test_an_inspection_started_offline_is_kept_once_with_the_time_it_began(service, session):
    """With no signal the phone starts the inspection itself; sent when the signal is back (again
    after a lost answer, or from a second tab), it is one inspection, begun when the phone says,
    and its offline checks from that time on are taken."""
    began = utcnow() - timedelta(hours=2)
    first = service.open(INSPECTOR, place="Chợ Lớn, tầng hầm", started_at=began, client_id="a1b2c3d4")
    again = service.open(INSPECTOR, place="Chợ Lớn, tầng hầm", started_at=began, client_id="a1b2c3d4")
    assert again.id == first.id and first.started_at == began
    other = service.open(OTHER_INSPECTOR, started_at=began, client_id="a1b2c3d4")  # another inspector's own
    assert other.id != first.id
    ok = lambda code, at: {"verdict": "genuine"}  # noqa: E731
    service.add_check(INSPECTOR, first.id, result={"verdict": "genuine"}, offline=True, code="x",
                      at=began + timedelta(minutes=5), recheck=ok)
    for when in (utcnow() - timedelta(days=31), utcnow() + timedelta(hours=1)):
        with pytest.raises(Invalid) as refused:
            service.open(INSPECTOR, started_at=when, client_id="later")
        assert (refused.value.code, refused.value.field) == ("BAD_DATE", "started_at")
    with pytest.raises(Invalid) as bad_id:
        service.open(INSPECTOR, client_id="no spaces allowed")
    assert bad_id.value.code == "BAD_CLIENT_ID"
    opened = session.execute(select(AuditEvent).where(AuditEvent.action == "inspection.open")).scalars().all()
    assert len(opened) == 2 and opened[0].detail.get("offline") is True
