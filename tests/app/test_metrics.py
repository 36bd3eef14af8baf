"""Prometheus metrics (``app.metrics``): off without METRICS_TOKEN, behind it with one, and what
they count: requests by route and status, their latency, verifications by channel and verdict, the
scan writer's backlog and failures."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from app.config import ConfigError, load_config
from registry.db import make_engine, make_session_factory
from registry.services import SYSTEM
from tests.conftest import BASE_URL, another_app, batch_data

TOKEN = "m" * 40


def _scrape(client) -> dict[tuple[str, tuple], float]:
    """Each sample of /metrics by its name and labels."""
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST  # Prometheus' text format, once
    assert answer.headers["Cache-Control"] == "no-store"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for s in family.samples}


def _sample(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metered(app):
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], METRICS_TOKEN=TOKEN,
                     BASE_URL=BASE_URL, SCAN_SALT="salt", SCAN_FLUSH_SECONDS="0.05") as application:
        yield application


def test_without_a_token_there_are_no_metrics(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_the_metrics_answer_only_with_their_token(metered):
    client = metered.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "NOT_FOUND"
    assert _scrape(client)  # and with it, figures


def test_requests_verifications_and_the_scan_backlog_are_counted(metered, registry, session, world):
    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    code = registry.batch_url(batch, signed=True)
    session.commit()  # SQLite: nothing held, for the scan writer
    client = metered.test_client()
    before = _scrape(client)
    for _ in range(3):
        assert client.get("/api/v1/verify", query_string={"code": code}).status_code == 200
    assert client.get("/api/v1/verify", query_string={"code": "x" * 5000}).status_code == 422
    assert client.get("/no/such/page/123").status_code == 404
    assert client.open("/api/v1/verify", method="BREW").status_code == 405
    after = _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    verify = {"route": "/api/v1/verify", "method": "GET"}
    assert grew("origin_http_request_duration_seconds_count", **verify, status="200") == 3
    assert grew("origin_http_request_duration_seconds_bucket", **verify, status="200", le="+Inf") == 3
    assert grew("origin_http_request_duration_seconds_count", **verify, status="422") == 1
    assert grew("origin_http_request_duration_seconds_count", route="unmatched", method="GET", status="404") == 1
    assert grew("origin_verifications_total", channel="api", verdict="genuine") == 3
    assert not any(("route", "/metrics") in labels for _, labels in after)  # the scrapes themselves are not counted
    # no label holds what a client sent: its path, its method
    assert not any(value in ("/no/such/page/123", "BREW") for _, labels in after for _, value in labels)
    assert grew("origin_http_request_duration_seconds_count", route="unmatched", method="other", status="405") == 1


def _until(client, check, seconds: float = 10.0) -> dict:
    """Scrape until ``check(samples)`` holds (the scan writer's thread reports after each flush)."""
    deadline = time.monotonic() + seconds
    while True:
        samples = _scrape(client)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_the_scan_writers_thread_reports_its_backlog_and_its_refused_flushes(metered, registry, session, world,
                                                                             tmp_path):
    """The writer's own thread, flushing every 50 ms: while the database refuses its flushes (here
    one without the tables) the events stay pending and each refusal is counted; once it takes
    them, nothing is pending."""
    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    code = registry.batch_url(batch, signed=True)
    session.commit()  # SQLite: nothing held, for the scan writer
    client = metered.test_client()
    writer = metered.extensions["scan_writer"]
    working = writer._factory
    writer._factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}"))
    try:
        before = _scrape(client)
        for _ in range(3):
            assert client.get("/api/v1/verify", query_string={"code": code}).status_code == 200

        def refused(samples) -> float:
            return (_sample(samples, "origin_scan_flush_failures_total")
                    - _sample(before, "origin_scan_flush_failures_total"))

        failing = _until(client, lambda samples: refused(samples) >= 2)
        assert refused(failing) >= 2 and _sample(failing, "origin_scan_events_pending") == 3
    finally:
        writer._factory = working  # the database takes the writes again
    written = _until(client, lambda samples: _sample(samples, "origin_scan_events_pending") == 0)
    assert _sample(written, "origin_scan_events_pending") == 0
    assert _sample(written, "origin_scan_spool_files") == 0


def test_production_refuses_a_short_metrics_token():
    env = {"APP_ENV": "production", "KEY_PASSPHRASE": "p" * 16, "SECRET_KEY": "s" * 32, "SCAN_SALT": "salt",
           "BASE_URL": "https://verify.example.vn", "METRICS_TOKEN": "short"}
    with pytest.raises(ConfigError, match="METRICS_TOKEN of 32"):
        load_config(env)
    assert load_config({**env, "METRICS_TOKEN": TOKEN})["METRICS_TOKEN"] == TOKEN
    assert load_config({**env, "METRICS_TOKEN": ""})["METRICS_TOKEN"] is None
