"""GET /api/v1/audit-events: the authority's reading of the audit trail through the API."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from registry.audit import audit
from registry.services import Role, TokenService

URL = "/api/v1/audit-events"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def trail(session, world):
    for i in range(5):
        audit(session, T0 + timedelta(minutes=i), "user:an", "batch.recall", f"08936000010012/L{i}", reason=f"r{i}")
    audit(session, T0 + timedelta(minutes=9), "token:3", "user.unlock", "user:binh")
    session.commit()


def test_a_token_actor_comes_with_its_label(client, world, session):
    """``token:12`` alone says nothing to whoever reads the trail: its label comes with it (none for
    people, the system, unlabelled tokens and tokens the registry does not hold)."""
    _, labelled = TokenService(session).create(role=Role.PARTNER, label="Cục QLTT: đồng bộ <ERP>")
    for minute, name in enumerate((f"token:{labelled.id}", "token:3", "token:999999", "user:an", "system")):
        audit(session, T0 + timedelta(minutes=minute), name, "user.unlock", "user:binh")
    session.commit()
    items = client.get(URL + "?action=user.unlock", headers=world.auth("authority")).get_json()["items"]
    assert [(e["actor"], e["actor_label"]) for e in items] == [
        ("system", None), ("user:an", None), ("token:999999", None), ("token:3", None),
        (f"token:{labelled.id}", "Cục QLTT: đồng bộ <ERP>")]


def test_newest_first_with_what_each_event_says(client, world, trail):
    response = client.get(URL + "?limit=3", headers=world.auth("authority"))
    assert response.status_code == 200
    body = response.get_json()
    assert [e["action"] for e in body["items"]] == ["user.unlock", "batch.recall", "batch.recall"]
    assert body["items"][1] == {"id": body["items"][1]["id"], "at": "2026-12-01T08:04:00Z", "actor": "user:an",
                                "actor_label": None, "action": "batch.recall", "target": "08936000010012/L4",
                                "detail": {"reason": "r4"}}
    assert body["next_before"] == body["items"][-1]["id"]


def test_the_next_page_follows_the_link_with_the_same_filters(client, world, trail):
    auth = world.auth("authority")
    first = client.get(URL + "?action=batch.recall&limit=2", headers=auth)
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and "action=batch.recall" in link
    following = urlsplit(link[1:link.index(">")])
    second = client.get(f"{following.path}?{following.query}", headers=auth).get_json()
    assert [e["target"] for e in second["items"]] == ["08936000010012/L2", "08936000010012/L1"]
    last = client.get(f"{URL}?action=batch.recall&limit=2&before={second['next_before']}", headers=auth)
    assert [e["target"] for e in last.get_json()["items"]] == ["08936000010012/L0"]
    assert last.get_json()["next_before"] is None and "Link" not in last.headers


def test_filters_by_actor_target_and_time(client, world, trail):
    auth = world.auth("authority")
    assert [e["target"] for e in client.get(URL + "?actor=token:3", headers=auth).get_json()["items"]] == ["user:binh"]
    assert len(client.get(URL + "?target=08936000010012/L2", headers=auth).get_json()["items"]) == 1
    window = client.get(URL, query_string={"since": "2026-12-01T15:01:00+07:00", "until": "2026-12-01T08:03:00Z",
                                           "action": "batch.recall"}, headers=auth).get_json()["items"]
    assert [e["target"] for e in window] == ["08936000010012/L2", "08936000010012/L1"]


@pytest.mark.parametrize("query,code", [
    ("limit=0", "VALIDATION_FAILED"),
    ("limit=201", "VALIDATION_FAILED"),
    ("before=0", "VALIDATION_FAILED"),
    ("before=99999999999999999999", "VALIDATION_FAILED"),
    ("action=batch.delete", "VALIDATION_FAILED"),
    ("since=2026-12-01T08:00:00", "VALIDATION_FAILED"),  # a time without its zone
    ("actor=" + "u" * 201, "VALIDATION_FAILED"),
    ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "BAD_PERIOD"),
])
def test_what_cannot_be_searched_is_a_clear_422(client, world, trail, query, code):
    response = client.get(f"{URL}?{query}", headers=world.auth("authority"))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("role", ["producer", "inspector", "partner"])
def test_other_roles_are_refused(client, world, role):
    response = client.get(URL, headers=world.auth(role))
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "ROLE_FORBIDDEN"
