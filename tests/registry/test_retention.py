"""Scan events older than the retention are deleted (``registry.retention``, ``scans purge``); the
counters a verification answers with, and which clients saw each serial, are kept."""

from __future__ import annotations

import re
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
    # a retention no date can hold: said, not a traceback (OverflowError), for both commands
    for args in (["scans", "purge", "--keep-days", "800000"], ["scans", "purge", "--keep-days", "99999999999"],
                 ["reports", "forget-contacts", "--closed-days", "800000"]):
        out = runner.invoke(args=args)
        assert out.exit_code != 0 and "Traceback" not in out.output and out.exception.__class__ is SystemExit
        assert "Error: RETENTION_TOO_LONG: keep at most 36,500 days (a century)" in out.output, out.output


# -- shoppers' contacts on reports whose case was decided long ago --------------------------------

def _report(session, seller: str, *, contact: str = "0901 234 567", client_hash: str | None = "c" * 32):
    from registry.reports import ReportInput, ReportService

    filed = ReportService(session).create(ReportInput(code="8936000010010", where_kind="market", where_text="Chợ Lớn",
                                                      seller=seller, contact=contact), client_hash=client_hash)
    session.flush()
    return filed


def _decide(session, filed, *, to: str, days_ago: int) -> None:
    from registry.cases import CaseService

    moment = utcnow() - timedelta(days=days_ago)
    cases = CaseService(session, clock=lambda: moment)
    if to == "confirmed":
        cases.transition(SYSTEM, filed.report.case_number, to="investigating")
    cases.transition(SYSTEM, filed.report.case_number, to=to, text="đã kiểm tra")


@pytest.fixture
def decided(session):
    """Six reports: decided 400 days ago (dismissed, confirmed), 10 days ago, still open, decided
    400 days ago then reopened, and one decided long ago whose shopper left no contact."""
    filed = {name: _report(session, name) for name in ("dismissed", "confirmed", "recent", "open", "reopened")}
    filed["none given"] = _report(session, "none given", contact="", client_hash=None)
    _decide(session, filed["dismissed"], to="dismissed", days_ago=400)
    _decide(session, filed["confirmed"], to="confirmed", days_ago=400)
    _decide(session, filed["recent"], to="dismissed", days_ago=10)
    _decide(session, filed["reopened"], to="dismissed", days_ago=400)
    _decide(session, filed["reopened"], to="investigating", days_ago=5)
    _decide(session, filed["none given"], to="dismissed", days_ago=400)
    session.commit()
    return filed


def test_contacts_of_cases_decided_long_ago_are_removed_and_the_rest_stays(session, decided):
    from registry.cases import CaseService
    from registry.reports import ReportService
    from registry.retention import ContactRetention

    before, forgotten = ContactRetention(session).forget(SYSTEM, closed_days=365)
    session.commit()
    assert forgotten == 2 and before < utcnow() - timedelta(days=364)
    for name, filed in decided.items():
        session.refresh(filed.report)
        gone = name in ("dismissed", "confirmed")
        assert (filed.report.contact == "") is (gone or name == "none given"), name
        assert (filed.report.client_hash is None) is (gone or name == "none given"), name
        assert (filed.report.contact_removed_at is not None) is gone, name  # none given: nothing was removed
        # what was reported stays, and the shopper still reads how it ended
        assert filed.report.seller == name
        assert ReportService(session).followup(filed.report.case_number, filed.followup_code)["case_number"]
    view = CaseService(session).view(Actor(role=Role.INSPECTOR), decided["confirmed"].report)
    assert view["contact"] == "" and view["contact_removed_at"] == decided["confirmed"].report.contact_removed_at \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "reports.forget_contacts")).scalar_one()
    assert event.detail == {"closed_before": before.strftime("%Y-%m-%dT%H:%M:%SZ"), "reports": 2}
    assert ContactRetention(session).forget(SYSTEM, closed_days=365)[1] == 0  # once is enough


def test_contacts_are_kept_30_days_at_least_and_only_the_authority_removes_them(session, decided):
    from registry.retention import ContactRetention

    with pytest.raises(Invalid) as short:
        ContactRetention(session).forget(SYSTEM, closed_days=29)
    assert short.value.code == "RETENTION_TOO_SHORT"
    with pytest.raises(Forbidden):
        ContactRetention(session).forget(Actor(role=Role.INSPECTOR), closed_days=365)
    session.refresh(decided["dismissed"].report)
    assert decided["dismissed"].report.contact == "0901 234 567"


def test_the_command_line_removes_them_and_refuses_a_short_retention(app, runner, session, decided):
    done = runner.invoke(args=["reports", "forget-contacts", "--closed-days", "365"])
    assert done.exit_code == 0, done.output
    assert re.fullmatch(r"2 report\(s\) decided before \S+Z: the shopper's contact removed\n", done.output)
    refused = runner.invoke(args=["reports", "forget-contacts", "--closed-days", "7"])
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: RETENTION_TOO_SHORT: keep a shopper's contact at least 30 days")


def test_the_inspectors_case_page_says_the_contact_was_removed(client, session, decided):
    from registry.retention import ContactRetention
    from tests.app.portal_support import client_login, make_user

    ContactRetention(session).forget(SYSTEM, closed_days=365)
    make_user(session, "inspector1", "inspector")
    session.commit()
    client_login(client, "inspector1")
    removed = client.get(f"/portal/cases/{decided['dismissed'].report.case_number}").get_data(as_text=True)
    assert re.search(r"<dt>Thông tin liên hệ của người mua</dt><dd>đã xóa ngày \d{1,2} tháng \d{1,2} năm \d{4}, "
                     r"khi vụ việc đã được kết luận từ lâu</dd>", removed)
    kept = client.get(f"/portal/cases/{decided['recent'].report.case_number}").get_data(as_text=True)
    assert "<dd>0901 234 567</dd>" in kept
