"""Scan events older than the retention are deleted (``registry.retention``, ``scans purge``); the
counters a verification answers with, and which clients saw each serial, are kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from keys.encoding import utcnow
from registry.errors import Forbidden, Invalid
from registry.models import AuditEvent, ScanEvent, SerialClient
from registry.retention import ScanRetention
from registry.services import SYSTEM, Actor, Role
from tests.app.verdict_codes import make_codes


@pytest.fixture
def history(app, client, registry, session, world):
    """A unit verified by three clients (real verifications, flushed by the scan writer), then two of
    those events moved 400 days back, as a year-old history would be."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    for client_id in ("a", "b", "c"):
        assert client.get("/api/v1/verify", query_string={"code": codes["genuine"], "client_id": client_id}
                          ).get_json()["verdict"] == "genuine"
    app.extensions["scan_writer"].flush()
    events = session.execute(select(ScanEvent).order_by(ScanEvent.id)).scalars().all()
    assert len(events) == 3
    for event in events[:2]:
        event.at = utcnow() - timedelta(days=400)
    session.commit()
    return codes


def _scans(client, code: str) -> dict:
    return client.get("/api/v1/verify", query_string={"code": code, "client_id": "a"}).get_json()["scans"]


def test_old_events_go_and_the_counters_stay(app, client, session, history):
    before = _scans(client, history["genuine"])  # the 4th verification, by a client seen already
    app.extensions["scan_writer"].flush()
    clients = session.execute(select(func.count()).select_from(SerialClient)).scalar_one()
    retention = ScanRetention(session)
    cutoff = retention.cutoff(SYSTEM, keep_days=365)
    assert retention.purge_batch(cutoff, limit=1) == 1  # a batch at a time, oldest first
    assert retention.purge_batch(cutoff, limit=1) == 1
    assert retention.purge_batch(cutoff, limit=1) == 0
    retention.record(SYSTEM, cutoff, 2)
    session.commit()
    assert session.execute(select(func.count()).select_from(ScanEvent)).scalar_one() == 2  # the recent two
    assert session.execute(select(func.count()).select_from(SerialClient)).scalar_one() == clients == 3
    after = _scans(client, history["genuine"])
    assert after["count"] == before["count"] + 1 == 5 and after["first_seen"] == before["first_seen"]
    audited = session.execute(select(AuditEvent).where(AuditEvent.action == "scans.purge")).scalar_one()
    assert audited.actor == "system"
    assert audited.detail["deleted"] == 2 and audited.detail["before"].startswith(str(cutoff.year))


def test_a_retention_shorter_than_the_clone_check_needs_is_refused(session, history):
    with pytest.raises(Invalid) as refused:
        ScanRetention(session).cutoff(SYSTEM, keep_days=29)
    assert refused.value.code == "RETENTION_TOO_SHORT"
    for role in (Role.PRODUCER, Role.INSPECTOR, Role.PARTNER):
        with pytest.raises(Forbidden):
            ScanRetention(session).cutoff(Actor(role=role, producer_id="prd-x"), keep_days=365)
    assert session.execute(select(func.count()).select_from(ScanEvent)).scalar_one() == 3


def test_the_command_deletes_in_batches_and_says_how_many(runner, session, history):
    out = runner.invoke(args=["scans", "purge", "--keep-days", "365"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("2 scan event(s) recorded before 20")
    assert out.output.rstrip().endswith("deleted; the counters of serials and batches are kept")
    session.expire_all()
    assert session.execute(select(func.count()).select_from(ScanEvent)).scalar_one() == 1
    session.rollback()  # end this read: SQLite's writer would wait for it
    out = runner.invoke(args=["scans", "purge", "--keep-days", "7"])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "Error: RETENTION_TOO_SHORT: keep at least 30 days of scan events" in out.output
    out = runner.invoke(args=["scans", "purge", "--keep-days", "365"])
    assert out.exit_code == 0 and out.output.startswith("0 scan event(s)")
