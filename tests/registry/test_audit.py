"""The audit trail: one vocabulary of actions, written with each change, read by the authority only,
newest first, filtered, a page at a time by position."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from registry.audit import ACTIONS, AuditQuery, AuditTrail, audit
from registry.errors import Forbidden, Invalid
from registry.models import AuditEvent
from registry.services import SYSTEM, Actor, Role
from tests.conftest import batch_data

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
AUTHORITY = Actor(role=Role.AUTHORITY, name="user:an")


def _write(session, events) -> None:
    """(minutes after T0, actor, action, target) each, committed in order."""
    for minutes, actor, action, target in events:
        audit(session, T0 + timedelta(minutes=minutes), actor, action, target, n=minutes)
    session.commit()


@pytest.fixture
def trail(session):
    _write(session, [
        (0, "user:an", "user.login", "user:an"),
        (1, "user:an", "producer.admit", "P-1"),
        (2, "token:7", "batch.register", "08936000010012/L1"),
        (3, "token:7", "serials.issue", "08936000010012/L1"),
        (4, "user:binh", "user.login_failed", "user:binh"),
        (5, "user:an", "batch.recall", "08936000010012/L1"),
        (6, "user:binh", "user.login", "user:binh"),
    ])
    return AuditTrail(session)


def _minutes(page) -> list[int]:
    return [event["detail"]["n"] for event in page.events]


def test_an_unknown_action_is_refused_before_anything_is_written(session):
    with pytest.raises(ValueError, match="registry.audit.ACTIONS"):
        audit(session, T0, SYSTEM, "batch.delete", "08936000010012/L1")
    assert session.query(AuditEvent).count() == 0


def test_the_registry_writes_its_events_through_the_vocabulary(registry, session, world):
    """Registering, issuing serials and recalling: each change leaves its event, named by the actor."""
    before = session.query(AuditEvent).count()
    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="token:9")
    registry.register_batch(producer, batch_data(lot="AUD-1"))
    registry.issue_serials(producer, batch_data()["gtin"], "AUD-1", 3)
    registry.recall(producer, batch_data()["gtin"], "AUD-1", reason="mislabelled")
    session.commit()
    page = AuditTrail(session).search(AUTHORITY, limit=3)
    assert [(e["actor"], e["action"], e["target"]) for e in page.events] == [
        ("token:9", "batch.recall", f"{batch_data()['gtin']}/AUD-1"),
        ("token:9", "serials.issue", f"{batch_data()['gtin']}/AUD-1"),
        ("token:9", "batch.register", f"{batch_data()['gtin']}/AUD-1"),
    ]
    assert page.events[0]["detail"] == {"reason": "mislabelled"}
    assert session.query(AuditEvent).count() == before + 3
    assert {e.action for e in session.query(AuditEvent)} <= set(ACTIONS)


@pytest.mark.parametrize("role", [Role.PRODUCER, Role.INSPECTOR, Role.PARTNER])
def test_only_the_authority_reads_the_trail(trail, role):
    with pytest.raises(Forbidden) as caught:
        trail.search(Actor(role=role, producer_id="P-1" if role == Role.PRODUCER else None, name="user:x"))
    assert caught.value.code == "ROLE_FORBIDDEN"


def test_newest_first_with_every_field(trail):
    page = trail.search(AUTHORITY)
    assert _minutes(page) == [6, 5, 4, 3, 2, 1, 0] and page.next_before is None
    newest = page.events[0]
    assert newest["actor"] == "user:binh" and newest["action"] == "user.login" and newest["target"] == "user:binh"
    assert newest["at"] == "2026-12-01T08:06:00Z" and isinstance(newest["id"], int)


@pytest.mark.parametrize("query,expected", [
    (AuditQuery(actor="user:an"), [5, 1, 0]),
    (AuditQuery(actor="token:7"), [3, 2]),
    (AuditQuery(action="user.login"), [6, 0]),
    (AuditQuery(target="08936000010012/L1"), [5, 3, 2]),
    (AuditQuery(actor="user:an", target="08936000010012/L1"), [5]),
    (AuditQuery(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5)), [4, 3, 2]),
    (AuditQuery(since=T0 + timedelta(minutes=6)), [6]),
    (AuditQuery(until=T0 + timedelta(minutes=1)), [0]),
    (AuditQuery(actor="user:nobody"), []),
    (AuditQuery(actor="user:AN"), []),  # names are matched exactly
])
def test_filters(trail, query, expected):
    assert _minutes(trail.search(AUTHORITY, query)) == expected


def test_pages_by_position_neither_shift_nor_repeat_when_events_are_written_meanwhile(trail, session):
    first = trail.search(AUTHORITY, limit=3)
    assert _minutes(first) == [6, 5, 4] and first.next_before == first.events[-1]["id"]
    _write(session, [(7, "user:an", "user.logout", "user:an"), (8, "user:an", "user.login", "user:an")])
    second = trail.search(AUTHORITY, limit=3, before=first.next_before)
    assert _minutes(second) == [3, 2, 1]
    last = trail.search(AUTHORITY, limit=3, before=second.next_before)
    assert _minutes(last) == [0] and last.next_before is None
    # with a filter, the pages follow the filtered events
    logins = trail.search(AUTHORITY, AuditQuery(action="user.login"), limit=1)
    assert _minutes(logins) == [8]
    assert _minutes(trail.search(AUTHORITY, AuditQuery(action="user.login"), limit=5, before=logins.next_before)) \
        == [6, 0]


def test_a_full_last_page_says_no_more(trail):
    page = trail.search(AUTHORITY, limit=7)
    assert len(page.events) == 7 and page.next_before is None


@pytest.mark.parametrize("kwargs,code,field", [
    ({"limit": 0}, "BAD_LIMIT", "limit"),
    ({"limit": 201}, "BAD_LIMIT", "limit"),
    ({"before": 0}, "BAD_CURSOR", "before"),
    ({"query": AuditQuery(action="batch.delete")}, "UNKNOWN_ACTION", "action"),
    ({"query": AuditQuery(actor="u" * 201)}, "TOO_LONG", "actor"),
    ({"query": AuditQuery(target="t" * 201)}, "TOO_LONG", "target"),
    ({"query": AuditQuery(since=T0, until=T0)}, "BAD_PERIOD", "until"),
])
def test_what_cannot_be_searched_is_refused_clearly(trail, kwargs, code, field):
    with pytest.raises(Invalid) as caught:
        trail.search(AUTHORITY, **kwargs)
    assert (caught.value.code, caught.value.field) == (code, field)
