"""The scan history: counters answered exactly before and after the batched write, across servers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from keys.encoding import utcnow
from registry.db import make_engine, make_session_factory
from registry.models import ScanEvent, ScanWriterState, Serial, SerialClient
from registry import scans
from registry.scans import ScanHistory, ScanWriter
from registry.services import Actor, Role
from tests.conftest import GTIN, PG_URL, batch_data
from tests.registry.conftest import record_scan
from verification.verdicts import ReasonCode, ScanContext


def test_counts_include_what_is_pending_and_match_after_the_write(session, unit):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    summaries = [record_scan(history, unit, client) for client in ("a", "a", "b", "a", "c")]
    assert [s.count for s in summaries] == [1, 2, 3, 4, 5]
    assert [s.distinct_clients for s in summaries] == [1, 1, 2, 2, 3]
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 0  # nothing written yet
    assert writer.flush(session) == 5
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients) == (5, 3)
    assert session.scalar(select(func.count()).select_from(SerialClient)) == 3
    after = [record_scan(history, unit, client) for client in ("a", "d")]
    assert [(s.count, s.distinct_clients) for s in after] == [(6, 3), (7, 4)]
    assert after[0].first_seen == summaries[0].first_seen


def test_a_history_that_does_not_record_summarises_without_adding(session, unit):
    """A verdict shown again (``recording=False``) reads the history, pending counts included,
    and adds no event, no client and no flag to it."""
    writer = ScanWriter()
    recorded = ScanHistory(session, writer)
    record_scan(recorded, unit, "a")
    record_scan(recorded, unit, "b")
    shown = record_scan(ScanHistory(session, writer, recording=False), unit, "c")
    assert (shown.count, shown.distinct_clients, shown.flagged) == (2, 2, False)
    assert writer.flush(session) == 2
    again = record_scan(ScanHistory(session, writer, recording=False), unit, "d")
    assert (again.count, again.distinct_clients, again.first_seen) == (2, 2, shown.first_seen)
    ScanHistory(session, writer, recording=False).flag(*unit, ReasonCode.SERIAL_CLONED)
    assert writer.flush(session) == 0
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients, row.flagged) == (2, 2, None)
    assert record_scan(recorded, unit, "c").count == 3  # recording again counts from what is written


def test_two_servers_never_double_count_a_client(session, unit):
    one, two = ScanWriter(), ScanWriter()
    first, second = ScanHistory(session, one), ScanHistory(session, two)
    record_scan(first, unit, "shared")
    record_scan(second, unit, "shared")  # neither server has written: both think the client is new
    one.flush(session)
    two.flush(session)
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients) == (2, 1)  # the database settles it


def test_a_failed_write_keeps_the_events_for_the_next_flush(session, unit, tmp_path):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    record_scan(history, unit, "a")
    record_scan(history, unit, "b")
    empty = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}"))()
    with pytest.raises(SQLAlchemyError):
        writer.flush(empty)  # no such table: the write fails
    empty.rollback()
    record_scan(history, unit, "c")
    assert writer.flush(session) == 3
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients) == (3, 3)


def test_a_writer_that_keeps_failing_logs_once_a_while_and_says_when_it_works_again(
        app, session, unit, tmp_path, caplog, monkeypatch):
    """The database refusing every flush (here: one without the tables) for a while: the first
    failure is logged with its traceback, then one line per FAILURE_LOG_SECONDS, not a traceback
    at every flush (twice a second per worker); once the writes land again, it says so."""
    import time

    monkeypatch.setattr(scans, "FAILURE_LOG_SECONDS", 0.2)
    broken = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}"))
    writer = ScanWriter(broken, interval=0.01)
    history = ScanHistory(session, writer)
    with caplog.at_level("INFO", logger="registry.scans"):
        record_scan(history, unit, "a")
        session.rollback()  # SQLite: nothing held, for when the writes go to the real database
        time.sleep(0.7)  # dozens of failed flushes
        lines = [r for r in caplog.records if r.name == "registry.scans"]
        assert sum(r.exc_info is not None for r in lines) == 1
        later = [r.getMessage() for r in lines if r.exc_info is None]
        assert 1 <= len(later) <= 4 and all("still fails after" in m and "(1 events pending)" in m for m in later)
        writer._factory = app.extensions["session_factory"]  # the database is back
        deadline = time.monotonic() + 10
        while not any("works again" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
    writer.close()
    assert any("writing scan events works again after" in r.getMessage() for r in caplog.records)
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 1


def test_travel_speed_uses_the_latest_place_pending_or_written(session, unit):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    now = utcnow()
    record_scan(history, unit, "a", lat=21.0, lon=105.8, at=now)
    fast = record_scan(history, unit, "b", lat=10.8, lon=106.7, at=now + timedelta(minutes=30))
    assert fast.travel_kmh > 2000  # Hanoi to Saigon in half an hour
    writer.flush(session)
    slow = record_scan(history, unit, "c", lat=10.8, lon=106.7, at=now + timedelta(hours=5))
    assert slow.travel_kmh == pytest.approx(0, abs=1)


def test_places_from_one_network_give_no_travel_pending_or_written(session, unit):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    now = utcnow()
    record_scan(history, unit, "a", lat=21.0, lon=105.8, at=now, network="home")
    same = record_scan(history, unit, "b", lat=10.8, lon=106.7, at=now + timedelta(minutes=30), network="home")
    assert same.travel_kmh is None  # pending: one network claimed both places
    writer.flush(session)
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert row.last_network == "home"
    again = record_scan(history, unit, "c", lat=21.0, lon=105.8, at=now + timedelta(minutes=40), network="home")
    assert again.travel_kmh is None  # written: the serial remembers the network of its last place
    other = record_scan(history, unit, "d", lat=10.8, lon=106.7, at=now + timedelta(minutes=50), network="mobile")
    assert other.travel_kmh > 2000


def test_networks_count_the_written_the_pending_and_this_verification(session, unit):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    batch, serial = unit
    for client, network in (("a", "n1"), ("b", "n1"), ("c", "n2"), ("d", None)):
        record_scan(history, unit, client, network=network)
    writer.flush(session)
    assert session.scalars(select(ScanEvent.network_hash).order_by(ScanEvent.id)).all() == ["n1", "n1", "n2", None]
    record_scan(history, unit, "e", network="n3")  # pending
    assert history.networks(batch, serial, ScanContext(client="f", network="n4")) == 4
    assert history.networks(batch, serial, ScanContext(client="f", network="n1")) == 3


def test_network_of_groups_addresses_as_clone_detection_counts_them():
    assert scans.network_of("203.0.113.7") == scans.network_of("203.0.113.250") == "203.0.113.0/24"
    assert scans.network_of("203.0.114.7") != scans.network_of("203.0.113.7")
    assert scans.network_of("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert scans.network_of("2001:db8:abcd:12::1") == scans.network_of("2001:db8:abcd:ff::2") == "2001:db8:abcd::/48"
    assert scans.network_of(None) is None and scans.network_of("not an address") is None


def test_the_background_thread_writes_by_itself(app, unit, session):
    import time

    writer = ScanWriter(app.extensions["session_factory"], interval=0.05)
    history = ScanHistory(session, writer)
    record_scan(history, unit, "a")
    session.rollback()  # SQLite: release this session so the writer can write
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if session.scalar(select(func.count()).select_from(ScanEvent)) == 1:
            break
        session.rollback()
        time.sleep(0.05)
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 1
    writer.close()


def test_concurrent_requests_with_a_background_writer_lose_nothing(app, registry, world, session):
    """Four threads verify one serial while the writer flushes every 10 ms: no event is lost or
    counted twice, and every answer counts at least the answers that finished before it began."""
    import threading

    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    (serial, s), = registry.issue_serials(actor, GTIN, "LOT-1", 1)
    url = registry.serial_url(batch, serial, s)
    session.commit()
    app.extensions["scan_writer"]._interval = 0.01  # noqa: SLF001 - flush often to provoke races
    answers: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        import time

        client = app.test_client()
        for i in range(25):
            started = time.monotonic()
            body = client.get("/api/v1/verify", query_string={"code": url, "client_id": f"t{n}-{i % 5}"}).get_json()
            with lock:
                answers.append((started, time.monotonic(), body["scans"]["count"]))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    app.extensions["scan_writer"].close()
    session.rollback()
    row = session.execute(select(Serial).where(Serial.serial == serial)).scalar_one()
    assert (row.scan_count, row.distinct_clients) == (100, 20)
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 100
    for started, _, count in answers:
        finished_before = sum(1 for _, end, _ in answers if end < started)
        assert count > finished_before


def test_a_flush_landing_between_the_note_and_the_read_is_counted_once(session, unit):
    """The reader notes what its process has pending, then reads the counters with its writer's
    row; a flush that commits in between is in the row's number, so its counts are not added
    again from the note."""

    class FlushBetween(ScanWriter):
        def view(self, key):
            noted = super().view(key)
            self.flush(session)  # commits (into this session) after the note, before the read
            return noted

    writer = FlushBetween()
    history = ScanHistory(session, writer)
    counts = [record_scan(history, unit, client).count for client in ("a", "b", "a", "c")]
    assert counts == [1, 2, 3, 4]
    written = session.execute(select(ScanWriterState).where(ScanWriterState.id == writer.writer_id)).scalar_one()
    assert written.epoch == 3  # three flushes had something to write (the first found nothing)


def test_a_flush_in_flight_is_counted_until_its_number_is_written(session, unit):
    writer = ScanWriter()
    history = ScanHistory(session, writer)
    record_scan(history, unit, "a")
    record_scan(history, unit, "b")
    taken = writer._take()  # noqa: SLF001 - a flush that took the counts and has not committed
    assert taken[0] == 1
    assert record_scan(history, unit, "c").count == 3  # in flight (2) + this one
    writer._put_back(taken[1])  # noqa: SLF001 - that flush failed: its counts are pending again
    assert record_scan(history, unit, "d").count == 4
    assert writer.flush(session) == 4
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients) == (4, 4)
    assert record_scan(history, unit, "e").count == 5


def test_rows_of_writers_that_ended_are_swept(session, unit):
    """A month without a flush: the row's process ended. A row a stopped server's spool file may
    still need (its server down for days) stays."""
    session.add(ScanWriterState(id="gone", epoch=7, updated_at=utcnow() - timedelta(days=31)))
    session.add(ScanWriterState(id="recent", epoch=3, updated_at=utcnow() - timedelta(days=3)))
    session.flush()
    writer = ScanWriter()
    record_scan(ScanHistory(session, writer), unit, "a")
    writer.flush(session)  # the first flush sweeps
    left = set(session.scalars(select(ScanWriterState.id)))
    assert left == {"recent", writer.writer_id}


def test_a_forked_child_starts_its_own_writer_empty(session, unit):
    """A gunicorn worker forked from a master holding pending scans: the child gets a writer row of
    its own and nothing pending (the parent writes what it counted); the parent keeps its own."""
    import os

    writer = ScanWriter()
    record_scan(ScanHistory(session, writer), unit, "a")
    parent_id = writer.writer_id
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's exit handlers
        try:
            view = writer.view(("serial", unit[0].gtin, unit[0].lot, unit[1].serial))
            ok = writer.writer_id != parent_id and view.pending is None and writer._thread is None
            os.write(write_end, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.waitpid(pid, 0)
    os.close(read_end)
    assert answer == b"ok"
    assert writer.writer_id == parent_id
    assert writer.view(("serial", unit[0].gtin, unit[0].lot, unit[1].serial)).pending.count == 1


@pytest.mark.skipif(not PG_URL, reason="a connection lost during a flush needs a database server")
def test_a_flush_whose_connection_is_lost_keeps_its_events(app, session, unit):
    """The server ends the writer's connection in the middle of a flush (a failover, a network
    cut): the rollback fails as well, and the events must still be written, once, by the next
    flush. They had been dropped: 1,076 answers against 332 events written under such cuts."""
    engine = app.extensions["engine"]
    writer = ScanWriter(app.extensions["session_factory"], interval=3600)
    history = ScanHistory(session, writer)
    for client in ("a", "b", "c"):
        record_scan(history, unit, client)
    session.rollback()
    armed = [True]

    def lose_the_connection(conn, cursor, statement, *args):  # noqa: ANN001
        if armed and "synchronous_commit" in statement:  # the flush's first statement
            armed.clear()
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect() as other:
                assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()

    event.listen(engine, "after_cursor_execute", lose_the_connection)
    try:
        with pytest.raises(Exception):
            writer.flush()
    finally:
        event.remove(engine, "after_cursor_execute", lose_the_connection)
    assert not armed  # the connection was indeed lost mid-flush
    assert record_scan(history, unit, "d").count == 4  # still counted while pending
    assert writer.flush() == 4
    session.rollback()
    row = session.get(Serial, unit[1].serial_id)
    session.refresh(row)
    assert (row.scan_count, row.distinct_clients) == (4, 4)
    assert session.scalar(select(func.count()).select_from(ScanEvent)) == 4
    writer.close()


@pytest.mark.skipif(not PG_URL, reason="row locks of PostgreSQL's foreign keys")
def test_two_servers_flushing_the_same_serial_do_not_deadlock(app, session, unit):
    """Two servers' flushes over the same serial, interleaved the worst way: B has inserted its
    events (its foreign keys hold FOR KEY SHARE on the serial) when A writes everything; then B
    updates the counters. Locking the serials FOR UPDATE made A wait for B and B for A."""
    import threading

    factory = app.extensions["session_factory"]
    batch, serial = unit
    now = utcnow()
    event_row = {"batch_id": batch.batch_id, "serial_id": serial.serial_id, "at": now, "channel": "api",
                 "client_hash": None, "network_hash": None, "lat": None, "lon": None, "verdict": "genuine"}
    key = ("serial", batch.gtin, batch.lot, serial.serial)
    b = factory()
    b.execute(text("SET LOCAL lock_timeout = '20s'"))
    scans._PG_INSERT_EVENTS.execute(b, scans._columns([event_row], scans._EVENT_COLUMNS))
    outcome: dict[str, object] = {}

    def server_a() -> None:
        a = factory()
        try:
            a.execute(text("SET LOCAL lock_timeout = '20s'"))
            pending = scans._Pending(serial.serial_id)
            pending.add(now, None, False, None, None)
            ScanWriter._write(a, [event_row], {key: pending})
            a.commit()
            outcome["a"] = "committed"
        except Exception as exc:  # noqa: BLE001 - reported below
            a.rollback()
            outcome["a"] = repr(exc)
        finally:
            a.close()

    thread = threading.Thread(target=server_a)
    thread.start()
    thread.join(timeout=3)  # A must not wait for B's share locks
    try:
        counters = {"id": serial.serial_id, "n": 1, "new_clients": 0, "first": now, "last": now, "lat": None,
                    "lon": None, "net": None, "flag": None, "flag_at": None}
        scans._PG_BUMP_SERIALS.execute(b, scans._columns([counters], scans._SERIAL_COUNTERS))
        b.commit()
        outcome["b"] = "committed"
    except Exception as exc:  # noqa: BLE001
        b.rollback()
        outcome["b"] = repr(exc)
    finally:
        b.close()
        thread.join()
    assert outcome == {"a": "committed", "b": "committed"}
    session.rollback()
    row = session.get(Serial, serial.serial_id)
    session.refresh(row)
    assert row.scan_count == 2


@pytest.mark.skipif(not PG_URL, reason="application names are PostgreSQL's")
def test_postgresql_shows_the_reads_apart_from_the_transactions(app):
    """Operators (and bench/http_load.py) tell the verification's reads from the writes by name."""
    from registry.db import READ_APPLICATION_NAME, APPLICATION_NAME, make_engine

    with app.extensions["engine"].connect() as conn:
        assert conn.execute(text("SHOW application_name")).scalar() == APPLICATION_NAME
    with app.extensions["read_engine"].connect() as conn:
        assert conn.execute(text("SHOW application_name")).scalar() == READ_APPLICATION_NAME
    named = make_engine(PG_URL + ("&" if "?" in PG_URL else "?") + "application_name=dashboard")
    with named.connect() as conn:
        assert conn.execute(text("SHOW application_name")).scalar() == "dashboard"  # the URL's own wins
    named.dispose()


def test_the_network_cache_reads_a_serials_networks_once_a_while(session, unit):
    """A crowd on few networks asks for its networks at every verification: the cache reads them
    once per ``ttl``; what this process verifies counts at once, other servers' after the ttl."""
    now = [0.0]
    cache = scans.NetworkCache(ttl=60, clock=lambda: now[0])
    writer = ScanWriter()
    history = ScanHistory(session, writer, network_cache=cache)
    batch, serial = unit
    for client, network in (("a", "n1"), ("b", "n2")):
        record_scan(history, unit, client, network=network)
    writer.flush(session)
    assert history.networks(batch, serial, ScanContext(network="n3")) == 3
    record_scan(history, unit, "c", network="n4")  # this process: counted before any write
    assert history.networks(batch, serial, ScanContext(network="n3")) == 4
    writer.flush(session)  # and after its write, before the next read
    assert history.networks(batch, serial, ScanContext(network="n1")) == 4
    other_server = ScanWriter()
    record_scan(ScanHistory(session, other_server), unit, "d", network="n5")
    other_server.flush(session)
    assert history.networks(batch, serial, ScanContext(network="n3")) == 4  # not read again yet
    now[0] = 61
    writer.flush(session)
    assert history.networks(batch, serial, ScanContext(network="n3")) == 5  # read again: n5 is there


def test_the_network_cache_keeps_its_newest_reads():
    cache = scans.NetworkCache(max_entries=10)
    for serial_id in range(25):
        cache.put((serial_id, None), frozenset({f"n{serial_id}"}))
    assert cache.get((0, None)) is None and cache.get((24, None)) == frozenset({"n24"})
    assert sum(cache.get((i, None)) is not None for i in range(25)) <= 10
