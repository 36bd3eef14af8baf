"""Corrections of origin records (Registry.correct_batch): a new signed, logged version naming the one
it replaces; the replaced one kept; what a correction may not change; who may correct."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from keys.encoding import b64url_decode, b64url_encode, log_bytes, rfc3339, utcnow
from keys.signing import Signer, public_key_from_raw, sign, verify
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.exports import ExportService
from registry.models import AuditEvent, BatchVersion
from registry.services import SYSTEM, Actor, Role
from tests.conftest import GTIN, batch_data

PRODUCER = lambda world: Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")  # noqa: E731


def corrected(**changes) -> dict:
    """The registration's data with ``changes``, without the GTIN and lot (a correction may leave them out)."""
    data = {k: v for k, v in batch_data().items() if k not in ("gtin", "lot")}
    data.update(changes)
    return data


def entry_hash(record: dict) -> str:
    return b64url_encode(hashlib.sha256(log_bytes(record)).digest())


def test_a_correction_is_a_new_signed_logged_version_naming_the_one_it_replaces(registry, world, session):
    first = registry.register_batch(PRODUCER(world), batch_data())
    v1, v1_index = dict(first.record), first.log_index
    size = registry.log().size()

    batch = registry.correct_batch(PRODUCER(world), GTIN, "LOT-1",
                                   corrected(product={"name": "Cà phê hạt rang", "brand": "Highland"}),
                                   reason="  tên sản phẩm in sai  ")
    session.commit()
    record = batch.record
    assert record["t"] == "origin-record" and record["version"] == 2
    assert record["supersedes"] == {"index": v1_index, "sha256": entry_hash(v1)}
    assert record["reason"] == "tên sản phẩm in sai"  # stripped
    assert record["product"] == {"name": "Cà phê hạt rang", "brand": "Highland"}
    assert (record["gtin"], record["lot"], record["expiry_date"]) == (GTIN, "LOT-1", v1["expiry_date"])
    key = registry.key(record["kid"])
    verify(record, public_key_from_raw(b64url_decode(key.public_key)))  # signed by the producer's key

    # appended to the log, and the log's latest checkpoint covers it
    assert registry.log().size() == size + 1 == batch.log_index + 1
    assert registry.log().entry(batch.log_index) == record
    assert registry.log().latest_checkpoint()["size"] == size + 1
    assert registry.log().entry(v1_index) == v1  # the old entry stays where it was

    # the current record on the batch, the replaced one kept as it was signed
    stored = registry.batch(GTIN, "LOT-1")
    assert stored.record == record and stored.product_name == "Cà phê hạt rang"
    view = registry.batch_view(stored)
    assert view["version"] == 2 and view["log"]["index"] == batch.log_index
    assert [(v["version"], v["record"], v["log"]["index"]) for v in view["versions"]] == [(1, v1, v1_index)]
    exported = list(csv.DictReader(io.StringIO("".join(
        ExportService(session).csv(Actor(role=Role.PARTNER), "batches")))))
    assert [(r["product_name"], r["record_version"], r["log_index"]) for r in exported] == [
        ("Cà phê hạt rang", "2", str(batch.log_index))]
    events = session.execute(select(AuditEvent).where(AuditEvent.action == "batch.correct")).scalars().all()
    assert [(e.actor, e.target, e.detail["version"], e.detail["reason"]) for e in events] == [
        ("p", f"{GTIN}/LOT-1", 2, "tên sản phẩm in sai")]


def test_versions_follow_one_another(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(quantity=90), reason="đếm lại")
    v2 = dict(registry.batch(GTIN, "LOT-1").record)
    third = registry.correct_batch(SYSTEM, GTIN, "LOT-1", corrected(quantity=95), reason="đếm lại lần nữa")
    session.commit()
    assert third.record["version"] == 3 and third.record["quantity"] == 95
    assert third.record["supersedes"]["sha256"] == entry_hash(v2)
    assert [v["version"] for v in registry.batch_view(third)["versions"]] == [1, 2]
    assert registry.log().verify_all(registry.authority.public_raw).ok
    unchanged = registry.register_batch(PRODUCER(world), batch_data(lot="LOT-2"))
    assert registry.batch_view(unchanged)["version"] == 1 and registry.batch_view(unchanged)["versions"] == []


def test_what_a_correction_may_not_change_every_problem_at_once(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    session.commit()
    size = registry.log().size()
    later = (date.today() + timedelta(days=400)).isoformat()
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(lot="LOT-9", expiry_date=later), reason="")
    assert {(p.code, p.field) for p in err.value.problems} == {
        ("FIELD_REQUIRED", "reason"), ("BATCH_MISMATCH", "lot"), ("EXPIRY_FIXED", "expiry_date")}
    with pytest.raises(Invalid) as err:  # the record's own rules are checked with the correction's
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(product={"name": ""}), reason="x" * 1001)
    assert {(p.code, p.field) for p in err.value.problems} == {("FIELD_REQUIRED", "product.name"),
                                                               ("TOO_LONG", "reason")}
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(gtin="08936000010027"), reason="r")
    assert (err.value.code, err.value.field) == ("BATCH_MISMATCH", "gtin")
    for dropped in ({"expiry_date": None}, {"expiry_date": ""}):  # nor can it drop the expiry date
        with pytest.raises(Invalid) as err:
            registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(quantity=5, **dropped), reason="r")
        assert (err.value.code, err.value.field) == ("EXPIRY_FIXED", "expiry_date"), dropped
    no_expiry = {k: v for k, v in corrected(quantity=5).items() if k != "expiry_date"}
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", no_expiry, reason="r")
    assert err.value.code == "EXPIRY_FIXED"
    with pytest.raises(Invalid) as err:  # the same record again: not a correction
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(), reason="nothing")
    assert err.value.code == "NOTHING_CHANGED"
    session.rollback()
    assert registry.log().size() == size and registry.batch(GTIN, "LOT-1").record.get("version") is None
    assert session.execute(select(BatchVersion)).first() is None


def test_a_correction_is_held_to_the_records_lengths(registry, world, session):
    """A correction is a record too, logged for good: the API's lengths hold for it however it
    comes (the portal's correction form had taken any length), a signed one included, each text
    at fault named with the correction's own problems."""
    batch = registry.register_batch(PRODUCER(world), batch_data())
    session.commit()
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1",
                               corrected(product={"name": "A" * 400_000, "brand": "b" * 201},
                                         facility={"name": "Xưởng", "address": "a" * 501},
                                         certifications=[{"scheme": "VietGAP", "id": "V" * 101}]),
                               reason="x" * 1001)
    assert [(p.code, p.field) for p in err.value.problems] == [
        ("TOO_LONG", "product.name"), ("TOO_LONG", "product.brand"), ("TOO_LONG", "facility.address"),
        ("TOO_LONG", "certifications.0.id"), ("TOO_LONG", "reason")]
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(product={"name": "T" * 201}), reason="r")
    assert (err.value.code, err.value.field) == ("TOO_LONG", "product.name")
    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    fix = {"t": "origin-record", **{k: v for k, v in batch.record.items() if k not in ("t", "sig", "kid")},
           "kid": own.kid, "product": {"name": "T" * 201}, "issued_at": rfc3339(utcnow()), "version": 2,
           "supersedes": {"index": batch.log_index, "sha256": entry_hash(batch.record)}, "reason": "tên"}
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", {"record": sign(fix, own)})
    assert (err.value.code, err.value.field) == ("TOO_LONG", "product.name")
    session.rollback()
    assert registry.log().size() == size and registry.batch(GTIN, "LOT-1").record.get("version") is None
    assert session.execute(select(BatchVersion)).first() is None
    done = registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", corrected(product={"name": "T" * 200}),
                                  reason="r" * 1000)
    assert done.record["product"] == {"name": "T" * 200} and done.product_name == "T" * 200


def test_who_may_correct(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0399999999", gs1_prefixes=["893600002"],
                                    country="VN")
    session.commit()
    with pytest.raises(Forbidden):
        registry.correct_batch(Actor(role=Role.PRODUCER, producer_id=other.id), GTIN, "LOT-1",
                               corrected(quantity=1), reason="r")
    for role in (Role.INSPECTOR, Role.PARTNER):
        with pytest.raises(Forbidden):
            registry.correct_batch(Actor(role=role), GTIN, "LOT-1", corrected(quantity=1), reason="r")
    with pytest.raises(NotFound):
        registry.correct_batch(PRODUCER(world), GTIN, "NO-LOT", corrected(quantity=1), reason="r")
    session.rollback()
    done = registry.correct_batch(Actor(role=Role.AUTHORITY, name="user:an"), GTIN, "LOT-1",
                                  corrected(quantity=1), reason="theo biên bản kiểm tra")
    assert done.record["version"] == 2 and done.record["quantity"] == 1


def test_a_recalled_batch_can_be_corrected_and_stays_recalled(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    registry.recall(PRODUCER(world), GTIN, "LOT-1", reason="nhiễm khuẩn")
    batch = registry.correct_batch(PRODUCER(world), GTIN, "LOT-1",
                                   corrected(facility={"name": "Xưởng Buôn Ma Thuột", "country": "VN"}),
                                   reason="sai nơi sản xuất")
    assert batch.status == "recalled" and batch.record["facility"]["name"] == "Xưởng Buôn Ma Thuột"


def test_a_record_signed_by_the_producers_own_key(registry, world, session):
    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    base = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
            "product": {"name": "Tea"}, "facility": {"name": "Farm"},
            "production_date": date.today().isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    first = registry.register_batch(PRODUCER(world), {"record": sign(base, own)})
    supersedes = {"index": first.log_index, "sha256": entry_hash(first.record)}
    fix = {**base, "product": {"name": "Green tea"}, "issued_at": rfc3339(utcnow()), "version": 2,
           "supersedes": supersedes, "reason": "typo"}

    registry.register_batch(PRODUCER(world), {"record": sign({**base, "lot": "OWN-2",
                                                              "expiry_date": "2069-01-01"}, own)})
    dated = registry.batch(GTIN, "OWN-2")
    dropped = {k: v for k, v in {**base, "lot": "OWN-2", "quantity": 3, "version": 2, "reason": "r",
                                 "supersedes": {"index": dated.log_index, "sha256": entry_hash(dated.record)}
                                 }.items() if k != "expiry_date"}
    with pytest.raises(Invalid) as err:  # a signed record cannot drop the expiry date either
        registry.correct_batch(PRODUCER(world), GTIN, "OWN-2", {"record": sign(dropped, own)})
    assert err.value.code == "EXPIRY_FIXED"
    for wrong, code in (({"version": 3}, "VERSION_CONFLICT"),
                        ({"supersedes": {**supersedes, "sha256": entry_hash({"x": 1})}}, "VERSION_CONFLICT"),
                        ({"reason": ""}, "FIELD_REQUIRED"),
                        ({"product": {"name": "Tea"}}, "NOTHING_CHANGED")):
        with pytest.raises((Invalid, Conflict)) as err:
            registry.correct_batch(PRODUCER(world), GTIN, "OWN-1", {"record": sign({**fix, **wrong}, own)})
        assert err.value.code == code, wrong
    tampered = sign(fix, own)
    tampered["product"] = {"name": "Fake tea"}
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "OWN-1", {"record": tampered})
    assert err.value.code == "SIGNATURE_INVALID"

    batch = registry.correct_batch(PRODUCER(world), GTIN, "OWN-1", {"record": sign(fix, own)})
    assert batch.record == sign(fix, own) and batch.record["kid"] == own.kid and batch.record["reason"] == "typo"
    assert batch.kid == own.kid  # registered with that key: its codes are signed with it
    session.commit()
    with pytest.raises(Conflict) as err:  # the same correction sent again names a version now replaced
        registry.correct_batch(PRODUCER(world), GTIN, "OWN-1", {"record": sign(fix, own)})
    assert err.value.code == "VERSION_CONFLICT"


def test_a_correction_signed_by_another_key_leaves_the_codes_key_alone(registry, world, session):
    """A batch registered under the service-held key, corrected with a record signed by the
    producer's own key: the record names its key, and the batch's codes (new serials, the batch
    code) are still signed with the key they always were."""
    batch = registry.register_batch(PRODUCER(world), batch_data())
    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    fix = {"t": "origin-record", **{k: v for k, v in batch.record.items() if k not in ("t", "sig", "kid")},
           "kid": own.kid, "quantity": 99, "issued_at": rfc3339(utcnow()), "version": 2,
           "supersedes": {"index": batch.log_index, "sha256": entry_hash(batch.record)}, "reason": "recount"}
    corrected = registry.correct_batch(PRODUCER(world), GTIN, "LOT-1", {"record": sign(fix, own)})
    assert corrected.record["kid"] == own.kid and corrected.kid == world.kid
    (serial, s), = registry.issue_serials(PRODUCER(world), GTIN, "LOT-1", 1)
    assert s.startswith(world.kid + ".")
    assert f"s={world.kid}." in registry.batch_url(corrected)  # the batch code, signed as before
