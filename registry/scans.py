"""The scan history: one event per verification, summary counters for the clone check.

Verification is the hot path and a scan event need not cost a commit of its own. A request reads
the serial's counters (one query) and hands its event to the process's ``ScanWriter``, which
writes every pending event and counter update in one transaction a few times a second. The
answer a request gives counts what is still pending in its own process, so one shopper's
re-checks and the clone check stay exact within a server, and across servers they lag by at most
one flush interval. A server crash can lose the events of the last interval; registrations,
serials and recalls are never written this way.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Float, Integer, bindparam, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keys.encoding import utcnow
from registry.db import READ_ONLY, UTCDateTime
from registry.models import ScanEvent, SerialClient
from verification.verdicts import BatchInfo, ReasonCode, ScanContext, ScanSummary, SerialInfo, Verdict

__all__ = ["ScanHistory", "ScanWriter", "haversine_km"]

log = logging.getLogger(__name__)

_AT = UTCDateTime()
_SERIAL_STATE = text(
    "SELECT scan_count, distinct_clients, first_seen, last_seen, last_lat, last_lon, "
    "EXISTS (SELECT 1 FROM serial_clients c WHERE c.serial_id = s.id AND c.client_hash = :client) AS seen "
    "FROM serials s WHERE s.id = :id"
).columns(scan_count=Integer(), distinct_clients=Integer(), first_seen=_AT, last_seen=_AT, last_lat=Float(),
          last_lon=Float())
_BATCH_STATE = text("SELECT scan_count, first_seen FROM batches WHERE id = :id").columns(
    scan_count=Integer(), first_seen=_AT)
_BUMP_SERIAL = text(
    "UPDATE serials SET scan_count = scan_count + :n, distinct_clients = distinct_clients + :new_clients, "
    "first_seen = COALESCE(first_seen, :first), "
    "last_seen = CASE WHEN last_seen IS NULL OR last_seen < :last THEN :last ELSE last_seen END, "
    "last_lat = COALESCE(:lat, last_lat), last_lon = COALESCE(:lon, last_lon), "
    "flagged = COALESCE(flagged, :flag) WHERE id = :id"
).bindparams(bindparam("first", type_=_AT), bindparam("last", type_=_AT), bindparam("lat", type_=Float()),
             bindparam("lon", type_=Float()))
_BUMP_BATCH = text(
    "UPDATE batches SET scan_count = scan_count + :n, first_seen = COALESCE(first_seen, :first) WHERE id = :id"
).bindparams(bindparam("first", type_=_AT))
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


@dataclass
class _Pending:
    """What this process has counted for one serial (or batch code) and not yet written."""

    count: int = 0
    new_clients: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    flag: str | None = None

    def add(self, at: datetime, client: str | None, new_client: bool, lat: float | None, lon: float | None) -> None:
        self.count += 1
        if client is not None and new_client:
            self.new_clients.add(client)
        self.first = at if self.first is None else min(self.first, at)
        if self.last is None or at >= self.last:
            self.last = at
            if lat is not None and lon is not None:
                self.lat, self.lon = lat, lon

    def merge_later(self, later: "_Pending") -> None:
        """Add counts that happened after these."""
        self.count += later.count
        self.new_clients |= later.new_clients
        self.first = self.first or later.first
        if later.last is not None and (self.last is None or later.last >= self.last):
            self.last = later.last
            if later.lat is not None:
                self.lat, self.lon = later.lat, later.lon
        self.flag = self.flag or later.flag


class ScanWriter:
    """Buffers scan events and counter updates; writes them in one transaction per flush.

    With a ``session_factory`` a daemon thread flushes every ``interval`` seconds (started lazily,
    again after a fork, so each gunicorn worker has its own). ``flush(session)`` writes inside a
    caller's transaction instead (the CLI, tests).
    """

    def __init__(self, session_factory: sessionmaker[Session] | None = None, *, interval: float = 0.1,
                 max_backlog: int = 200_000) -> None:
        self._factory = session_factory
        self._interval = interval
        self._max_backlog = max_backlog
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._serials: dict[int, _Pending] = {}
        self._batches: dict[int, _Pending] = {}
        # What a flush has taken but not yet committed: still counted by readers until it is.
        self._flight_serials: dict[int, _Pending] = {}
        self._flight_batches: dict[int, _Pending] = {}
        self._epoch = 0  # +1 each time a flush's writes become visible
        self._committing = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stopping = False
        if session_factory is not None:
            atexit.register(self._flush_at_exit)

    # -- the request side ---------------------------------------------------------------------
    @staticmethod
    def _merged(pending: dict[int, _Pending], flight: dict[int, _Pending], key: int) -> _Pending:
        out = _Pending()
        for part in (flight.get(key), pending.get(key)):  # what is in flight happened first
            if part is not None:
                out.merge_later(part)
        return out

    def consistent(self, key: tuple[str, int], read: Callable[[], Any], *,
                   fresh_snapshot: Callable[[], None] | None = None) -> tuple[Any, _Pending]:
        """``read()`` the database counters and this process's uncommitted counts for ``key``
        (``("serial", id)`` or ``("batch", id)``) so that no flush is counted twice or missed.

        ``fresh_snapshot`` ends the caller's read transaction first (SQLite keeps one snapshot
        per transaction, taken at its first read)."""
        kind, ident = key
        for attempt in range(50):
            with self._lock:
                epoch, busy = self._epoch, self._committing
                if not busy:
                    pending = (self._merged(self._serials, self._flight_serials, ident) if kind == "serial"
                               else self._merged(self._batches, self._flight_batches, ident))
            if not busy:
                if fresh_snapshot is not None:
                    fresh_snapshot()
                row = read()
                with self._lock:
                    if self._epoch == epoch and not self._committing:
                        return row, pending
            time.sleep(0.001 * (attempt + 1))
        raise RuntimeError("scan counters kept changing under the reader")

    def submit(self, event: dict[str, Any], *, new_client: bool) -> None:
        serial_id, batch_id = event["serial_id"], event["batch_id"]
        with self._lock:
            if len(self._events) >= self._max_backlog:
                log.error("scan backlog full (%d events): dropping the oldest", len(self._events))
                del self._events[: len(self._events) // 10]
            self._events.append(event)
            if serial_id is not None:
                pending = self._serials.setdefault(serial_id, _Pending())
            elif batch_id is not None:
                pending = self._batches.setdefault(batch_id, _Pending())
            else:
                pending = None
            if pending is not None:
                pending.add(event["at"], event["client_hash"], new_client, event["lat"], event["lon"])
        self._ensure_thread()

    def flag(self, serial_id: int, reason: str) -> None:
        with self._lock:
            self._serials.setdefault(serial_id, _Pending()).flag = reason
        self._ensure_thread()

    # -- the writing side ---------------------------------------------------------------------
    def _take(self) -> tuple[list[dict[str, Any]], dict[int, _Pending], dict[int, _Pending]]:
        with self._lock:
            taken = self._events, self._serials, self._batches
            self._flight_serials, self._flight_batches = self._serials, self._batches
            self._events, self._serials, self._batches = [], {}, {}
            return taken

    def _landed(self) -> None:
        with self._lock:
            self._epoch += 1
            self._flight_serials, self._flight_batches = {}, {}
            self._committing = False

    def _put_back(self, events) -> None:
        with self._lock:
            self._events[:0] = events
            for table, flight in ((self._serials, self._flight_serials), (self._batches, self._flight_batches)):
                for key, older in flight.items():
                    if key in table:  # what arrived meanwhile happened after what was taken
                        older.merge_later(table[key])
                    table[key] = older
            self._flight_serials, self._flight_batches = {}, {}
            self._committing = False

    def flush(self, session: Session | None = None) -> int:
        """Write everything pending; returns the number of events written. With ``session``, the
        writes join that transaction (its owner commits)."""
        with self._flush_lock:
            events, serials, batches = self._take()
            if not events and not serials and not batches:
                self._landed()
                return 0
            own = session is None
            if own and self._factory is None:
                self._put_back(events)
                raise RuntimeError("this ScanWriter has no session factory: pass a session")
            work = self._factory() if own else session
            try:
                self._write(work, events, serials, batches)
                if own:
                    with self._lock:
                        self._committing = True
                    work.commit()
            except SQLAlchemyError:
                if own:
                    work.rollback()
                self._put_back(events)
                raise
            finally:
                if own:
                    work.close()
            self._landed()
            return len(events)

    @staticmethod
    def _write(session: Session, events, serials: dict[int, _Pending], batches: dict[int, _Pending]) -> None:
        """A handful of statements per flush, however many events: one multi-row insert of the
        events, one of the new (serial, client) pairs that reports which were really new, and one
        executemany update of the counters, in a fixed order so servers never deadlock."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_RELAXED_COMMIT)  # only this transaction: scan events, not registrations
        if events:
            session.execute(insert(ScanEvent), events)
        pairs = [{"serial_id": serial_id, "client_hash": client}
                 for serial_id, p in sorted(serials.items()) for client in sorted(p.new_clients)]
        really_new: dict[int, int] = {}
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        for start in range(0, len(pairs), 1000):  # bounded statements, even after a backlog
            stmt = (dialect.insert(SerialClient).values(pairs[start:start + 1000]).on_conflict_do_nothing()
                    .returning(SerialClient.serial_id))
            for (serial_id,) in session.execute(stmt):
                really_new[serial_id] = really_new.get(serial_id, 0) + 1
        if serials:
            session.execute(_BUMP_SERIAL, [
                {"id": serial_id, "n": p.count, "new_clients": really_new.get(serial_id, 0), "first": p.first,
                 "last": p.last, "lat": p.lat, "lon": p.lon, "flag": p.flag}
                for serial_id, p in sorted(serials.items())])
        if batches:
            session.execute(_BUMP_BATCH, [{"id": batch_id, "n": p.count, "first": p.first}
                                          for batch_id, p in sorted(batches.items())])

    def _ensure_thread(self) -> None:
        if self._factory is None or self._stopping:
            return
        pid = os.getpid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            self._pid = pid
            self._thread = threading.Thread(target=self._run, name="scan-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except SQLAlchemyError:
                log.exception("writing scan events failed; they stay pending and are retried")

    def close(self) -> None:
        """Stop the flushing thread and write what is pending (app shutdown, tests)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=10)
        if self._factory is not None:
            self.flush()

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except (SQLAlchemyError, RuntimeError):
            log.exception("scan events still pending at exit could not be written")


class ScanHistory:
    """``verification.verdicts.ScanRecorder`` over the registry: reads counters, hands events to the writer."""

    def __init__(self, session: Session, writer: ScanWriter, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._session = session
        self._writer = writer
        self._clock = clock

    def _fresh_snapshot(self) -> Callable[[], None] | None:
        """How to see every committed flush before reading counters.

        PostgreSQL (READ COMMITTED) takes a snapshot per statement: nothing to do. SQLite keeps one
        snapshot per transaction: a read-only one is ended (it holds nothing); a writing one holds
        the write lock since its BEGIN IMMEDIATE, so no flush can have committed during it."""
        if self._session.get_bind().dialect.name != "sqlite":
            return None
        if self._session.connection().get_execution_options().get(READ_ONLY):
            return self._session.commit
        return None

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               verdict: Verdict) -> ScanSummary | None:
        if batch.batch_id is None:
            return None
        now = context.at or self._clock()
        event = {"batch_id": batch.batch_id, "serial_id": serial.serial_id if serial else None, "at": now,
                 "channel": context.channel, "client_hash": context.client, "lat": context.lat, "lon": context.lon,
                 "verdict": verdict.value}
        if serial is None:
            row, pending = self._writer.consistent(
                ("batch", batch.batch_id), lambda: self._session.connection().execute(_BATCH_STATE, {"id": batch.batch_id}).one(),
                fresh_snapshot=self._fresh_snapshot())
            self._writer.submit(event, new_client=False)
            first = row.first_seen or pending.first or now
            return ScanSummary(count=row.scan_count + pending.count + 1, first_seen=first, distinct_clients=0)
        row, pending = self._writer.consistent(
            ("serial", serial.serial_id),
            lambda: self._session.connection().execute(
                _SERIAL_STATE, {"id": serial.serial_id, "client": context.client or ""}).one(),
            fresh_snapshot=self._fresh_snapshot())
        new_client = context.client is not None and not row.seen and context.client not in pending.new_clients
        travel = None
        last, lat, lon = row.last_seen, row.last_lat, row.last_lon
        if pending.last is not None and (last is None or pending.last >= last) and pending.lat is not None:
            last, lat, lon = pending.last, pending.lat, pending.lon
        if context.lat is not None and context.lon is not None and lat is not None and lon is not None and last:
            hours = max((now - last).total_seconds() / 3600, 1 / 60)  # a minute's slack
            travel = haversine_km(lat, lon, context.lat, context.lon) / hours
        self._writer.submit(event, new_client=new_client)
        return ScanSummary(count=row.scan_count + pending.count + 1,
                           first_seen=row.first_seen or pending.first or now,
                           distinct_clients=row.distinct_clients + len(pending.new_clients) + (1 if new_client else 0),
                           travel_kmh=travel)

    def flag(self, serial: SerialInfo, reason: ReasonCode) -> None:
        self._writer.flag(serial.serial_id, reason.value)
