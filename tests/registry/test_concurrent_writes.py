"""Writers racing on the same rows, in two real transactions (SQLite, and PostgreSQL when
``TEST_DATABASE_URL`` is set, where they really run side by side): the second waits for the first
and then sees what it wrote. Before these locks, on PostgreSQL, two serial issuances lost one's
count, two recalls were both logged, and a key revocation deadlocked with a registration (found
by a concurrency audit on 2026-11-23)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from registry.accounts import AccountService, TokenAdmin
from registry.errors import Conflict, Unauthorized
from registry.reports import ReportInput, ReportLimits, ReportService, TooManyReports
from registry.models import ApiToken, Batch, LogEntry, Report, Serial
from registry.services import SYSTEM, Actor, Registry, Role, TokenService
from tests.conftest import GTIN, batch_data

WAIT = 0.5  # seconds for the other transaction to reach its lock


@pytest.fixture
def second(app):
    """Another request's session and registry, used from another thread."""
    session = app.extensions["session_factory"]()
    yield Registry(session, keystore=app.extensions["keystore"], base_url=app.config["BASE_URL"])
    session.rollback()
    session.close()


def _in_thread(work) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.fixture
def batch(registry, session, world):
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    registry.register_batch(producer, batch_data())
    session.commit()
    return producer


def test_two_issuances_at_once_both_count(registry, second, session, batch):
    registry.issue_serials(batch, GTIN, "LOT-1", 30)  # holds the batch until it commits
    thread, outcome = _in_thread(lambda: (second.issue_serials(batch, GTIN, "LOT-1", 20), second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert "error" not in outcome, outcome
    row = session.execute(select(Batch).where(Batch.lot == "LOT-1").execution_options(populate_existing=True)).scalar_one()
    assert row.serial_count == 50
    assert session.scalar(select(func.count()).select_from(Serial)) == 50


def test_two_recalls_at_once_log_one(registry, second, session, batch):
    registry.recall(batch, GTIN, "LOT-1", reason="first")
    thread, outcome = _in_thread(lambda: second.recall(batch, GTIN, "LOT-1", reason="second"))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "BATCH_RECALLED", outcome
    second.session.rollback()
    kinds = session.scalars(select(LogEntry.kind).where(LogEntry.kind == "recall")).all()
    assert kinds == ["recall"]


def test_two_corrections_at_once_become_two_versions(registry, second, session, batch):
    """The second waits for the first, reads the batch afresh and corrects what the first wrote:
    versions 2 and 3, each naming the one before; neither is lost."""
    def fix(quantity: int) -> dict:
        return {**batch_data(), "quantity": quantity}

    registry.correct_batch(batch, GTIN, "LOT-1", fix(41), reason="first")
    thread, outcome = _in_thread(lambda: (second.correct_batch(batch, GTIN, "LOT-1", fix(42), reason="second"),
                                          second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert "error" not in outcome, outcome
    row = session.execute(select(Batch).where(Batch.lot == "LOT-1").execution_options(populate_existing=True)).scalar_one()
    assert (row.record["version"], row.record["quantity"], row.record["reason"]) == (3, 42, "second")
    versions = registry.batch_view(row)["versions"]
    assert [(v["version"], v["record"].get("quantity")) for v in versions] == [(1, 100), (2, 41)]
    assert row.record["supersedes"]["index"] == versions[1]["log"]["index"]
    assert session.scalar(select(func.count()).select_from(LogEntry).where(LogEntry.kind == "origin-record")) == 3


def test_a_correction_waits_for_a_recall_and_keeps_it(registry, second, session, batch):
    registry.recall(batch, GTIN, "LOT-1", reason="mould")
    thread, outcome = _in_thread(lambda: (second.correct_batch(batch, GTIN, "LOT-1", {**batch_data(), "quantity": 7},
                                                               reason="recount"), second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert "error" not in outcome, outcome
    row = session.execute(select(Batch).where(Batch.lot == "LOT-1").execution_options(populate_existing=True)).scalar_one()
    assert row.status == "recalled" and row.record["version"] == 2


def test_no_serials_after_a_recall_that_raced_them(registry, second, session, batch):
    registry.recall(batch, GTIN, "LOT-1", reason="contamination")
    thread, outcome = _in_thread(lambda: second.issue_serials(batch, GTIN, "LOT-1", 5))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "BATCH_RECALLED", outcome


def test_a_revocation_waits_for_a_registration_instead_of_deadlocking(registry, second, session, world):
    """A writer holds the log (an admission, a recall...) and then registers a batch, whose
    foreign key needs the producer's key row; meanwhile the key is being revoked."""
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    registry.log().lock()
    thread, outcome = _in_thread(lambda: (second.revoke_key(SYSTEM, world.kid, compromised_at=None),
                                          second.session.commit()))
    time.sleep(WAIT)  # the revocation is waiting, on the log or (before the fix) on the log after the key
    registry.register_batch(producer, batch_data(lot="LOT-2"))
    session.commit()
    thread.join()
    assert "error" not in outcome, outcome
    assert registry.session.get(Batch, registry.batch(GTIN, "LOT-2").id) is not None


def test_one_clients_reports_sent_at_once_keep_to_its_limit(session, second):
    limits = ReportLimits(per_client_per_hour=1)
    report = ReportInput.from_mapping({"code": "8936000010010", "where_kind": "market", "where_text": "Chợ Lớn"}, [])
    ReportService(session, limits=limits).create(report, client_hash="c" * 32)
    thread, outcome = _in_thread(lambda: ReportService(second.session, limits=limits).create(report,
                                                                                               client_hash="c" * 32))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), TooManyReports), outcome
    second.session.rollback()
    assert session.scalar(select(func.count()).select_from(Report)) == 1


def test_one_username_created_twice_at_once_is_a_conflict(session, second):
    """The second request checked the name before the first committed it: its insert then meets
    the unique index, which is USER_EXISTS, not a bare database error."""
    new_user = {"username": "lan", "password": "a long enough password", "role": "inspector"}
    AccountService(session).create_user(SYSTEM, **new_user)
    thread, outcome = _in_thread(lambda: AccountService(second.session).create_user(SYSTEM, **new_user))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "USER_EXISTS", outcome


def _parent_token(session, world) -> tuple[str, ApiToken]:
    authority = Actor(role=Role.AUTHORITY, name="user:boss")
    plain, parent = TokenAdmin(session).create(authority, role="producer", producer_id=world.producer_id)
    session.commit()
    return plain, parent


def _create_with(session, plain: str) -> ApiToken:
    """What POST /tokens does with the parent as its bearer token: authenticate, then create. The
    parent's row stays in the session as it was read (as after any earlier read in the request),
    so the creation must read it afresh under its lock."""
    actor = TokenService(session).authenticate(plain)
    parent = session.execute(select(ApiToken).where(ApiToken.token_hash == TokenService.hash(plain))).scalar_one()
    child = TokenAdmin(session).create(actor, role="producer", days=5)[1]
    assert child.created_by_token_id == parent.id
    return child


def _working_children(session, parent: ApiToken) -> list[int]:
    return list(session.scalars(select(ApiToken.id).where(ApiToken.created_by_token_id == parent.id,
                                                          ApiToken.revoked_at.is_(None))))


def test_a_token_made_while_its_parent_is_revoked_is_refused(session, second, world):
    """The request authenticated with the parent before the revocation committed; before the lock,
    on PostgreSQL, it then made a child that outlived the revocation (found by an API race test)."""
    plain, parent = _parent_token(session, world)
    TokenAdmin(session).revoke(SYSTEM, parent.id)  # holds the parent until it commits
    thread, outcome = _in_thread(lambda: (_create_with(second.session, plain), second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Unauthorized) and outcome["error"].code == "TOKEN_INVALID", outcome
    second.session.rollback()
    assert _working_children(session, parent) == []


def test_a_revocation_waits_for_a_token_being_made_and_revokes_it(session, second, world):
    plain, parent = _parent_token(session, world)
    child = _create_with(session, plain)  # holds the parent until it commits
    thread, outcome = _in_thread(lambda: (TokenAdmin(second.session).revoke(SYSTEM, parent.id),
                                          second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert "error" not in outcome, outcome
    assert child.id is not None and _working_children(session, parent) == []


def test_a_token_made_while_its_maker_is_deactivated_is_refused(session, second, world):
    """A person's token being made while the authority deactivates them: refused, not left working
    beside the revoked others (deactivation revokes the tokens an account created)."""
    lan = AccountService(session).create_user(SYSTEM, username="lan", password="a long enough password",
                                              role="authority")
    session.commit()
    AccountService(session).deactivate(SYSTEM, "lan")  # holds the user's row until it commits
    maker = Actor(role=Role.AUTHORITY, name="user:lan")
    thread, outcome = _in_thread(lambda: (TokenAdmin(second.session).create(maker, role="partner", days=5),
                                          second.session.commit()))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Unauthorized) and outcome["error"].code == "ACCOUNT_INACTIVE", outcome
    second.session.rollback()
    assert session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None),
                                                                            ApiToken.created_by_user_id == lan.id)) == 0


def test_no_serials_signed_by_a_key_revoked_meanwhile(registry, second, session, world, batch):
    """A revocation holds the key; serials issued at the same moment wait for it and then find no
    key that may sign them (they had been signed by the key being revoked)."""
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    thread, outcome = _in_thread(lambda: second.issue_serials(batch, GTIN, "LOT-1", 5))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "NO_ACTIVE_KEY", outcome
    second.session.rollback()
    assert session.scalar(select(func.count()).select_from(Serial)) == 0


def test_no_batch_registered_with_a_key_revoked_meanwhile(registry, second, session, world, batch):
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    thread, outcome = _in_thread(lambda: second.register_batch(batch, batch_data(lot="LOT-2")))
    time.sleep(WAIT)
    session.commit()
    thread.join()
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "NO_ACTIVE_KEY", outcome
    second.session.rollback()
    assert session.scalars(select(Batch.lot)).all() == ["LOT-1"]
