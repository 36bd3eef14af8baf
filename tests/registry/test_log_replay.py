"""The log replayed into the state verification serves (``registry.log_replay.compare_state``): every
change made to the tables behind the log's back, by someone with write access to the database, is a
difference naming the row, what the table says and what the log says."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import delete, select, update

from registry.log_replay import compare_state
from keys.signing import verify
from registry.errors import Forbidden
from registry.models import AuditEvent, Batch, BatchVersion, LogEntry, Producer, ProducerKey, Recall
from registry.publications import PublicationService
from registry.actors import Actor, Role
from registry.services import SYSTEM
from tests.conftest import GTIN, PREFIX, batch_data


@pytest.fixture
def history(registry, session, world):
    """Every kind of entry: certifications, registrations, a correction, a recall, a revocation, a
    publication and its withdrawal."""
    registry.register_batch(SYSTEM, batch_data(lot="LOT-1"), producer_id=world.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-2"), producer_id=world.producer_id)
    data = {k: v for k, v in batch_data().items() if k not in ("gtin", "lot")}
    data["product"] = {**data["product"], "name": "Cà phê rang xay (500 g)"}
    registry.correct_batch(SYSTEM, GTIN, "LOT-1", data, reason="the weight was missing")
    registry.recall(SYSTEM, GTIN, "LOT-2", reason="mould")
    spare = registry.certify_key(SYSTEM, world.producer_id)
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    publications = PublicationService(session, authority=registry.authority)
    item = publications.publish(SYSTEM, kind="violator", title="Bán hàng giả", name="Cửa hàng A",
                                decision_ref="QĐ 1/2026")
    publications.withdraw(SYSTEM, item.id, reason="Quyết định bị hủy")
    session.commit()
    return spare.kid


def differences(session) -> list[str]:
    session.expire_all()
    return [str(d) for d in compare_state(session).differences]


def test_tables_written_through_the_registry_match_the_log(session, history):
    check = compare_state(session)
    assert check.ok and check.differences == [], [str(d) for d in check.differences]
    assert (check.producers, check.keys, check.batches, check.publications) == (1, 2, 2, 1)


def test_an_admission_is_logged_signed_by_the_authority(registry, session, world):
    entry = session.execute(select(LogEntry).where(LogEntry.kind == "producer")).scalar_one()
    admission = json.loads(entry.data)
    verify(admission, registry.authority.private_key.public_key())
    assert {k: admission[k] for k in ("t", "id", "name", "tax_code", "country", "gs1_prefixes")} == {
        "t": "producer", "id": world.producer_id, "name": "HTX Highland", "tax_code": "0312345673", "country": "VN",
        "gs1_prefixes": [PREFIX]}
    assert "logged_late" not in admission


def test_a_producer_renamed_moved_or_given_a_prefix_in_the_table_differs(session, world, history):
    """The name and country verification shows shoppers, and the prefixes keys are certified for,
    are the admission's: changed in the table alone they are found."""
    session.execute(update(Producer).where(Producer.id == world.producer_id)
                    .values(name="Nestlé Việt Nam", country="CH", gs1_prefixes=[PREFIX, "76130"]))
    session.commit()
    found = differences(session)
    assert len(found) == 3, found
    row = f"producers id={world.producer_id}"
    assert found[0].startswith(f'{row}: name is "Nestlé Việt Nam" in the table, "HTX Highland" (entry ')
    assert found[1].startswith(f'{row}: country is "CH" in the table, "VN" (entry ')
    assert found[2].startswith(f'{row}: gs1_prefixes is ["76130", "{PREFIX}"] in the table, ["{PREFIX}"] (entry ')


def unlogged_producer(session, name: str = "HTX Cũ") -> Producer:
    """A producer row written without its admission entry, as versions before admissions were
    logged wrote them (or as someone with write access to the database would)."""
    producer = Producer(id="prd-0000000001", name=name, tax_code="0100109106", country="VN",
                        gs1_prefixes=["8935555"], created_at=datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc))
    session.add(producer)
    session.commit()
    return producer


def test_a_producer_the_log_never_saw_differs(session, history):
    unlogged_producer(session)
    assert differences(session) == [
        "producers id=prd-0000000001: admission is present in the table, absent: no producer entry (admitted "
        "before admissions were logged? check the row, then: python -m app log producers) in the log"]


def test_producers_admitted_before_admissions_were_logged_are_logged_once(registry, session, world, history):
    producer = unlogged_producer(session)
    size = registry.log().size()
    late = registry.log_unlogged_producers(SYSTEM)
    session.commit()
    assert [p.id for p in late] == [producer.id]
    assert registry.log().size() == size + 1 and registry.log().latest_checkpoint()["size"] == size + 1
    admission = json.loads(session.execute(
        select(LogEntry.data).where(LogEntry.index == size)).scalar_one())
    verify(admission, registry.authority.private_key.public_key())
    assert admission["id"] == producer.id and admission["name"] == "HTX Cũ"
    assert admission["at"] == "2025-03-01T08:00:00Z" and admission["logged_late"].startswith("20")
    assert compare_state(session).ok
    assert session.execute(select(AuditEvent.action, AuditEvent.target)
                           .where(AuditEvent.action == "producer.log")).all() == [("producer.log", producer.id)]
    assert registry.log_unlogged_producers(SYSTEM) == [] and registry.log().size() == size + 1
    # from then on, the row is the one logged
    session.execute(update(Producer).where(Producer.id == producer.id).values(name="Someone else"))
    session.commit()
    assert differences(session)[0].startswith(f'producers id={producer.id}: name is "Someone else" in the table')


def test_only_the_authority_logs_producers(registry, session, world):
    unlogged_producer(session)
    size = registry.log().size()
    for role in (Role.PRODUCER, Role.INSPECTOR, Role.PARTNER):
        with pytest.raises(Forbidden):
            registry.log_unlogged_producers(Actor(role=role, producer_id=world.producer_id))
    session.rollback()
    assert registry.log().size() == size


def test_a_violator_taken_off_renamed_or_unwithdrawn_in_the_table_differs(registry, session, history):
    """The public list of violators is what the table says: a withdrawal undone, a name changed, a
    publication deleted or one added without its entry are each found."""
    from registry.models import Publication

    item = session.execute(select(Publication)).scalar_one()
    session.execute(update(Publication).where(Publication.id == item.id).values(withdrawn_at=None, name="Cửa hàng B"))
    session.commit()
    found = differences(session)
    assert len(found) == 2, found
    assert found[0] == f'publications id={item.id}: name is "Cửa hàng B" in the table, "Cửa hàng A" in the log'
    assert found[1].startswith(f'publications id={item.id}: withdrawn_at is null in the table, "20')
    session.execute(delete(Publication))
    session.add(Publication(kind="violator", title="Made up", name="Cửa hàng C", record={"t": "publication"},
                            published_at=item.published_at, log_index=0))
    session.commit()
    found = differences(session)
    assert found[0].startswith("publications id=") and found[0].endswith(
        "log_index is 0 in the table, not a publication entry in the log")
    assert found[1] == f"publications of entry {item.log_index}: row is absent in the table, " \
                       f"published at entry {item.log_index} in the log"


def test_a_key_set_back_to_active_differs(session, world, history):
    session.execute(update(ProducerKey).where(ProducerKey.kid == world.kid)
                    .values(status="active", compromised_at=None, revoked_at=None))
    session.commit()
    found = differences(session)
    assert len(found) == 3, found
    assert found[0] == f'producer_keys kid={world.kid}: status is "active" in the table, "revoked" in the log'
    assert found[1].startswith(f"producer_keys kid={world.kid}: compromised_at is null in the table, \"20")
    assert found[2].startswith(f"producer_keys kid={world.kid}: revoked_at is null in the table, \"20")


def test_a_key_given_another_prefix_differs(session, history):
    session.execute(update(ProducerKey).where(ProducerKey.kid == history).values(gs1_prefixes=["893600001", "8936999"]))
    session.commit()
    assert differences(session) == [f'producer_keys kid={history}: gs1_prefixes is ["893600001", "8936999"] in '
                                    f'the table, ["893600001"] in the log']


def test_a_recall_undone_differs(session, history):
    batch_id = session.execute(select(Batch.id).where(Batch.lot == "LOT-2")).scalar_one()
    session.execute(delete(Recall).where(Recall.batch_id == batch_id))
    session.execute(update(Batch).where(Batch.id == batch_id).values(status="active"))
    session.commit()
    found = differences(session)
    assert len(found) == 2, found
    assert found[0].startswith(f'batches {GTIN}/LOT-2: status is "active" in the table, "recalled" (recall at entry ')
    assert found[1].startswith(f"recalls of {GTIN}/LOT-2: row is absent in the table, recalled at entry ")


def test_a_recall_made_up_or_reworded_differs(session, history):
    session.execute(update(Batch).where(Batch.lot == "LOT-1").values(status="recalled"))
    session.execute(update(Recall).values(reason="a reason never logged"))
    session.commit()
    found = differences(session)
    assert len(found) == 2, found
    assert found[0] == f'batches {GTIN}/LOT-1: status is "recalled" in the table, "active" (no recall entry) in the log'
    assert found[1].endswith(f'({GTIN}/LOT-2): reason is "a reason never logged" in the table, "mould" in the log')


def test_a_record_edited_differs_field_by_field(session, history):
    batch = session.execute(select(Batch).where(Batch.lot == "LOT-1")).scalar_one()
    batch.record = {**batch.record, "facility": {**batch.record["facility"], "address": "Somewhere else"}}
    batch.expiry_date = date(2099, 1, 1)
    session.commit()
    found = differences(session)
    assert len(found) == 2, found
    assert found[0].startswith(f'batches {GTIN}/LOT-1: record.facility is {{"address": "Somewhere else"')
    assert '"address": "Đắk Lắk"' in found[0] and "in the log" in found[0]
    assert found[1].startswith(f'batches {GTIN}/LOT-1: expiry_date is "2099-01-01" in the table, "20')


def test_a_correction_undone_differs(session, history):
    batch = session.execute(select(Batch).where(Batch.lot == "LOT-1")).scalar_one()
    batch.product_name = "Cà phê rang xay"
    session.commit()
    assert differences(session) == [f'batches {GTIN}/LOT-1: product_name is "Cà phê rang xay" in the table, '
                                    f'"Cà phê rang xay (500 g)" in the log']


def test_rows_the_log_never_saw_differ(session, world, history):
    batch = session.execute(select(Batch).where(Batch.lot == "LOT-1")).scalar_one()
    session.add(Batch(gtin=GTIN, lot="GHOST", producer_id=world.producer_id, kid=world.kid, record=batch.record,
                      product_name="x", production_date=batch.production_date, status="active", serial_count=0,
                      scan_count=0, log_index=batch.log_index, created_at=batch.created_at))
    session.commit()
    found = differences(session)
    assert found == [f"batches {GTIN}/GHOST: registration is present in the table, absent: no origin-record "
                     "entry in the log"]


def test_the_differences_listed_are_bounded(session, history):
    session.execute(update(ProducerKey).values(public_key="AAAA"))
    session.commit()
    check = compare_state(session, limit=1)
    assert check.total == 2 and len(check.differences) == 1


def test_an_entry_the_replay_cannot_read_is_a_difference_not_a_crash(registry, session, history):
    tlog = registry.log()
    first = tlog.append({"t": "recall", "lot": "NO-GTIN"}, kind="recall")
    tlog.append({"t": "price-change", "gtin": GTIN}, kind="price-change")
    session.commit()
    assert differences(session) == [
        f"log entry {first}: data: not a well-formed 'recall' entry (KeyError: 'gtin')",
        f"log entry {first + 1}: t: 'price-change' is not a kind the replay knows",
    ]


def test_a_replaced_version_edited_or_dropped_differs(session, history):
    version = session.execute(select(BatchVersion)).scalar_one()
    version.record = {**version.record, "quantity": 1}
    session.commit()
    found = differences(session)
    assert len(found) == 1 and found[0].startswith(f"batch_versions id={version.id} ({GTIN}/LOT-1): record is {{")
    assert found[0].endswith(f"in the table, another record (entry {version.log_index}) in the log")
    session.delete(version)
    session.commit()
    assert differences(session) == [f"batch_versions of {GTIN}/LOT-1: row is absent in the table, the record at "
                                    f"entry {version.log_index}, replaced by a correction in the log"]
