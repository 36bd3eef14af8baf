"""The scan history: one event per verification, summary counters for the clone check.

Verification is the hot path and a scan event need not cost a commit of its own. A request reads
the serial's counters (one statement, which also says how far its process's writer has
committed) and hands its event to the process's ``ScanWriter``, which writes every pending event
and counter update in one transaction a few times a second. The answer a request gives counts
what is still pending in its own process, so one shopper's re-checks and the clone check stay
exact within a server, and across servers they lag by at most one flush interval. A server crash
can lose the events of the last interval; registrations, serials and recalls are never written
this way. The statements go to the DBAPI connection directly (``registry.db.RawQuery``).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Callable

from sqlalchemy import delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keys.encoding import utcnow
from registry.db import RawQuery, Reader, as_utc
from registry.models import ScanWriterState
from verification.verdicts import BatchInfo, ReasonCode, ScanContext, ScanSummary, SerialInfo, Verdict

__all__ = ["ScanHistory", "ScanWriter", "haversine_km"]

log = logging.getLogger(__name__)

# The reads of a verification: counters, whether this client was seen, and how far this process's
# writer has committed, in one statement (one snapshot) on the DBAPI connection.
_SERIAL_STATE = RawQuery(
    "SELECT s.scan_count, s.distinct_clients, s.first_seen, s.last_seen, s.last_lat, s.last_lon, "
    "EXISTS (SELECT 1 FROM serial_clients c WHERE c.serial_id = s.id AND c.client_hash = :client), "
    "(SELECT w.epoch FROM scan_writers w WHERE w.id = :writer) "
    "FROM serials s WHERE s.id = :id")
_BATCH_STATE = RawQuery(
    "SELECT b.scan_count, b.first_seen, (SELECT w.epoch FROM scan_writers w WHERE w.id = :writer) "
    "FROM batches b WHERE b.id = :id")
_INSERT_EVENTS = RawQuery(
    "INSERT INTO scan_events (batch_id, serial_id, at, channel, client_hash, lat, lon, verdict) "
    "VALUES (:batch_id, :serial_id, :at, :channel, :client_hash, :lat, :lon, :verdict)")
_BUMP_SERIAL = RawQuery(
    "UPDATE serials SET scan_count = scan_count + :n, distinct_clients = distinct_clients + :new_clients, "
    "first_seen = COALESCE(first_seen, :first), "
    "last_seen = CASE WHEN last_seen IS NULL OR last_seen < :last THEN :last ELSE last_seen END, "
    "last_lat = COALESCE(:lat, last_lat), last_lon = COALESCE(:lon, last_lon), "
    "flagged = COALESCE(flagged, :flag) WHERE id = :id")
_BUMP_BATCH = RawQuery(
    "UPDATE batches SET scan_count = scan_count + :n, first_seen = COALESCE(first_seen, :first) WHERE id = :id")
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
_FORGET_AFTER = timedelta(days=1)  # a writer row not updated for a day belongs to a process that ended
_SWEEP_EVERY = 1000  # flushes between two sweeps of such rows


@lru_cache(maxsize=64)
def _insert_clients(rows: int) -> RawQuery:
    """New (serial, client) pairs, answering which were really new (another server may have
    written the same pair first)."""
    values = ", ".join(f"(:s{i}, :c{i})" for i in range(rows))
    return RawQuery(f"INSERT INTO serial_clients (serial_id, client_hash) VALUES {values} "
                    "ON CONFLICT DO NOTHING RETURNING serial_id")


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

    def copy(self) -> "_Pending":
        return _Pending(self.count, set(self.new_clients), self.first, self.last, self.lat, self.lon, self.flag)

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


@dataclass(frozen=True)
class PendingView:
    """What a reader saw of this process's unwritten counts for one key, before its query.

    ``flight`` was taken by the flush numbered ``flight_epoch`` (None: no flush under way);
    ``pending`` will be taken by a flush numbered ``next_epoch`` or later."""

    flight: _Pending | None
    flight_epoch: int | None
    pending: _Pending | None
    next_epoch: int

    def unwritten(self, written_epoch: int | None) -> _Pending:
        """The counts the database did not hold yet when it said its writer had committed
        flush ``written_epoch`` (None: none yet)."""
        done = written_epoch or 0
        out = _Pending()
        if self.flight is not None and self.flight_epoch is not None and done < self.flight_epoch:
            out.merge_later(self.flight)
        if self.pending is not None and done < self.next_epoch:
            out.merge_later(self.pending)
        return out


def _copy(part: _Pending | None) -> _Pending | None:
    return part.copy() if part is not None else None


class ScanWriter:
    """Buffers scan events and counter updates; writes them in one transaction per flush.

    With a ``session_factory`` a daemon thread flushes every ``interval`` seconds (started lazily,
    again after a fork, so each gunicorn worker has its own). ``flush(session)`` writes inside a
    caller's transaction instead (the CLI, tests).

    Each flush is numbered and writes its number into this writer's ``scan_writers`` row in the
    same transaction. A reader notes what is pending and in flight, with their numbers, then reads
    the counters together with that row: the row says exactly which of the two the database
    already holds, so nothing is counted twice or missed and no reader waits for a commit.
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
        self._flight_epoch: int | None = None
        self._next_epoch = 1
        self._flushes = 0
        self._id = uuid.uuid4().hex
        self._id_pid = os.getpid()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stopping = False
        if session_factory is not None:
            atexit.register(self._flush_at_exit)

    @property
    def writer_id(self) -> str:
        """This process's writer row (a forked worker gets its own, and starts empty)."""
        if self._id_pid != os.getpid():
            with self._lock:
                if self._id_pid != os.getpid():
                    self._id, self._id_pid, self._next_epoch = uuid.uuid4().hex, os.getpid(), 1
                    self._events, self._serials, self._batches = [], {}, {}
                    self._flight_serials, self._flight_batches, self._flight_epoch = {}, {}, None
        return self._id

    # -- the request side ---------------------------------------------------------------------
    def view(self, kind: str, ident: int) -> PendingView:
        """Note this process's unwritten counts for ``("serial" | "batch", id)``; call it
        before the query that reads the counters and this writer's row."""
        self.writer_id  # noqa: B018 (re-keys after a fork)
        with self._lock:
            pending, flight = ((self._serials, self._flight_serials) if kind == "serial"
                               else (self._batches, self._flight_batches))
            return PendingView(flight=_copy(flight.get(ident)), flight_epoch=self._flight_epoch,
                               pending=_copy(pending.get(ident)), next_epoch=self._next_epoch)

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
    def _take(self) -> tuple[int, list[dict[str, Any]], dict[int, _Pending], dict[int, _Pending]]:
        with self._lock:
            taken = self._events, self._serials, self._batches
            if not any(taken):
                return 0, [], {}, {}
            epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
            self._flight_serials, self._flight_batches, self._flight_epoch = self._serials, self._batches, epoch
            self._events, self._serials, self._batches = [], {}, {}
            return (epoch, *taken)

    def _landed(self) -> None:
        with self._lock:
            self._flight_serials, self._flight_batches, self._flight_epoch = {}, {}, None

    def _put_back(self, events) -> None:
        with self._lock:
            self._events[:0] = events
            for table, flight in ((self._serials, self._flight_serials), (self._batches, self._flight_batches)):
                for key, older in flight.items():
                    if key in table:  # what arrived meanwhile happened after what was taken
                        older.merge_later(table[key])
                    table[key] = older
            self._flight_serials, self._flight_batches, self._flight_epoch = {}, {}, None

    def flush(self, session: Session | None = None) -> int:
        """Write everything pending; returns the number of events written. With ``session``, the
        writes join that transaction (its owner commits)."""
        writer = self.writer_id
        with self._flush_lock:
            epoch, events, serials, batches = self._take()
            if not epoch:
                return 0
            own = session is None
            if own and self._factory is None:
                self._put_back(events)
                raise RuntimeError("this ScanWriter has no session factory: pass a session")
            work = self._factory() if own else session
            try:
                self._write(work, events, serials, batches)
                self._mark(work, writer, epoch)
                if own:
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

    def _mark(self, session: Session, writer: str, epoch: int) -> None:
        """This flush's number in this writer's row, in the flush's transaction; now and then,
        remove the rows of processes that ended."""
        now = utcnow()
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(ScanWriterState).values(id=writer, epoch=epoch, updated_at=now)
        session.execute(stmt.on_conflict_do_update(index_elements=[ScanWriterState.id],
                                                   set_={"epoch": epoch, "updated_at": now}))
        self._flushes += 1
        if self._flushes % _SWEEP_EVERY == 1:
            session.execute(delete(ScanWriterState).where(ScanWriterState.updated_at < now - _FORGET_AFTER))

    @staticmethod
    def _write(session: Session, events, serials: dict[int, _Pending], batches: dict[int, _Pending]) -> None:
        """A handful of statements per flush, however many events: one multi-row insert of the
        events, one of the new (serial, client) pairs that reports which were really new, and one
        executemany update of the counters, in a fixed order so servers never deadlock."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_RELAXED_COMMIT)  # only this transaction: scan events, not registrations
        if events:
            _INSERT_EVENTS.many(session, events)
        pairs = [(serial_id, client) for serial_id, p in sorted(serials.items()) for client in sorted(p.new_clients)]
        really_new: dict[int, int] = {}
        for start in range(0, len(pairs), 500):  # bounded statements, even after a backlog
            chunk = pairs[start:start + 500]
            params = {f"{kind}{i}": value for i, pair in enumerate(chunk) for kind, value in zip("sc", pair)}
            for (serial_id,) in _insert_clients(len(chunk)).all(session, params):
                really_new[serial_id] = really_new.get(serial_id, 0) + 1
        if serials:
            _BUMP_SERIAL.many(session, [
                {"id": serial_id, "n": p.count, "new_clients": really_new.get(serial_id, 0), "first": p.first,
                 "last": p.last, "lat": p.lat, "lon": p.lon, "flag": p.flag}
                for serial_id, p in sorted(serials.items())])
        if batches:
            _BUMP_BATCH.many(session, [{"id": batch_id, "n": p.count, "first": p.first}
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

    def __init__(self, source: Session | Reader, writer: ScanWriter, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._source = source
        self._writer = writer
        self._clock = clock

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               verdict: Verdict) -> ScanSummary | None:
        if batch.batch_id is None:
            return None
        now = context.at or self._clock()
        event = {"batch_id": batch.batch_id, "serial_id": serial.serial_id if serial else None, "at": now,
                 "channel": context.channel, "client_hash": context.client, "lat": context.lat, "lon": context.lon,
                 "verdict": verdict.value}
        writer = self._writer.writer_id
        if serial is None:
            seen = self._writer.view("batch", batch.batch_id)
            count, first_seen, written = _BATCH_STATE.first(self._source, {"id": batch.batch_id, "writer": writer})
            pending = seen.unwritten(written)
            self._writer.submit(event, new_client=False)
            first = as_utc(first_seen) or pending.first or now
            return ScanSummary(count=count + pending.count + 1, first_seen=first, distinct_clients=0)
        seen = self._writer.view("serial", serial.serial_id)
        (count, clients, first_seen, last, lat, lon, client_seen, written) = _SERIAL_STATE.first(
            self._source, {"id": serial.serial_id, "client": context.client or "", "writer": writer})
        pending = seen.unwritten(written)
        new_client = context.client is not None and not client_seen and context.client not in pending.new_clients
        travel = None
        last = as_utc(last)
        if pending.last is not None and (last is None or pending.last >= last) and pending.lat is not None:
            last, lat, lon = pending.last, pending.lat, pending.lon
        if context.lat is not None and context.lon is not None and lat is not None and lon is not None and last:
            hours = max((now - last).total_seconds() / 3600, 1 / 60)  # a minute's slack
            travel = haversine_km(lat, lon, context.lat, context.lon) / hours
        self._writer.submit(event, new_client=new_client)
        return ScanSummary(count=count + pending.count + 1,
                           first_seen=as_utc(first_seen) or pending.first or now,
                           distinct_clients=clients + len(pending.new_clients) + (1 if new_client else 0),
                           travel_kmh=travel)

    def flag(self, serial: SerialInfo, reason: ReasonCode) -> None:
        self._writer.flag(serial.serial_id, reason.value)
