"""Partner exports: CSV columns and contents, and EPCIS 2.0 documents valid against the standard's schema."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from keys.encoding import b64url_encode, rfc3339, utcnow
from registry.errors import Forbidden, Invalid
from registry.exports import CSV_EXPORTS, EPCIS_SCHEMA_PATH, ExportService, class_uri, serial_uri
from registry.lookup import RegistryLookup
from registry.scans import ScanHistory, ScanWriter
from registry.models import Report
from registry.publications import PublicationService
from registry.services import Actor, Registry, Role
from tests.conftest import GTIN, SHARED, FixedClock, batch_data
from verification.verdicts import ScanContext, Verifier

PARTNER = Actor(role=Role.PARTNER, name="token:partner")
AUTHORITY = Actor(role=Role.AUTHORITY, name="user:boss")


@pytest.fixture
def schema():
    return Draft7Validator(json.loads(EPCIS_SCHEMA_PATH.read_text(encoding="utf-8")))


@pytest.fixture
def scene(registry, session, world):
    """A batch with serials, three scans (one placed, one batch-level), a recall, a confirmed case and a violator."""
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data())
    registry.register_batch(producer, batch_data(lot="LOT/2"))
    (serial, _), = registry.issue_serials(producer, GTIN, "LOT-1", 1)
    writer = ScanWriter()
    verifier = Verifier(lookup=RegistryLookup(session), scans=ScanHistory(session, writer))
    unit_url = next(registry.labels(producer, GTIN, "LOT-1", serial=serial)).url
    batch_url = next(registry.labels(producer, GTIN, "LOT/2")).url
    verifier.verify_text(unit_url, context=ScanContext(channel="api", client="c1", lat=21.03, lon=105.85))
    verifier.verify_text(unit_url, context=ScanContext(channel="image", client="c2"))
    verifier.verify_text(batch_url, context=ScanContext(channel="page", client="c3"))
    writer.flush(session)
    registry.recall(producer, GTIN, "LOT/2", reason="=HYPERLINK(\"http://evil\") mould found")
    session.add(Report(case_number="VN-2026-000001", code=unit_url, gtin=GTIN, lot="LOT-1", serial=serial,
                       producer_id=world.producer_id, verdict="suspect", where_kind="market", where_text="Chợ Lớn",
                       seller="@Shop Fake", contact="secret phone", status="confirmed", created_at=utcnow()))
    session.add(Report(case_number="VN-2026-000002", code="", status="new", created_at=utcnow()))
    PublicationService(session, authority=registry.authority).publish(
        AUTHORITY, kind="violator", title="Hàng giả", name="Cơ sở A", tax_code="0311111111", product="Cà phê",
        place="Hà Nội", decision_ref="12/QĐ", decided_on="2026-11-01")
    session.flush()
    return {"serial": serial, "producer_id": world.producer_id}


def _csv(service, actor, name):
    return list(csv.reader(io.StringIO("".join(service.csv(actor, name)))))


def test_identifiers_a_spreadsheet_would_run_are_defused_too(registry, session, world):
    """A lot may begin with '=' (GS1's character set 82 allows it) and a shopper's report brings
    codes nobody checked: an identifier column is no safer than a text one."""
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data(lot='=HYPERLINK("//e.vn")'))
    session.add(Report(case_number="VN-2026-000009", code="x", gtin=GTIN, lot="=1+2", serial="  +1-1",
                       producer_id=world.producer_id, verdict="counterfeit", status="confirmed", created_at=utcnow()))
    session.flush()
    service = ExportService(session)
    batches = _csv(service, PARTNER, "batches")
    assert [r[1] for r in batches[1:]] == ["'=HYPERLINK(\"//e.vn\")"]
    case = dict(zip(*_csv(service, PARTNER, "cases")))
    assert (case["lot"], case["serial"]) == ("'=1+2", "'  +1-1")  # spaces first: some spreadsheets still run it


def test_vendored_schema_is_the_standards_file():
    shared = SHARED / "epcis" / "EPCIS-JSON-Schema.json"
    if shared.exists():
        assert EPCIS_SCHEMA_PATH.read_bytes() == shared.read_bytes()
    assert (EPCIS_SCHEMA_PATH.parent / "SOURCE.md").exists()


def test_csv_columns_and_rows(session, scene):
    service = ExportService(session)
    batches = _csv(service, PARTNER, "batches")
    assert tuple(batches[0]) == CSV_EXPORTS["batches"]
    rows = {r[1]: dict(zip(batches[0], r)) for r in batches[1:]}
    assert set(rows) == {"LOT-1", "LOT/2"}
    assert rows["LOT-1"]["gtin"] == GTIN and rows["LOT-1"]["status"] == "active"
    assert rows["LOT-1"]["serial_count"] == "1" and rows["LOT/2"]["status"] == "recalled"
    assert (rows["LOT-1"]["scan_count"], rows["LOT/2"]["scan_count"]) == ("2", "1")  # its unit's two checks, counted
    assert rows["LOT-1"]["producer_name"] == "HTX Highland" and rows["LOT-1"]["registered_at"].endswith("Z")
    assert rows["LOT-1"]["record_version"] == "1"  # never corrected (tests/registry/test_corrections.py)
    recalls = _csv(service, PARTNER, "recalls")
    assert tuple(recalls[0]) == CSV_EXPORTS["recalls"] and len(recalls) == 2
    recall = dict(zip(recalls[0], recalls[1]))
    assert recall["lot"] == "LOT/2" and recall["reason"].startswith("'=HYPERLINK")  # defused formula
    cases = _csv(service, PARTNER, "cases")
    assert tuple(cases[0]) == CSV_EXPORTS["cases"]
    assert [r[0] for r in cases[1:]] == ["VN-2026-000001"]  # confirmed cases only
    case = dict(zip(cases[0], cases[1]))
    assert case["seller"] == "'@Shop Fake" and case["product_name"] == "Cà phê rang xay"
    assert "secret phone" not in "".join(",".join(r) for r in cases)
    violators = _csv(service, PARTNER, "violators")
    assert tuple(violators[0]) == CSV_EXPORTS["violators"]
    violator = dict(zip(violators[0], violators[1]))
    assert violator["name"] == "Cơ sở A" and violator["decided_on"] == "2026-11-01"


def test_an_active_batch_past_its_expiry_is_expired_in_the_csv_as_in_the_verdicts(registry, session, world):
    from datetime import date

    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data(lot="OLD", production_date="2024-01-01",
                                                 expiry=date.today() - timedelta(days=2)))
    session.flush()
    batches = _csv(ExportService(session), PARTNER, "batches")
    assert dict(zip(batches[0], batches[1]))["status"] == "expired"


def test_csv_is_a_generator_of_lines(session, scene):
    lines = ExportService(session).csv(PARTNER, "batches")
    first = next(lines)
    assert first.endswith("\r\n") and first.startswith("gtin,lot,")


def test_exports_are_for_readers_only_and_checked_before_the_first_line(session, world):
    service = ExportService(session)
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    with pytest.raises(Forbidden):
        service.csv(producer, "batches")  # raised on the call, not when iterating
    with pytest.raises(Forbidden):
        service.epcis_events(producer)
    with pytest.raises(Invalid):
        service.csv(PARTNER, "passwords")
    with pytest.raises(Invalid):
        service.epcis_events(PARTNER, limit=0)


def test_epcis_document_validates_against_the_schema(session, scene, schema):
    document = ExportService(session, base_url="https://verify.example.vn").epcis_document(PARTNER)
    errors = sorted(schema.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    assert document["type"] == "EPCISDocument" and document["schemaVersion"] == "2.0"
    everything = document["epcisBody"]["eventList"]
    assert len(everything) == 6  # the two batches' registrations, three scans, one recall
    assert all(e["type"] == "ObjectEvent" for e in everything)
    times = [e["eventTime"] for e in everything]
    assert times == sorted(times)
    events = [e for e in everything if e["bizStep"] != "commissioning"]
    unit = f"https://id.gs1.org/01/{GTIN}/10/LOT-1/21/{scene['serial']}"
    placed, unplaced, batch_scan, recall = events
    assert placed["epcList"] == [unit] and placed["action"] == "OBSERVE" and placed["bizStep"] == "inspecting"
    assert placed["readPoint"] == {"id": "geo:21.0,105.8"} or placed["readPoint"]["id"].startswith("geo:21.0")
    assert "readPoint" not in unplaced
    assert batch_scan["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}/10/LOT%2F2", "quantity": 1}]
    assert recall["disposition"] == "recalled" and recall["quantityList"][0]["epcClass"].endswith("/10/LOT%2F2")
    assert recall["quantityList"][0]["quantity"] == 100
    for event in events:
        assert event["eventTimeZoneOffset"] == "+00:00" and event["eventTime"].endswith("Z")
        assert event["eventID"].startswith("urn:uuid:")
        for uri in event.get("epcList", []) + [q["epcClass"] for q in event.get("quantityList", [])]:
            parts = urlsplit(uri)
            assert parts.scheme == "https" and parts.netloc == "id.gs1.org" and " " not in uri
    assert len({e["eventID"] for e in everything}) == 6
    # the same events exported again have the same ids (partners can de-duplicate)
    again = ExportService(session, base_url="https://verify.example.vn").epcis_document(PARTNER)
    assert [e["eventID"] for e in again["epcisBody"]["eventList"]] == [e["eventID"] for e in everything]


def test_the_standards_own_examples_pass_and_a_broken_event_fails(schema):
    examples = SHARED / "epcis" / "Example_9.6.1-ObjectEventWithDigitalLink.jsonld"
    if examples.exists():
        assert not list(schema.iter_errors(json.loads(examples.read_text())))
    broken = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
              "schemaVersion": "2.0", "creationDate": "2026-11-22T00:00:00Z", "epcisBody": {"eventList": [
                  {"type": "ObjectEvent", "action": "LOOK", "eventTime": "2026-11-22T00:00:00Z",
                   "eventTimeZoneOffset": "+00:00", "epcList": []}]}}
    assert list(schema.iter_errors(broken))


def test_epcis_filters_and_stream(session, scene, schema):
    service = ExportService(session, base_url="https://verify.example.vn")
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert service.epcis_document(PARTNER, since=future)["epcisBody"]["eventList"] == []
    only_recalls = service.epcis_document(PARTNER, events="recalls")["epcisBody"]["eventList"]
    assert [e["disposition"] for e in only_recalls] == ["recalled"]
    only_scans = service.epcis_document(PARTNER, events="scans")["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in only_scans] == ["inspecting"] * 3
    registrations = service.epcis_document(PARTNER, events="registrations")["epcisBody"]["eventList"]
    assert [e["ilmd"]["cbvmda:lotNumber"] for e in registrations] == ["LOT-1", "LOT/2"]
    assert service.epcis_document(PARTNER, events="corrections")["epcisBody"]["eventList"] == []  # none yet
    for bad in ("", "All", "scans,recalls", "commissioning"):
        with pytest.raises(Invalid) as err:
            service.epcis_page(PARTNER, events=bad)  # raised on the call, not when iterating
        assert err.value.code == "BAD_EVENTS" and "registrations" in str(err.value), bad
    assert len(service.epcis_document(PARTNER, limit=2)["epcisBody"]["eventList"]) == 2
    chunks, page = service.epcis_stream(PARTNER)
    streamed = json.loads("".join(chunks))
    assert page.next_token is None  # everything fitted in one page
    assert not list(schema.iter_errors(streamed))
    whole = service.epcis_document(PARTNER)
    assert streamed["epcisBody"] == whole["epcisBody"]


def _kind(event) -> int:
    """The kind of an exported event, as numbered in page positions."""
    if event["bizStep"] != "commissioning":
        return {"inspecting": 0, "holding": 1}[event["bizStep"]]
    return 3 if "errorDeclaration" in event else 4 if "pov:correctionOf" in event else 2


def _paged(service, size, **kwargs):
    """The event ids of every page of ``size`` events, following the tokens; and the number of pages."""
    seen, token, pages = [], None, 0
    while True:
        page = service.epcis_page(PARTNER, limit=size, page_token=token, **kwargs)
        seen += [e["eventID"] for e in page]
        pages += 1
        token = page.next_token
        if token is None:
            return seen, pages


def test_epcis_pages_follow_each_other_without_gap_or_repeat(session, scene, world, registry):
    """Paging by position: every event exactly once, in order, whatever the page size, also when
    many events of every kind share one second (times are to the second: scans, registrations, a
    correction's two events) and when events arrive between pages."""
    writer = ScanWriter()
    verifier = Verifier(lookup=RegistryLookup(session), scans=ScanHistory(session, writer))
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    url = next(registry.labels(producer, GTIN, "LOT-1", serial=scene["serial"])).url
    same_second = utcnow()
    for n in range(7):
        verifier.verify_text(url, context=ScanContext(channel="api", client=f"t{n}", at=same_second))
    writer.flush(session)
    in_that_second = Registry(session, keystore=registry.keystore, base_url=registry.base_url,
                              clock=FixedClock(same_second))
    for lot in ("TIE-1", "TIE-2", "TIE-3"):
        in_that_second.register_batch(producer, batch_data(lot=lot))
    in_that_second.correct_batch(producer, GTIN, "TIE-2", {**batch_data(lot="TIE-2"), "quantity": 90},
                                 reason="recounted")
    session.flush()
    service = ExportService(session, base_url="https://verify.example.vn")
    events = list(service.epcis_events(PARTNER))
    everything = [e["eventID"] for e in events]
    # the scene's 2 registrations, 3 scans and 1 recall; in one second, 7 scans, 3 registrations and
    # a correction (its error declaration, which repeats the erroneous event's id as EPCIS says, and
    # its corrective event)
    assert len(everything) == 18 and len({(e["eventID"], "errorDeclaration" in e) for e in events}) == 18
    kinds = [_kind(e) for e in events if e["eventTime"] == rfc3339(same_second)]
    assert kinds == sorted(kinds) and kinds[-5:] == [2, 2, 2, 3, 4]  # at one time, by kind, then by id
    for size in (1, 2, 3, 5, 10, 17, 18):
        seen, pages = _paged(service, size)
        assert seen == everything, size
        assert pages == -(-len(everything) // size)
    for name, kinds in {"scans": {0}, "recalls": {1}, "registrations": {2}, "corrections": {3, 4}}.items():
        for size in (1, 2, 4):
            assert _paged(service, size, events=name)[0] == [e["eventID"] for e in events if _kind(e) in kinds], name
    first = service.epcis_page(PARTNER, limit=4)
    head = [e["eventID"] for e in first]
    verifier.verify_text(url, context=ScanContext(channel="api", client="late"))  # written between pages
    writer.flush(session)
    session.flush()
    rest = [e["eventID"] for e in service.epcis_page(PARTNER, limit=100, page_token=first.next_token)]
    now = [e["eventID"] for e in service.epcis_events(PARTNER)]
    assert len(now) == len(everything) + 1 and head + rest == now  # the new event in its place, nothing twice


def test_registrations_and_corrections_are_commissioning_events(session, world, registry, schema):
    """A registration is the lot's commissioning (ADD, commissioning, active, its class and quantity,
    the lot's data in CBV's ILMD names) at the registration's time, with the record it was registered
    with even after corrections; each correction is an EPCIS error declaration of the commissioning
    event it corrects and a corrective event, at the time it was made. All valid EPCIS 2.0."""
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    start = utcnow() + timedelta(minutes=1)  # within the key's validity
    clock = FixedClock(start)
    timed = Registry(session, keystore=registry.keystore, base_url=registry.base_url, clock=clock)
    data = batch_data(lot="LOT/9", facility={"name": "Xưởng Ea Tu", "address": "Đắk Lắk", "country": "VN",
                                             "gln": "8936000010003"})
    timed.register_batch(producer, data)
    first_index = registry.owned_batch(producer, GTIN, "LOT/9").log_index
    timed.register_batch(producer, batch_data(lot="NOQTY", quantity=None, expiry_date=None))
    clock.now = start + timedelta(days=1)
    timed.correct_batch(producer, GTIN, "LOT/9", {**data, "quantity": 90}, reason="4 bags damaged before labelling")
    clock.now = start + timedelta(days=2)
    timed.correct_batch(producer, GTIN, "LOT/9", {**data, "quantity": 90, "product": {**data["product"],
                        "name": "Cà phê rang xay 500 g"}}, reason="the weight was missing")
    current = registry.owned_batch(producer, GTIN, "LOT/9")
    session.flush()
    service = ExportService(session, base_url="https://verify.example.vn")
    document = service.epcis_document(PARTNER)
    errors = sorted(schema.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    events = document["epcisBody"]["eventList"]
    assert [_kind(e) for e in events] == [2, 2, 3, 4, 3, 4]
    registered, no_quantity, declared1, corrective2, declared2, corrective3 = events

    lot_class = f"https://id.gs1.org/01/{GTIN}/10/LOT%2F9"
    assert registered["eventTime"] == rfc3339(start) and registered["action"] == "ADD"
    assert registered["bizStep"] == "commissioning" and registered["disposition"] == "active"
    assert registered["quantityList"] == [{"epcClass": lot_class, "quantity": 100}]  # as registered
    assert registered["bizLocation"] == {"id": "https://id.gs1.org/414/8936000010003"}
    ilmd = registered["ilmd"]
    assert ilmd["cbvmda:lotNumber"] == "LOT/9" and ilmd["cbvmda:countryOfOrigin"] == "VN"
    assert ilmd["pov:productionDate"] == data["production_date"]
    assert ilmd["cbvmda:itemExpirationDate"] == data["expiry_date"]
    assert ilmd["pov:productName"] == "Cà phê rang xay" and ilmd["pov:certifications"] == data["certifications"]
    assert registered["pov:producerId"] == world.producer_id and registered["pov:logIndex"] == first_index
    assert registered["pov:recordVersion"] == 1 and "errorDeclaration" not in registered
    assert no_quantity["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}/10/NOQTY"}]
    assert "cbvmda:itemExpirationDate" not in no_quantity["ilmd"] and "bizLocation" not in no_quantity

    # the first correction: the registration again, declared erroneous, and the corrected commissioning
    assert {k: v for k, v in declared1.items() if k != "errorDeclaration"} == registered
    assert declared1["errorDeclaration"] == {
        "declarationTime": rfc3339(start + timedelta(days=1)), "reason": "incorrect_data",
        "correctiveEventIDs": [corrective2["eventID"]], "pov:reason": "4 bags damaged before labelling",
        "pov:logIndex": corrective2["pov:logIndex"]}
    assert corrective2["eventID"] not in (registered["eventID"], corrective3["eventID"])
    assert corrective2["eventTime"] == registered["eventTime"]  # what happened then, told right
    assert corrective2["quantityList"] == [{"epcClass": lot_class, "quantity": 90}]
    assert corrective2["pov:recordVersion"] == 2 and corrective2["pov:correctionOf"] == registered["eventID"]
    assert corrective2["pov:reason"] == "4 bags damaged before labelling"
    assert corrective2["ilmd"]["pov:productName"] == "Cà phê rang xay"
    # the second corrects the first's corrective event; the current record is the last one
    assert {k: v for k, v in declared2.items() if k != "errorDeclaration"} == corrective2
    assert declared2["errorDeclaration"]["correctiveEventIDs"] == [corrective3["eventID"]]
    assert declared2["errorDeclaration"]["declarationTime"] == rfc3339(start + timedelta(days=2))
    assert corrective3["ilmd"]["pov:productName"] == "Cà phê rang xay 500 g"
    assert corrective3["pov:logIndex"] == current.log_index and corrective3["pov:recordVersion"] == 3
    assert corrective3["pov:correctionOf"] == corrective2["eventID"]

    # since / until: registrations by their time, corrections by the time they were made
    def ids(**kwargs):
        return [e["eventID"] for e in service.epcis_events(PARTNER, **kwargs)]

    assert ids(since=start + timedelta(hours=1)) == [e["eventID"] for e in events[2:]]
    assert ids(since=start + timedelta(days=1, hours=1)) == [e["eventID"] for e in events[4:]]
    assert ids(until=start + timedelta(days=1)) == [e["eventID"] for e in events[:2]]
    assert ids(events="corrections", until=start + timedelta(days=2)) == [e["eventID"] for e in events[2:4]]


def test_tokens_of_every_kind_are_taken_and_of_no_kind_refused(session, scene):
    """Tokens given before registrations and corrections were exported (kinds 0 and 1) still work."""
    service = ExportService(session)
    events = list(service.epcis_events(PARTNER))
    moment = datetime.fromisoformat(events[0]["eventTime"].replace("Z", "+00:00"))
    for kind in range(5):
        token = b64url_encode(json.dumps([moment.isoformat(), kind, 1]).encode())
        assert len(list(service.epcis_page(PARTNER, page_token=token))) <= len(events)
    with pytest.raises(Invalid) as err:
        service.epcis_page(PARTNER, page_token=b64url_encode(json.dumps([moment.isoformat(), 5, 1]).encode()))
    assert err.value.code == "BAD_PAGE_TOKEN"


@pytest.mark.parametrize("token", ["", "not base64!", "WzEsMiwzXQ", "WyIyMDI2LTExLTIyIiwgMCwgMV0"])
def test_a_page_token_the_service_did_not_give_is_refused(session, token):
    with pytest.raises(Invalid) as err:
        ExportService(session).epcis_page(PARTNER, page_token=token or "x")
    assert err.value.code == "BAD_PAGE_TOKEN"


def test_uris_are_percent_encoded_as_digital_link_says():
    assert serial_uri(GTIN, "A/B C", "S%1") == f"https://id.gs1.org/01/{GTIN}/10/A%2FB%20C/21/S%251"
    assert class_uri(GTIN, "LOT-1") == f"https://id.gs1.org/01/{GTIN}/10/LOT-1"


def test_producer_listings(session, scene, world, registry):
    service = ExportService(session)
    own = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    other = Actor(role=Role.PRODUCER, producer_id="prd-other", name="q")
    batches = service.producer_batches(own, world.producer_id)
    lot1 = next(b for b in batches if b["lot"] == "LOT-1")
    assert lot1["scan_count"] == 2 and lot1["serial_count"] == 1
    assert len(service.producer_batches(PARTNER, world.producer_id)) == 2
    with pytest.raises(Forbidden):
        service.producer_batches(other, world.producer_id)
    serials = service.batch_serials(own, GTIN, "LOT-1")
    assert serials[0]["serial"] == scene["serial"] and serials[0]["scan_count"] == 2
    with pytest.raises(Forbidden):
        service.batch_serials(other, GTIN, "LOT-1")
    with pytest.raises(Forbidden):
        service.batch_serials(PARTNER, GTIN, "LOT-1")

