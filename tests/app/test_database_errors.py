"""The database's own refusals that no service foresaw reach clients as what they are: a write
that met another one made at the same time is 409, a database that is busy, locked or whose
connection was lost is 503 with Retry-After. Both had been 500 INTERNAL_ERROR (found by a
concurrency audit on PostgreSQL, 2026-11-23). The errors here are the real database's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.services import db_session
from registry.models import Batch, ScanEvent, Serial
from registry.services import SYSTEM
from tests.conftest import GTIN, PG_URL, REPO, TEST_PASSPHRASE, another_app, batch_data, lock_held


@pytest.fixture
def routes(app):
    @app.route("/api/v1/_test/write-twice")  # GET: routes outside the API blueprint need CSRF for POST
    @app.route("/_test/write-twice", endpoint="write_twice_page")
    def write_twice():
        db_session().execute(text("INSERT INTO log_state (id, size) VALUES (1, 0)"))  # id 1 exists
        db_session().flush()
        return "unreachable"

    @app.route("/api/v1/_test/database-gone")
    def database_gone():
        if PG_URL:  # the server ends this very connection
            db_session().execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return "unreachable"
        # SQLite: another writer holds the write lock longer than this one waits for it
        with app.extensions["engine"].connect() as connection:
            sqlite = connection.connection.driver_connection  # not begun yet: wait 50 ms, not 30 s
            sqlite.execute("PRAGMA busy_timeout = 50")
            try:
                connection.exec_driver_sql("UPDATE log_state SET size = size WHERE id = 1")
            finally:
                sqlite.execute(f"PRAGMA busy_timeout = {round(app.config['DB_LOCK_TIMEOUT_SECONDS'] * 1000)}")
        return "unreachable"

    return app


def test_a_write_that_met_another_is_409(routes, client):
    with routes.app_context():
        db_session().execute(text("INSERT INTO log_state (id, size) VALUES (1, 0) ON CONFLICT DO NOTHING"))
        db_session().commit()
    response = client.get("/api/v1/_test/write-twice")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "CONFLICT"
    page = client.get("/_test/write-twice", headers={"Accept": "text/html", "Accept-Language": "vi"})
    assert page.status_code == 409
    assert "Có người khác vừa thay đổi nội dung này cùng lúc" in page.get_data(as_text=True)
    assert client.get("/api/v1/log/checkpoint").status_code in (200, 404)  # still serving


def test_a_database_busy_or_gone_is_503_with_retry_after(routes, client, app):
    holder = None
    if not PG_URL:  # hold the write lock from another connection
        holder = app.extensions["engine"].connect()
        holder.begin()  # BEGIN IMMEDIATE: the write lock
    try:
        response = client.get("/api/v1/_test/database-gone")
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    if PG_URL:  # the connection lost
        assert error["message"] == "the database is busy or unreachable: retry in a moment"
        assert response.headers["Retry-After"] == "1"
    else:  # a lock waited for past the busy timeout
        assert error["message"].startswith("another write holds what this one needs")
        assert response.headers["Retry-After"] == "5"
    assert client.get("/api/v1/trust-list").status_code == 200  # the next request is served


def test_verifying_while_the_database_is_down_is_503_with_retry_after(tmp_path):
    """PostgreSQL not running (nothing listens on its port) when a worker first verifies: the
    verification's own connection failed with the driver's error, which no handler knew, and
    every GET /verify answered 500 INTERNAL_ERROR."""
    from tests.app.test_rate_limits import _free_port

    with another_app(tmp_path, f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/x") as down:
        client = down.test_client()
        for code in ("08936000010010", "https://x.example/01/08936000010010/10/L1/21/S1?s=a.b"):
            response = client.get("/api/v1/verify", query_string={"code": code})
            assert response.status_code == 503, code
            assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert response.headers["Retry-After"] == "1"
        page = client.get("/01/08936000010010/10/L1", headers={"Accept": "text/html"})
        assert page.status_code == 503 and page.mimetype == "text/html"


def test_a_database_host_that_never_answers_is_503_after_the_connect_timeout(tmp_path):
    """A server that takes the connection and says nothing (hung, or behind a partition that lets
    the handshake through): libpq had waited with no end, and the request with it until gunicorn
    killed the worker at 60 s. It gives up after registry.db.CONNECT_TIMEOUT_SECONDS."""
    import socket

    from registry.db import CONNECT_TIMEOUT_SECONDS

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes each handshake; nothing ever reads or answers
        port = silent.getsockname()[1]
        with another_app(tmp_path, f"postgresql+psycopg://postgres@127.0.0.1:{port}/x") as hung:
            answer, waited = _answer_within(
                6 * CONNECT_TIMEOUT_SECONDS,
                lambda: hung.test_client().get("/api/v1/verify", query_string={"code": "08936000010010"}))
    assert answer is not None, f"no answer after {waited:.0f} s"
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert CONNECT_TIMEOUT_SECONDS - 1 <= waited < 4 * CONNECT_TIMEOUT_SECONDS


def _answer_within(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()``'s answer, or None when it has none after ``seconds`` (it would wait without end:
    it goes on in a thread of its own, and the test fails instead of hanging); and the time taken."""
    answered: list = []
    thread = threading.Thread(target=lambda: answered.append(call()), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=seconds)
    return (answered[0] if answered else None), time.monotonic() - started


def _serial_count(session) -> int:
    session.rollback()  # a fresh snapshot; on SQLite no lock kept
    try:
        return session.scalar(select(func.count()).select_from(Serial))
    finally:
        session.rollback()


def _refused_while_held(app, statement: str, call: Callable[[], Any]) -> dict[str, Any]:
    """``call()`` made while another transaction holds ``statement``'s lock, with a timeout of 1 s:
    it is refused with 503 and ``Retry-After: 5`` after 1 to 10 s (not left waiting); its error,
    whose reference the answer's header names, without that reference."""
    with lock_held(app, statement):
        refused, waited = _answer_within(20, call)
    assert refused is not None, f"no answer after {waited:.0f} s"
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == "5"
    assert 1 <= waited < 10
    error = refused.get_json()["error"]
    assert error.pop("reference") == refused.headers["X-Request-ID"]
    return error


LOCK_WAIT = "another write holds what this one needs, for longer than the service waits: retry in a moment"


def test_a_write_held_up_past_the_lock_timeout_is_503_and_writes_nothing(app, registry, session, world):
    """Another transaction holds the batch's row (PostgreSQL: an operator's open psql session, a
    migration) or, on SQLite, the write lock: issuing serials had waited until gunicorn killed the
    worker at 60 s, its pending scan events with it (on PostgreSQL without end, SQLite gave up after
    30 s). It gives up after ``DB_LOCK_TIMEOUT_SECONDS`` and says so; once the lock is gone the same
    request is served."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    producer = {"Authorization": f"Bearer {world.tokens['producer']}"}
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], BASE_URL=app.config["BASE_URL"],
                     DB_LOCK_TIMEOUT_SECONDS="1") as served:
        client = served.test_client()

        def issue():
            return client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": 3}, headers=producer)

        assert _refused_while_held(app, "SELECT id FROM batches FOR UPDATE", issue) == {
            "code": "SERVICE_UNAVAILABLE", "message": LOCK_WAIT}
        assert _serial_count(session) == 0
        issued = issue()
        assert issued.status_code == 201, issued.get_data(as_text=True)
    assert _serial_count(session) == 3


def test_the_command_line_held_up_past_the_lock_timeout_refuses_without_a_traceback(app, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    env = {**os.environ, "INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "KEY_PASSPHRASE": TEST_PASSPHRASE,
           "SECRET_KEY": "t" * 32, "DATABASE_URL": app.config["DATABASE_URL"], "DB_LOCK_TIMEOUT_SECONDS": "1"}
    with lock_held(app, "SELECT id FROM batches FOR UPDATE"):
        done = subprocess.run([sys.executable, "-m", "app", "batch", "serials", GTIN, "LOT-1", "--count", "2"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"Error: DATABASE_UNAVAILABLE: {LOCK_WAIT} (")
    assert _serial_count(session) == 0


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's table locks (SQLite's readers never wait for a writer)")
def test_verification_behind_a_table_lock_is_503_after_the_read_timeout(app, registry, session, world):
    """``ALTER TABLE`` or ``VACUUM FULL`` holds its table's ACCESS EXCLUSIVE lock: verification's
    reads had waited for it without end. They give up after ``DB_READ_TIMEOUT_SECONDS``."""
    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    code = registry.batch_url(batch, signed=True)
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], BASE_URL=app.config["BASE_URL"],
                     DB_READ_TIMEOUT_SECONDS="1") as served:
        client = served.test_client()

        def verify():
            return client.get("/api/v1/verify", query_string={"code": code})

        assert _refused_while_held(app, "LOCK TABLE batches IN ACCESS EXCLUSIVE MODE", verify) == {
            "code": "SERVICE_UNAVAILABLE", "message": "the database took too long to answer: retry in a moment"}
        verified = verify()
        assert verified.status_code == 200 and verified.get_json()["verdict"] == "genuine"


@pytest.mark.skipif(not PG_URL, reason="a PostgreSQL session that takes no writes (a standby's)")
def test_a_database_that_takes_no_writes_is_503_for_writes_and_verification_goes_on(app, registry, session, world):
    """The service pointed at a database in read-only mode (a standby named by mistake, a
    failover in progress): each write had answered 500 INTERNAL_ERROR. Now 503 with Retry-After,
    and what only reads is served."""
    from sqlalchemy import make_url

    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    code = registry.batch_url(batch, signed=True)
    url = make_url(app.config["DATABASE_URL"]).update_query_dict(
        {"options": "-c default_transaction_read_only=on"}).render_as_string(hide_password=False)
    with another_app(app.config["INSTANCE_DIR"], url) as standby:
        client = standby.test_client()
        refused = client.post("/api/v1/batches", json=batch_data(lot="LOT-2"),
                              headers={"Authorization": f"Bearer {world.tokens['producer']}"})
        assert refused.status_code == 503, refused.get_data(as_text=True)
        error = refused.get_json()["error"]
        assert error.pop("reference") == refused.headers["X-Request-ID"]
        assert error == {
            "code": "SERVICE_UNAVAILABLE",
            "message": "the database takes no writes right now (a standby, or a failover in progress): "
                       "retry in a moment"}
        assert refused.headers["Retry-After"] == "5"
        verified = client.get("/api/v1/verify", query_string={"code": code})
        assert verified.status_code == 200 and verified.get_json()["verdict"] == "genuine"
        ready = client.get("/readyz")  # reported; the server stays in: verification only reads
        assert ready.status_code == 200 and ready.get_json()["checks"]["database_writes"] == "refused"
        writer = standby.extensions["scan_writer"]
        with pytest.raises(SQLAlchemyError):
            writer.flush()  # the verification's scan event cannot be written there: it is kept
        assert writer.backlog()[0] == 1
        writer._factory = app.extensions["session_factory"]  # the database takes writes again
        writer.close()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 1  # written once it could be
    assert session.scalar(select(func.count()).select_from(Batch).where(Batch.lot == "LOT-2")) == 0


@pytest.mark.skipif(not PG_URL, reason="a read replica's conflicts with recovery are PostgreSQL's")
def test_a_read_a_replica_cancels_for_a_conflict_with_recovery_is_run_again_once(app):
    """A hot standby cancels a query when replaying the primary's VACUUM would remove rows it
    might need (SQLSTATE 40001, "conflict with recovery"); a verification read through
    ``READ_DATABASE_URL`` had answered 503 at the first one. Verification reads run again once, as
    after a dropped connection; a second cancellation in a row is still refused. The error here is
    raised by the server itself, by a function that fails as a standby's query does: no standby
    runs on the test machines."""
    from registry.db import RawQuery, Reader

    with app.extensions["engine"].begin() as connection:
        connection.exec_driver_sql("CREATE SEQUENCE recovery_conflicts")
        connection.exec_driver_sql("""
            CREATE FUNCTION cancelled_by_recovery(times int) RETURNS int LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('recovery_conflicts') <= times THEN  -- not rolled back with the error
                    RAISE EXCEPTION 'canceling statement due to conflict with recovery'
                        USING ERRCODE = 'serialization_failure',
                              DETAIL = 'User query might have needed to see row versions that must be removed.';
                END IF;
                RETURN currval('recovery_conflicts');
            END $$""")
    try:
        reader = Reader(app.extensions["read_connections"])
        assert RawQuery("SELECT cancelled_by_recovery(1)").first(reader, {}) == (2,)  # cancelled once, then read
        with app.extensions["engine"].begin() as connection:
            connection.exec_driver_sql("SELECT setval('recovery_conflicts', 1, false)")
        with pytest.raises(SQLAlchemyError, match="conflict with recovery") as refused:
            RawQuery("SELECT cancelled_by_recovery(2)").first(reader, {})
        assert refused.value.orig.sqlstate == "40001"
        assert RawQuery("SELECT cancelled_by_recovery(2)").first(reader, {}) == (3,)  # the connection still serves
    finally:
        with app.extensions["engine"].begin() as connection:
            connection.exec_driver_sql("DROP FUNCTION cancelled_by_recovery(int)")
            connection.exec_driver_sql("DROP SEQUENCE recovery_conflicts")
