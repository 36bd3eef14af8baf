"""The load balancer's probes: ``/healthz`` (the process answers) and ``/readyz`` (the database
answers through both pools, the schema is the code's), on real databases and a real Redis
stopped as an outage would."""

from __future__ import annotations

import contextlib

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

import app.health as health
from app.migrations import alembic_config
from registry.services import SYSTEM
from tests.app.test_rate_limits import _free_port, _redis_server
from tests.conftest import GTIN, another_app, batch_data


def _ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"  # data
    return response.status_code, response.get_json()


def test_healthz_answers_without_the_database(tmp_path):
    """Liveness: nothing but the process. An app whose database cannot even be opened answers."""
    with another_app(tmp_path, f"sqlite:///{tmp_path}/no/such/dir/r.db") as unreachable:
        response = unreachable.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "alive"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_served_instance_is_ready(client):
    status, body = _ready(client)
    assert status == 200 and body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "database_writes": "ok", "read_database": "ok", "schema": "ok",
                              "signing_keys": "ok", "producer_keys": "ok",
                              "rate_limit_counters": "in each worker",
                              "scan_events_pending": {"events": 0, "oldest_seconds": 0.0, "late": False,
                                                      "files": 0}}


def test_a_database_that_cannot_be_reached_is_not_ready_and_its_address_stays_unsaid(tmp_path, caplog):
    """PostgreSQL down (nothing listens on its port): 503 in the API's error shape; where the
    database is stays in the server's log."""
    with another_app(tmp_path, f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/registry") as down:
        status, body = _ready(down.test_client())
    assert status == 503
    assert body["error"]["code"] == "NOT_READY"
    assert body["error"]["message"] == ("this server cannot serve: database unreachable, "
                                        "read_database unreachable, schema unknown, signing_keys missing")
    assert body["error"]["checks"]["database"] == "unreachable"
    assert body["error"]["checks"]["producer_keys"] == "unknown"  # not asked again: one connect timeout
    assert "127.0.0.1" not in str(body)
    assert any("127.0.0.1" in record.getMessage() for record in caplog.records if record.name == "app.health")


@contextlib.contextmanager
def _schema_marked(app, revision: str):
    """The schema's recorded Alembic revision set to ``revision``, put back after."""
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})


def test_a_schema_behind_the_code_is_not_ready_and_one_ahead_of_it_is(app, client):
    """Behind (this release's migrations not applied): the code would meet tables it does not
    know. Ahead (a rolling upgrade migrated first, this server is still the older release): it
    serves until it is replaced, or every server would be taken out at once."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    before_head = script.get_revision(head).down_revision
    with _schema_marked(app, before_head):
        status, body = _ready(client)
        assert status == 503 and body["error"]["checks"]["schema"] == "migrations to apply"
        assert body["error"]["message"] == "this server cannot serve: schema migrations to apply"
    with _schema_marked(app, "f00dfacef00d"):
        status, body = _ready(client)
        assert status == 200 and body["checks"]["schema"] == "newer than this server"
    assert _ready(client)[0] == 200


def test_an_instance_not_initialised_is_not_ready(tmp_path):
    with another_app(tmp_path, f"sqlite:///{tmp_path}/r.db") as fresh:
        status, body = _ready(fresh.test_client())
    assert status == 503 and body["error"]["checks"]["schema"] == "not initialised"
    assert body["error"]["checks"]["signing_keys"] == "missing"


def test_a_server_whose_passphrase_does_not_open_the_keys_is_not_ready(app):
    """Another KEY_PASSPHRASE than the keys were encrypted with (a deployment's mistake): the
    server verifies, but every registration, recall or serial would fail on it."""
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"],
                     KEY_PASSPHRASE="not-the-passphrase") as wrong:
        status, body = _ready(wrong.test_client())
    assert status == 503 and body["error"]["message"] == "this server cannot serve: signing_keys cannot be opened"
    assert body["error"]["checks"]["database"] == "ok"


def test_producer_keys_missing_from_the_key_folder_are_reported_but_leave_the_server_ready(
        app, registry, session, world, caplog):
    """A server given a partial copy of the key folder instead of the shared one: the writes that
    sign for those producers would be refused (KEYS_UNAVAILABLE) while everything else works. Said
    by the probe and the log; the server stays in (a key just made elsewhere may lag on a shared
    folder, and every server would be taken out together)."""
    import os

    assert _ready(app.test_client())[1]["checks"]["producer_keys"] == "ok"
    key_file = app.config["KEY_DIR"] / f"{world.kid}.pem"
    os.rename(key_file, key_file.with_suffix(".elsewhere"))
    try:
        status, body = _ready(app.test_client())
        assert status == 200 and body["checks"]["producer_keys"] == "1 of 1 missing"
        assert any(world.kid in r.getMessage() for r in caplog.records if r.name == "app.health")
        # a revoked key signs nothing more: its file is not needed
        registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
        session.commit()
        assert _ready(app.test_client())[1]["checks"]["producer_keys"] == "ok"
    finally:
        os.rename(key_file.with_suffix(".elsewhere"), key_file)


def test_redis_down_is_reported_but_leaves_the_server_ready(app, tmp_path):
    """The rate limits then count in each server (app.extensions.RateLimiter): taking every server
    out because Redis is down would stop the verifications it no longer stops."""
    from app.cli import init_instance

    port = _free_port()
    with another_app(tmp_path, f"sqlite:///{tmp_path}/r.db", REDIS_URL=f"redis://127.0.0.1:{port}/0") as limited:
        init_instance(limited)
        with _redis_server(port):
            assert _ready(limited.test_client())[1]["checks"]["rate_limit_counters"] == "ok"
        status, body = _ready(limited.test_client())
    assert status == 200 and body["checks"]["rate_limit_counters"] == "unreachable: counting in each worker"


def test_scan_events_waiting_to_be_written_are_counted(app, client, registry, session, world, monkeypatch):
    """A verification's scan event waits for the scan writer's next flush: counted, with its age;
    "late" past SCAN_BACKLOG_LATE (the database refusing the writes); none once written."""
    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    (serial, s), = registry.issue_serials(SYSTEM, GTIN, "LOT-1", 1)
    session.commit()
    writer = app.extensions["scan_writer"]
    writer._interval = 3600  # no flush of its own during the test
    assert client.get("/api/v1/verify", query_string={"code": registry.serial_url(batch, serial, s)}).status_code == 200
    pending = _ready(client)[1]["checks"]["scan_events_pending"]
    assert pending["events"] == 1 and 0 <= pending["oldest_seconds"] < 60 and pending["late"] is False
    monkeypatch.setattr(health, "SCAN_BACKLOG_LATE", health.timedelta(0))
    status, body = _ready(client)
    assert status == 200 and body["checks"]["scan_events_pending"]["late"] is True  # reported, still ready
    writer.flush()
    assert _ready(client)[1]["checks"]["scan_events_pending"] == {"events": 0, "oldest_seconds": 0.0, "late": False,
                                                                        "files": 0}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_take_no_writes(client, path):
    assert client.post(path).status_code == 405
