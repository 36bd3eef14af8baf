"""Scan events a process could not write before it ended: kept on disk, written once by the next.

Before, a worker stopped while the database refused writes (down, a failover, a lock held by a
migration or an operator's session) lost every event it held: three failed tries at exit, then
gone; and one whose backlog filled dropped the oldest tenth."""

from __future__ import annotations

import atexit
import os
import time

from sqlalchemy import func, select

from registry import scans
from registry.db import make_engine, make_session_factory
from registry.models import ScanEvent, Serial
from registry.scan_spool import ScanSpool
from registry.scans import ScanHistory, ScanWriter
from tests.conftest import lock_held
from tests.registry.conftest import record_scan

CLIENTS = ("a", "b", "c")
#: What keeps the scan writer out on PostgreSQL while the counters can still be read (on SQLite:
#: the file's write lock).
BLOCK_SCAN_WRITES = "LOCK TABLE scan_events IN EXCLUSIVE MODE"


def _impatient_factory(app):
    """The app's database, with writes that give up after half a second of waiting for a lock."""
    return make_session_factory(make_engine(app.config["DATABASE_URL"], lock_timeout=0.5))


def _ended(writer: ScanWriter) -> None:
    """The process of ``writer`` is gone: its memory with it, the locks it held, and no exit
    handler left to run."""
    atexit.unregister(writer._flush_at_exit)
    if writer._kept is not None:
        writer._kept.release()
    writer._events, writer._units, writer._flight, writer._flight_epoch = [], {}, {}, None


def _written(session, unit) -> tuple[int, int, int]:
    """Scan events in the database, and the serial's scan count and distinct clients."""
    session.rollback()  # a fresh snapshot; on SQLite no lock kept
    try:
        events = session.scalar(select(func.count()).select_from(ScanEvent))
        serial = session.get(Serial, unit[1].serial_id)
        session.refresh(serial)
        return events, serial.scan_count, serial.distinct_clients
    finally:
        session.rollback()


def test_events_not_written_at_exit_are_kept_and_written_once_by_the_next_process(
        app, session, unit, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(scans, "EXIT_SECONDS", 4.0)
    spool = ScanSpool(tmp_path / "spool")
    ending = ScanWriter(_impatient_factory(app), interval=3600, spool=spool)
    history = ScanHistory(session, ending)
    for client in CLIENTS:
        record_scan(history, unit, client)
    session.rollback()
    with lock_held(app, BLOCK_SCAN_WRITES), caplog.at_level("WARNING", logger="registry.scans"):
        started = time.monotonic()
        ending._flush_at_exit()
        took = time.monotonic() - started
    assert took < 5.0  # within EXIT_SECONDS, not 3 tries of the lock timeout each
    assert spool.waiting() == 1
    assert any(f"3 scan events not written before this process ended are kept in {spool.directory}" in r.getMessage()
               for r in caplog.records)
    assert _written(session, unit) == (0, 0, 0)

    following = ScanWriter(app.extensions["session_factory"], interval=3600, spool=spool)
    assert following.replay_spool() == 0  # the ending process still holds the file: its flush may land
    _ended(ending)
    assert following.replay_spool() == 3
    assert spool.waiting() == 0 and not list(spool.directory.iterdir())
    assert _written(session, unit) == (3, 3, 3)
    assert following.replay_spool() == 0


def test_a_flush_committed_after_the_file_was_written_is_not_written_again(app, session, unit, tmp_path):
    """The file is written before the last tries; one lands and the process dies before removing
    the file. Its writer's row says which flushes are in: only the later ones are written."""
    spool = ScanSpool(tmp_path / "spool")
    ending = ScanWriter(app.extensions["session_factory"], interval=3600, spool=spool)
    history = ScanHistory(session, ending)
    record_scan(history, unit, "a")
    session.rollback()
    first = ending._unwritten()  # flush number 1, with "a"
    ending.flush()  # lands
    record_scan(history, unit, "b")
    record_scan(history, unit, "c")
    session.rollback()
    kept = spool.spill(ending.writer_id, first + ending._unwritten())  # 1 (in) and 2 (not)
    kept.release()
    _ended(ending)
    assert _written(session, unit) == (1, 1, 1)

    following = ScanWriter(app.extensions["session_factory"], interval=3600, spool=spool)
    assert following.replay_spool() == 2
    assert _written(session, unit) == (3, 3, 3)
    assert spool.waiting() == 0


def test_a_file_whose_process_has_not_ended_is_left_alone(app, session, unit, tmp_path):
    """Its process may still commit a flush of the same events: the file's lock says it lives."""
    spool = ScanSpool(tmp_path / "spool")
    ending = ScanWriter(app.extensions["session_factory"], interval=3600, spool=spool)
    record_scan(ScanHistory(session, ending), unit, "a")
    session.rollback()
    held = spool.spill(ending.writer_id, ending._unwritten())
    _ended(ending)
    following = ScanWriter(app.extensions["session_factory"], interval=3600, spool=spool)
    assert following.replay_spool() == 0 and spool.waiting() == 1
    held.release()  # the process ends
    assert following.replay_spool() == 1
    assert _written(session, unit) == (1, 1, 1)


def test_a_full_backlog_keeps_its_oldest_events_in_the_spool(app, session, unit, tmp_path, caplog):
    """The database refusing writes for minutes: the oldest tenth of a full backlog goes to disk
    (it was dropped); the counts stay pending and are written with the rest."""
    spool = ScanSpool(tmp_path / "spool")
    writer = ScanWriter(spool=spool, max_backlog=10)
    history = ScanHistory(session, writer)
    with caplog.at_level("ERROR", logger="registry.scans"):
        for i in range(12):
            record_scan(history, unit, f"client-{i}")
    session.rollback()
    assert spool.waiting() == 2 and writer.backlog()[0] == 10
    assert any("its 1 oldest events kept in" in r.getMessage() for r in caplog.records)
    writer.flush(session)
    session.commit()
    assert _written(session, unit) == (10, 12, 12)
    assert ScanWriter(app.extensions["session_factory"], spool=spool).replay_spool() == 2
    assert _written(session, unit) == (12, 12, 12)


def test_an_unreadable_file_is_set_aside_and_named(app, tmp_path, caplog):
    spool = ScanSpool(tmp_path / "spool")
    spool.directory.mkdir()
    (spool.directory / "f00d-1.scans.json").write_bytes(b'{"format": 1, "writer": "f00d", "flush')
    writer = ScanWriter(app.extensions["session_factory"], spool=spool)
    with caplog.at_level("ERROR", logger="registry.scan_spool"):
        assert writer.replay_spool() == 0
    assert [p.name for p in spool.directory.iterdir()] == ["f00d-1.scans.json.unreadable"]
    assert any("f00d-1.scans.json cannot be read" in r.getMessage() for r in caplog.records)
    assert spool.waiting() == 0


def test_a_file_left_half_written_by_a_process_that_died_is_removed(app, tmp_path):
    spool = ScanSpool(tmp_path / "spool")
    spool.directory.mkdir()
    part = spool.directory / ".abc.scans.json.part"
    part.write_bytes(b'{"format": 1, "wri')
    writer = ScanWriter(app.extensions["session_factory"], spool=spool)
    assert writer.replay_spool() == 0 and part.exists()  # just made, perhaps: its lock may come next
    old = time.time() - 61
    os.utime(part, (old, old))
    assert writer.replay_spool() == 0
    assert not list(spool.directory.iterdir())


def test_a_file_the_database_refuses_is_set_aside_and_the_others_written(app, session, unit, tmp_path, caplog):
    """A file whose events name a serial this database does not hold (moved from another
    registry's server) would fail every time: it is renamed ``.unwritable`` and named in the log,
    and the files after it are still written."""
    spool = ScanSpool(tmp_path / "spool")
    writer = ScanWriter(spool=spool)
    record_scan(ScanHistory(session, writer), unit, "a")
    session.rollback()
    (good,) = writer._unwritten()
    stranger = {**good.events[0], "batch_id": 10**9, "serial_id": 10**9}
    spool.spill("0" * 32, [scans.SpooledFlush(1, [stranger])]).release()  # sorted first
    spool.spill(writer.writer_id, [good]).release()
    following = ScanWriter(app.extensions["session_factory"], spool=spool)
    with caplog.at_level("ERROR", logger="registry.scans"):
        assert following.replay_spool() == 1
    aside = [p.name for p in spool.directory.iterdir()]
    assert len(aside) == 1 and aside[0].startswith("0" * 32) and aside[0].endswith(".scans.json.unwritable")
    assert any("cannot be written (IntegrityError): set aside as" in r.getMessage() for r in caplog.records)
    assert _written(session, unit) == (1, 1, 1)
