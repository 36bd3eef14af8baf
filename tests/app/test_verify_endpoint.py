"""GET /api/v1/verify's own plumbing: the query string, and the reads that survive a dropped connection."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import select, text

from registry.models import ScanEvent
from registry.services import Actor, Role
from tests.conftest import GTIN, PG_URL, batch_data


@pytest.fixture
def unit_url(registry, world, session):
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    (serial, s), = registry.issue_serials(actor, GTIN, "LOT-1", 1)
    session.commit()  # SQLite: end the fixture's transaction so the app can write
    return registry.serial_url(batch, serial, s)


@pytest.mark.parametrize("params, field", [
    ({"code": ""}, "code"),
    ({"code": "x" * 4097}, "code"),
    ({"client_id": "c" * 129}, "client_id"),
    ({"lat": "91", "lon": "0"}, "lat"),
    ({"lat": "north", "lon": "0"}, "lat"),
])
def test_bad_query_values_are_422_naming_the_field(client, unit_url, params, field):
    r = client.get("/api/v1/verify", query_string={"code": unit_url, **params})
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert field in error["fields"]["query"]


@pytest.mark.parametrize("extra", [{}, {"client_id": "c" * 128}, {"utm_source": "zalo"}, {"lat": "21.03", "lon": "105.85"}])
def test_good_queries_verify_whichever_way_they_are_read(client, unit_url, extra):
    r = client.get("/api/v1/verify", query_string={"code": unit_url, **extra})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["verdict"] == "genuine"


def test_api_answers_set_no_cookie_and_the_data_headers(client, unit_url):
    """An API answer is data, never a page: nothing in it may load, run or be framed."""
    r = client.get("/api/v1/verify", query_string={"code": unit_url})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    assert "Permissions-Policy" not in r.headers  # a page's header: the API has no camera to ask for
    error = client.get("/api/v1/verify", query_string={"code": ""})
    assert error.status_code == 422 and error.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_page_elsewhere_may_call_the_api_which_no_cache_keeps(client, unit_url, world):
    """A marketplace's product page verifies a code from its own origin; an agency's dashboard
    sends its token. The API had answered no CORS header, so browsers withheld every answer, and
    no Cache-Control, so a cache between could keep a verification's counts or a new token."""
    origin = {"Origin": "https://shop.example"}
    r = client.get("/api/v1/verify", query_string={"code": unit_url}, headers=origin)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers  # cookies never count here anyway
    assert r.headers["Cache-Control"] == "no-store"
    assert "Link" in r.headers["Access-Control-Expose-Headers"]  # paging, for the lists
    plain = client.get("/api/v1/verify", query_string={"code": unit_url})  # no page behind it: no CORS headers
    assert "Access-Control-Allow-Origin" not in plain.headers and plain.headers["Cache-Control"] == "no-store"
    preflight = client.open("/api/v1/batches", method="OPTIONS", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                 preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    # the token still decides: a cross-origin write without one is refused as any other
    denied = client.post("/api/v1/batches", json={}, headers=origin)
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == "*"
    # the pages keep to their own origin, and their cookies
    assert "Access-Control-Allow-Origin" not in client.get("/", headers=origin).headers


def test_production_answers_tell_browsers_to_keep_to_https(app, client, unit_url):
    """In production (an https BASE_URL), pages and data alike carry Strict-Transport-Security; a
    development server (plain http on a laptop) must not, or the browser would refuse it later."""
    from tests.conftest import another_app

    assert "Strict-Transport-Security" not in client.get("/").headers
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], APP_ENV="production",
                     SCAN_SALT="salt", BASE_URL=app.config["BASE_URL"]) as production:
        served = production.test_client()
        for response in (served.get("/", headers={"Accept-Language": "vi"}),
                         served.get("/api/v1/verify", query_string={"code": unit_url}),
                         served.get("/readyz")):
            assert response.status_code == 200
            assert response.headers["Strict-Transport-Security"] == "max-age=63072000"


@pytest.mark.skipif(not PG_URL, reason="a dropped server connection needs PostgreSQL")
def test_reads_survive_the_server_dropping_the_pooled_connection(app, client, unit_url, session):
    first = client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": "a"}).get_json()
    assert first["scans"]["count"] == 1
    held = app.extensions["read_connections"].get()  # the test client serves requests on this thread
    pid = held.info.backend_pid
    killed = session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    session.commit()
    assert killed
    second = client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": "b"})
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["verdict"] == "genuine" and second.get_json()["scans"]["count"] == 2
    assert app.extensions["read_connections"].get().info.backend_pid != pid  # the thread's new one


@pytest.mark.skipif(not PG_URL, reason="statements are prepared on PostgreSQL connections only")
def test_prepared_reads_answer_as_a_cursor_does_and_survive_discard_all(app, client, unit_url):
    """The hot read runs as a statement prepared on each connection (registry.db.RawQuery), its
    results in binary, read by loaders it keeps from its first row: it answers the values a psycopg
    cursor gives (text results), for each of the verification's reads and row after row, and a
    connection whose prepared statements were dropped (DISCARD ALL, as a pooler may send)
    prepares it again."""
    from registry.db import Reader
    from registry.lookup import _BATCH, _KEY, _PRODUCT
    from registry.scans import _UNIT_STATE
    from verification.parsing import parse_code

    client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": "a"})
    app.extensions["scan_writer"].flush()
    code = parse_code(unit_url)
    params = {"gtin": code.gtin, "lot": code.lot, "serial": code.serial, "client": "nobody", "writer": "none"}
    reader = Reader(app.extensions["read_connections"])
    prepared = _UNIT_STATE.first(reader, params)
    cursor = reader.dbapi_connection().cursor()
    cursor.execute(_UNIT_STATE._pyformat, params)
    assert prepared == cursor.fetchone()
    assert prepared[3] == 1 and prepared[5].tzinfo is not None  # scan_count, first_seen (aware)
    unknown = {**params, "serial": "NO-SUCH-UNIT"}  # the same statement, a row of NULLs this time
    cursor.execute(_UNIT_STATE._pyformat, unknown)
    assert _UNIT_STATE.first(reader, unknown) == cursor.fetchone()
    kid = code.signature.split(".")[0]
    for query, args in ((_BATCH, {"gtin": code.gtin, "lot": code.lot}), (_PRODUCT, {"gtin": code.gtin}),
                        (_KEY, {"kid": kid})):
        cursor.execute(query._pyformat, args)
        expected = cursor.fetchone()
        assert expected is not None and query.first(reader, args) == expected
    batch_row = _BATCH.first(reader, {"gtin": code.gtin, "lot": code.lot})
    assert isinstance(batch_row[6], dict) and batch_row[6]["lot"] == code.lot  # the record, as JSON
    assert batch_row[5] == code.expiry  # the expiry date, a date
    cursor.execute("DISCARD ALL")
    cursor.close()
    assert _UNIT_STATE.first(reader, params) == prepared
    again = client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": "b"}).get_json()
    assert again["verdict"] == "genuine" and again["scans"]["count"] == 2


def test_verification_reads_go_to_the_read_database_when_one_is_set(app, registry, world, session,
                                                                   tmp_path):
    """READ_DATABASE_URL points verification at another database (a read replica). Here the
    "replica" is a copy taken after the producer's key was certified and before the batch was
    registered: verifying through it does not know the batch yet, while the primary does."""
    import sqlite3

    from app import create_app
    from tests.conftest import TEST_PASSPHRASE

    if PG_URL:
        pytest.skip("the replica here is a copy of the SQLite file")
    session.commit()
    replica = tmp_path / "replica.db"
    with sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///")) as source, \
            sqlite3.connect(replica) as copy:
        source.backup(copy)
    batch = registry.register_batch(Actor(role=Role.PRODUCER, producer_id=world.producer_id), batch_data())
    url = registry.batch_url(batch)
    session.commit()
    reading = create_app({"INSTANCE_DIR": app.config["INSTANCE_DIR"], "KEY_PASSPHRASE": TEST_PASSPHRASE,
                          "SECRET_KEY": "t" * 32, "SCAN_SALT": "salt", "RATE_LIMITS": "off", "TESTING": "1",
                          "DATABASE_URL": app.config["DATABASE_URL"], "READ_DATABASE_URL": f"sqlite:///{replica}"})
    try:
        assert str(reading.extensions["read_engine"].url).endswith("replica.db")
        assert reading.test_client().get("/api/v1/verify", query_string={"code": url}).get_json()["verdict"] == "unknown"
        assert app.test_client().get("/api/v1/verify", query_string={"code": url}).get_json()["verdict"] == "genuine"
    finally:
        reading.extensions["scan_writer"].close()
        reading.extensions["read_engine"].dispose()
        reading.extensions["engine"].dispose()


def test_read_connections_go_back_to_the_pool_in_autocommit(app, client, unit_url):
    """The first verification loads key and batch through a Session on the read engine; the
    connections it gives back must still be in autocommit, or later reads would sit in one
    old snapshot."""
    for client_id in ("a", "b"):
        assert client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": client_id}).status_code == 200
    pool = app.extensions["read_engine"]
    held = [pool.raw_connection() for _ in range(2)]  # the pool's most recently used ones
    try:
        for conn in held:
            dbapi = conn.dbapi_connection
            assert (dbapi.autocommit is True) if PG_URL else (dbapi.isolation_level is None)
    finally:
        for conn in held:
            conn.close()


def _answers(dbapi) -> bool:
    """Whether a DBAPI connection still runs a statement."""
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)
    finally:
        cursor.close()


def test_each_thread_keeps_one_read_connection_across_requests(app, client, unit_url):
    """Verification reads go to the thread's own connection (registry.db.ReadConnections), kept
    between requests instead of checked out of the pool and back each time; another thread has
    its own; disposing of the read engine closes them all."""
    connections, pool = app.extensions["read_connections"], app.extensions["read_engine"].pool

    def verify(client_id: str) -> None:
        r = app.test_client().get("/api/v1/verify", query_string={"code": unit_url, "client_id": client_id})
        assert r.status_code == 200 and r.get_json()["verdict"] == "genuine"

    verify("a")
    mine = connections.get()
    verify("b")
    assert connections.get() is mine and pool.checkedout() == 0
    theirs = []
    thread = threading.Thread(target=lambda: (verify("c"), theirs.append(connections.get())))
    thread.start()
    thread.join()
    assert theirs and theirs[0] is not mine and _answers(mine) and _answers(theirs[0])
    app.extensions["read_engine"].dispose()
    for closed in (mine, theirs[0]):
        with pytest.raises(Exception, match="(?i)closed"):
            _answers(closed)
    verify("d")  # a new connection for this thread
    assert connections.get() is not mine and _answers(connections.get())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_read_connection_and_leaves_the_parents_alone(app, client, unit_url):
    """gunicorn forks its workers from a loaded app, and wsgi.py disposes of the pools in each child
    (dispose(close=False)). A child must neither use nor close the connection its parent holds: on
    PostgreSQL closing it would end the parent's session on the shared socket."""
    connections = app.extensions["read_connections"]
    assert client.get("/api/v1/verify", query_string={"code": unit_url}).status_code == 200
    parents = connections.get()
    pid = os.fork()
    if pid == 0:  # the child: what wsgi.py does after a fork, then a read of its own
        status = 1
        try:
            app.extensions["read_engine"].dispose(close=False)
            own = connections.get()
            status = 0 if own is not parents and _answers(own) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert connections.get() is parents and _answers(parents)
    again = client.get("/api/v1/verify", query_string={"code": unit_url}).get_json()
    assert again["verdict"] == "genuine" and again["scans"]["count"] == 2


@pytest.mark.parametrize("kind", ["unit", "batch"])
def test_a_warm_cache_follows_a_recall_made_elsewhere(client, registry, world, session, kind):
    """The first verification caches key and batch; the recall is written by another session (as
    another server would); the next verification's one read sees the log has grown and drops them."""
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    (serial, s), = registry.issue_serials(actor, GTIN, "LOT-1", 1)
    session.commit()
    url = registry.serial_url(batch, serial, s) if kind == "unit" else registry.batch_url(batch)
    assert client.get("/api/v1/verify", query_string={"code": url}).get_json()["verdict"] == "genuine"
    registry.recall(actor, GTIN, "LOT-1", reason="bad seal")
    session.commit()
    body = client.get("/api/v1/verify", query_string={"code": url}).get_json()
    assert body["verdict"] == "recalled" and body["batch"]["recall_reason"] == "bad seal"


def test_a_warm_cache_keeps_what_another_registration_does_not_change(app, client, registry, world, session):
    """Registrations go on all day: the log growing by another batch's registration leaves the
    cached key and batch of the codes being verified in place (the same objects, not read again);
    a revocation of the key, appended later, drops the key and the next answer says so."""
    from registry.services import SYSTEM

    cache = app.extensions["lookup_cache"]
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    (serial, s), = registry.issue_serials(actor, GTIN, "LOT-1", 1)
    session.commit()
    url = registry.serial_url(batch, serial, s)
    assert client.get("/api/v1/verify", query_string={"code": url}).get_json()["verdict"] == "genuine"
    warm = dict(cache.view(registry.log().size()))
    assert {("batch", GTIN, "LOT-1"), ("key", world.kid)} <= warm.keys()
    registry.register_batch(actor, batch_data(lot="LOT-2"))  # elsewhere: another server's request
    session.commit()
    assert client.get("/api/v1/verify", query_string={"code": url}).get_json()["verdict"] == "genuine"
    kept = cache.view(registry.log().size())
    assert kept[("batch", GTIN, "LOT-1")] is warm[("batch", GTIN, "LOT-1")]
    assert kept[("key", world.kid)] is warm[("key", world.kid)]
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    body = client.get("/api/v1/verify", query_string={"code": url}).get_json()
    assert body["verdict"] == "suspect" and "KEY_REVOKED" in [r["code"] for r in body["reasons"]]
    assert cache.view(registry.log().size())[("batch", GTIN, "LOT-1")] is warm[("batch", GTIN, "LOT-1")]


def test_a_verification_with_a_warm_cache_is_one_statement(app, client, registry, world, session):
    """Key and batch come from the process's cache; the generation, the serial's id and its scan
    counters come back from one statement (the scan itself is written later by the writer)."""
    import sqlite3

    from sqlalchemy import event

    if PG_URL:
        pytest.skip("statements are traced through sqlite3's trace callback")
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    units = [registry.serial_url(batch, serial, s) for serial, s in registry.issue_serials(actor, GTIN, "LOT-1", 3)]
    session.commit()
    statements: list[str] = []
    read_engine = app.extensions["read_engine"]
    read_engine.dispose()  # new connections, traced from their first statement

    @event.listens_for(read_engine, "connect")
    def trace(dbapi_connection, _record):  # noqa: ANN001
        assert isinstance(dbapi_connection, sqlite3.Connection)
        dbapi_connection.set_trace_callback(statements.append)

    assert client.get("/api/v1/verify", query_string={"code": units[0]}).get_json()["verdict"] == "genuine"
    assert any("batches" in sql for sql in statements)  # the cold cache loaded the batch
    for url in units[1:]:
        statements.clear()
        body = client.get("/api/v1/verify", query_string={"code": url, "client_id": "c"}).get_json()
        assert body["verdict"] == "genuine" and body["scans"]["count"] == 1
        assert len([sql for sql in statements if not sql.startswith("PRAGMA")]) == 1, statements


def test_a_crowd_flags_a_unit_and_an_inspector_clears_the_flag(app, client, unit_url, world):
    """11 shoppers on 6 networks (limits 10 and 5) make the unit suspect for everyone; an inspector
    who has looked into it clears the flag through the API, and the next check reads genuine."""
    from verification.parsing import parse_code

    def check(client_id: str, address: str):
        return client.get("/api/v1/verify", query_string={"code": unit_url, "client_id": client_id},
                          environ_base={"REMOTE_ADDR": address}).get_json()

    answered = [check(f"shopper-{n}", f"203.0.{n % 6}.7")["verdict"] for n in range(11)]
    answered.append(check("shopper-0", "203.0.0.7")["verdict"])
    assert answered[-1] == "suspect" and answered[-2] == "suspect"  # the 11th shopper flagged it
    app.extensions["scan_writer"].flush()
    with app.extensions["session_factory"]() as db:  # the history keeps what each check answered
        stored = db.scalars(select(ScanEvent.verdict).order_by(ScanEvent.id)).all()
    assert stored == answered  # the check that found the clone had been stored as 'genuine'
    code = parse_code(unit_url)
    body = {"gtin": code.gtin, "lot": code.lot, "serial": code.serial}
    inspector = world.auth("inspector")
    url = "/api/v1/flagged-serials/clear"
    missing = client.post(url, json=body, headers=inspector)
    assert missing.status_code == 422 and missing.get_json()["error"]["code"] == "VALIDATION_FAILED"
    unknown = client.post(url, json={**body, "serial": "NOSUCH", "note": "checked"}, headers=inspector)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "SERIAL_UNKNOWN"
    assert client.post(url, json={**body, "note": "x"}, headers=world.auth("producer")).status_code == 403
    cleared = client.post(url, json={**body, "note": "the shop's display unit; the stock is genuine"},
                          headers=inspector)
    assert cleared.status_code == 200, cleared.get_json()
    assert cleared.get_json()["cleared"] == "SERIAL_CLONED" and cleared.get_json()["scans"]["distinct_clients"] == 11
    assert cleared.get_json()["cases"] == []  # no shopper reported this unit
    again = client.post(url, json={**body, "note": "checked"}, headers=inspector)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "NOT_FLAGGED"
    after = check("shopper-0", "203.0.0.7")
    assert after["verdict"] == "genuine" and after["scans"]["count"] == 13
    listed = client.get("/api/v1/flagged-serials", headers=inspector).get_json()["items"]
    assert listed == []
