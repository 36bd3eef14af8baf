"""The scan history: one event per verification, summary counters for the clone check.

Verification is the hot path and a scan event need not cost a commit of its own. A request reads
the unit's counters (one statement, by what the code says, which also says how far its process's
writer has committed and how long the registry's log is) and hands its event to the process's
``ScanWriter``, which writes every pending event and counter update in one transaction every
``SCAN_FLUSH_SECONDS`` (half a second by default). The answer a request gives counts what is
still pending in its own process, so one shopper's re-checks and the clone check stay exact
within a server, and across servers they lag by at most one flush interval. A server crash can
lose the events of the last interval; an orderly stop keeps what it could not write in the spool
(``registry.scan_spool``) for the next process. Registrations, serials and recalls are never
written this way. The statements go to the DBAPI connection directly (``registry.db.RawQuery``).
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

from sqlalchemy import delete, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keys.encoding import utcnow
from registry.db import RawQuery, Reader, as_utc
from registry.lookup import RegistryLookup
from registry.models import ScanWriterState
from registry.scan_spool import ScanSpool, Spilled, SpooledFlush
from verification.verdicts import BatchInfo, ReasonCode, ScanContext, ScanSummary, SerialInfo, Verdict

__all__ = ["NetworkCache", "ScanHistory", "ScanObserver", "ScanWriter", "haversine_km", "network_of", "unit_key"]

log = logging.getLogger(__name__)

# The one read of a verification, by what the code says (GTIN, lot, serial): the unit's id, the
# signature the registry issued for it (verification.verdicts: Verifier._check_signature) and its
# counters, whether this client was seen, how far this process's writer has committed, and the
# registry's generation for the lookups' cache (registry.lookup) -- one statement, one snapshot, on
# the DBAPI connection. ``(SELECT 1) AS one`` keeps one row when the code names no issued unit;
# two plain LEFT JOINs (no subquery for SQLite to materialise: a quarter faster).
_UNIT_STATE = RawQuery(
    "SELECT (SELECT l.size FROM log_state l WHERE l.id = 1), s.id, s.s, s.scan_count, "
    "s.distinct_clients, s.first_seen, s.last_seen, s.last_lat, s.last_lon, s.last_network, s.flagged, "
    "s.flag_cleared_at, s.clone_baseline, "
    "EXISTS (SELECT 1 FROM serial_clients c WHERE c.serial_id = s.id AND c.client_hash = :client), "
    "(SELECT w.epoch FROM scan_writers w WHERE w.id = :writer) "
    "FROM (SELECT 1) AS one LEFT JOIN batches b ON b.gtin = :gtin AND b.lot = :lot "
    "LEFT JOIN serials s ON s.batch_id = b.id AND s.serial = :serial")
_BATCH_STATE = RawQuery(
    "SELECT (SELECT l.size FROM log_state l WHERE l.id = 1), b.id, b.scan_count, b.first_seen, "
    "(SELECT w.epoch FROM scan_writers w WHERE w.id = :writer) "
    "FROM (SELECT 1) AS one LEFT JOIN batches b ON b.gtin = :gtin AND b.lot = :lot")
_INSERT_EVENTS = RawQuery(
    "INSERT INTO scan_events (batch_id, serial_id, at, channel, client_hash, network_hash, lat, lon, verdict) "
    "VALUES (:batch_id, :serial_id, :at, :channel, :client_hash, :network_hash, :lat, :lon, :verdict)")
_BUMP_SERIAL = RawQuery(
    "UPDATE serials SET scan_count = scan_count + :n, distinct_clients = distinct_clients + :new_clients, "
    "first_seen = COALESCE(first_seen, :first), "
    "last_seen = CASE WHEN last_seen IS NULL OR last_seen < :last THEN :last ELSE last_seen END, "
    "last_lat = COALESCE(:lat, last_lat), last_lon = COALESCE(:lon, last_lon), "
    "last_network = CASE WHEN :lat IS NULL THEN last_network ELSE :net END, "
    "flagged = CASE WHEN flag_cleared_at IS NOT NULL AND :flag_at <= flag_cleared_at THEN flagged "
    "ELSE COALESCE(flagged, :flag) END WHERE id = :id")
_BUMP_BATCH = RawQuery(
    "UPDATE batches SET scan_count = scan_count + :n, first_seen = COALESCE(first_seen, :first) WHERE id = :id")
# PostgreSQL takes each of these as one statement over arrays (one column each): a flush of a few
# hundred events costs the server three statements instead of one per row (bench/http_load.py).
# The serials are locked in id order first, as the row-by-row updates did, so that two servers
# flushing the same serials queue instead of deadlocking. The lock is FOR NO KEY UPDATE, what the
# UPDATE itself takes: the events and client pairs inserted just before hold FOR KEY SHARE on the
# same serials through their foreign keys, which FOR UPDATE conflicts with, so two servers' flushes
# each waited for the other's (six deadlocks in 8 s of two workers, 2026-11-23).
_PG_INSERT_EVENTS = RawQuery(
    "INSERT INTO scan_events (batch_id, serial_id, at, channel, client_hash, network_hash, lat, lon, verdict) "
    "SELECT * FROM unnest(:batch_id::bigint[], :serial_id::bigint[], :at::timestamptz[], :channel::varchar[], "
    ":client_hash::varchar[], :network_hash::varchar[], :lat::float8[], :lon::float8[], :verdict::varchar[])",
    binary=True)
_PG_INSERT_CLIENTS = RawQuery(
    "INSERT INTO serial_clients (serial_id, client_hash) SELECT * FROM unnest(:s::bigint[], :c::varchar[]) "
    "ON CONFLICT DO NOTHING RETURNING serial_id", binary=True)
_PG_BUMP_SERIALS = RawQuery(
    "WITH v AS (SELECT * FROM unnest(:id::bigint[], :n::bigint[], :new_clients::int[], :first::timestamptz[], "
    ":last::timestamptz[], :lat::float8[], :lon::float8[], :net::varchar[], :flag::varchar[], "
    ":flag_at::timestamptz[]) AS v(id, n, new_clients, first, last, lat, lon, net, flag, flag_at)), "
    "locked AS (SELECT s.id FROM serials s WHERE s.id IN (SELECT id FROM v) ORDER BY s.id FOR NO KEY UPDATE) "
    "UPDATE serials AS s SET scan_count = s.scan_count + v.n, distinct_clients = s.distinct_clients + v.new_clients, "
    "first_seen = COALESCE(s.first_seen, v.first), "
    "last_seen = CASE WHEN s.last_seen IS NULL OR s.last_seen < v.last THEN v.last ELSE s.last_seen END, "
    "last_lat = COALESCE(v.lat, s.last_lat), last_lon = COALESCE(v.lon, s.last_lon), "
    "last_network = CASE WHEN v.lat IS NULL THEN s.last_network ELSE v.net END, "
    "flagged = CASE WHEN s.flag_cleared_at IS NOT NULL AND v.flag_at <= s.flag_cleared_at THEN s.flagged "
    "ELSE COALESCE(s.flagged, v.flag) END "
    "FROM v, locked WHERE s.id = v.id AND locked.id = v.id", binary=True)
_WRITTEN_EPOCH = RawQuery("SELECT epoch FROM scan_writers WHERE id = :id")
_MARK = RawQuery(
    "INSERT INTO scan_writers (id, epoch, updated_at) VALUES (:id, :epoch, :at) "
    "ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, updated_at = excluded.updated_at")
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
FAILURE_LOG_SECONDS = 60.0  # while flushes keep failing, one log line this often
# A writer row not updated for 30 days belongs to a process that ended. Kept that long because a
# spool file left by a stopped server (registry.scan_spool) needs its row to skip the flushes that
# had landed: a file whose row was swept would write them again.
_FORGET_AFTER = timedelta(days=30)
_SWEEP_EVERY = 1000  # flushes between two sweeps of such rows
#: At exit, how long a process tries to write what it holds (gunicorn kills a worker after its
#: ``graceful_timeout``, 20 s): what is not in by then stays in the spool (``registry.scan_spool``).
EXIT_SECONDS = 10.0
SPOOL_CHECK_SECONDS = 30.0  # how often a flushing thread looks for files another process left


# SQLite takes the new (serial, client) pairs as one JSON array: one statement text whatever their
# number, compiled once (a VALUES list per flush size was compiled at every flush, and SQLite's
# named-parameter binding is quadratic in the parameter count).
_SQLITE_INSERT_CLIENTS = RawQuery(
    "INSERT INTO serial_clients (serial_id, client_hash) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs) WHERE true "
    "ON CONFLICT DO NOTHING RETURNING serial_id")


_EVENT_COLUMNS = ("batch_id", "serial_id", "at", "channel", "client_hash", "network_hash", "lat", "lon", "verdict")
_SERIAL_COUNTERS = ("id", "n", "new_clients", "first", "last", "lat", "lon", "net", "flag", "flag_at")
# The networks of a serial's latest verifications, asked only when its distinct clients pass the
# clone limit (verification.verdicts: Verifier._check_clones): bounded by the serial's index. After
# a cleared flag, only the verifications since count (``:since``: the clearance, or the epoch).
_RECENT_NETWORKS = RawQuery(
    "SELECT DISTINCT e.network_hash FROM (SELECT network_hash FROM scan_events WHERE serial_id = :id "
    "AND at > :since ORDER BY at DESC LIMIT :n) e WHERE e.network_hash IS NOT NULL")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
RECENT_NETWORKS_SCANNED = 200


class NetworkCache:
    """The networks of serials' recent verifications as last read, per process, for ``ttl``
    seconds: a serial with many clients on few networks (a shop's wifi, a carrier's NAT) is not a
    clone, and each of its verifications asks for its networks again. Read once a minute, not at
    every verification (bench/national.py: ~0.5 ms a read of 1,000 events). What this process
    verified is added at once and kept (``add``: it may be written before the next read);
    other servers' new networks count after at most ``ttl``. At most ``max_entries`` serials, the
    oldest read dropped first."""

    def __init__(self, *, ttl: float = 60.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._max, self._clock = ttl, max_entries, clock
        self._entries: dict[tuple, tuple[float, frozenset[str]]] = {}

    def get(self, key: tuple) -> frozenset[str] | None:
        """``key``: the serial's id and the moment its count started (None: its first scan)."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    def put(self, key: tuple, networks: frozenset[str]) -> None:
        entries = self._entries
        entries.pop(key, None)
        if len(entries) >= self._max:  # dicts keep the order of insertion: the oldest reads go
            for stale in list(entries)[: max(1, self._max // 10)]:
                entries.pop(stale, None)
        entries[key] = (self._clock() + self._ttl, networks)

    def add(self, key: tuple, networks: set[str]) -> None:
        """More networks of a serial read before (a set only grows); its read keeps its age."""
        entry = self._entries.get(key)
        if entry is not None and not networks <= entry[1]:
            self._entries[key] = (entry[0], entry[1] | networks)


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Rows as one list per column: the arrays of the PostgreSQL statements."""
    return {name: [row[name] for row in rows] for name in names}


def network_of(address: str | None) -> str | None:
    """The network an address belongs to, as clone detection counts networks: its /24 for IPv4,
    its /48 for IPv6 (an IPv4 address mapped into IPv6 counts as IPv4); None for no address."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


#: A unit's key in the writer: ``("serial", gtin, lot, serial)`` or ``("batch", gtin, lot)`` -- what
#: the code says, so a request can note what is pending before the read that finds the unit's id.
UnitKey = tuple[str, ...]


def unit_key(gtin: str, lot: str, serial: str | None) -> UnitKey:
    return ("serial", gtin, lot, serial) if serial is not None else ("batch", gtin, lot)


@dataclass
class _Pending:
    """What this process has counted for one serial (or batch code) and not yet written; ``ident``
    is its row id. ``net`` is the network the latest place (``lat``, ``lon``) came from;
    ``networks`` every network seen."""

    ident: int
    count: int = 0
    new_clients: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    flag: str | None = None
    net: str | None = None
    networks: set[str] = field(default_factory=set)
    flag_at: datetime | None = None  # when the verification that flagged it was made

    def add(self, at: datetime, client: str | None, new_client: bool, lat: float | None, lon: float | None,
            network: str | None = None) -> None:
        self.count += 1
        if client is not None and new_client:
            self.new_clients.add(client)
        if network is not None:
            self.networks.add(network)
        self.first = at if self.first is None else min(self.first, at)
        if self.last is None or at >= self.last:
            self.last = at
            if lat is not None and lon is not None:
                self.lat, self.lon, self.net = lat, lon, network

    def copy(self) -> "_Pending":
        return _Pending(self.ident, self.count, set(self.new_clients), self.first, self.last, self.lat, self.lon,
                        self.flag, self.net, set(self.networks), self.flag_at)

    def merge_later(self, later: "_Pending") -> None:
        """Add counts that happened after these."""
        self.count += later.count
        self.new_clients |= later.new_clients
        self.networks |= later.networks
        self.first = self.first or later.first
        if later.last is not None and (self.last is None or later.last >= self.last):
            self.last = later.last
            if later.lat is not None:
                self.lat, self.lon, self.net = later.lat, later.lon, later.net
        if self.flag is None:
            self.flag, self.flag_at = later.flag, later.flag_at


@dataclass(slots=True)
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
        out = _Pending(ident=0)
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

    def __init__(self, session_factory: sessionmaker[Session] | None = None, *, interval: float = 0.5,
                 max_backlog: int = 200_000, spool: ScanSpool | None = None,
                 observer: ScanObserver | None = None) -> None:
        """``spool``: where what cannot be written is kept instead of lost (at exit, or past
        ``max_backlog`` events while the database refuses the writes), and where this process's
        flushing thread looks for what others left. ``observer``: told of each event and flush
        (the metrics, ``app.metrics``)."""
        self._factory = session_factory
        self._spool = spool
        self._observer = observer
        self._kept: Spilled | None = None  # the file written at exit, locked until the process ends
        self._interval = interval
        self._max_backlog = max_backlog
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._units: dict[UnitKey, _Pending] = {}
        # What a flush has taken but not yet committed: still counted by readers until it is.
        self._flight: dict[UnitKey, _Pending] = {}
        self._flight_events: list[dict[str, Any]] = []
        self._flight_epoch: int | None = None
        self._next_epoch = 1
        self._flushes = 0
        self._id = uuid.uuid4().hex
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        _WRITERS.add(self)
        if session_factory is not None:
            atexit.register(self._flush_at_exit)

    @property
    def writer_id(self) -> str:
        """This process's writer row (a forked worker gets its own, and starts empty)."""
        return self._id

    def _after_fork(self) -> None:
        """In a forked child (a gunicorn worker): a writer row of its own, nothing pending (the
        parent writes what it had), fresh locks (another thread of the parent may have held one at
        the fork), and no flushing thread (threads do not survive a fork) until the first event,
        unless files wait in the spool: a worker that ended left them, and this one writes them
        (its thread's first flush comes within a second, after wsgi.py's hook has run)."""
        self._id, self._next_epoch, self._flushes = uuid.uuid4().hex, 1, 0
        self._events, self._units, self._flight, self._flight_epoch = [], {}, {}, None
        self._flight_events = []
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()
        self._wake, self._thread = threading.Event(), None
        if self._spool is not None and self._spool.waiting():  # a worker that ended left events
            self._ensure_thread()

    # -- the request side ---------------------------------------------------------------------
    def view(self, key: UnitKey) -> PendingView:
        """Note this process's unwritten counts for a unit; call it before the query that reads
        the unit's counters and this writer's row."""
        with self._lock:
            return PendingView(flight=_copy(self._flight.get(key)), flight_epoch=self._flight_epoch,
                               pending=_copy(self._units.get(key)), next_epoch=self._next_epoch)

    def submit(self, event: dict[str, Any], *, key: UnitKey, new_client: bool) -> None:
        """Queue ``event`` and count it for the unit ``key`` (its row id in the event: ``serial_id``
        for a serial, else ``batch_id``)."""
        ident = event["serial_id"] if key[0] == "serial" else event["batch_id"]
        with self._lock:
            if len(self._events) >= self._max_backlog:
                oldest = self._events[: len(self._events) // 10]
                del self._events[: len(oldest)]
                self._set_aside(oldest)
            self._events.append(event)
            self._pending(key, ident).add(event["at"], event["client_hash"], new_client, event["lat"], event["lon"],
                                          event["network_hash"])
        if self._observer is not None:
            self._observer.recorded(event["channel"], event["verdict"])
        self._ensure_thread()

    def flag(self, key: UnitKey, serial_id: int, reason: str, at: datetime) -> None:
        """Flag the serial as found by a verification made ``at``; an inspector's clearance made
        after that moment wins when both reach the database (``_BUMP_SERIAL``)."""
        with self._lock:
            pending = self._pending(key, serial_id)
            if pending.flag is None:
                pending.flag, pending.flag_at = reason, at
        self._ensure_thread()

    def _set_aside(self, oldest: list[dict[str, Any]]) -> None:
        """The backlog is full (the database has refused the writes for minutes): its oldest
        events go to the spool, under a writer row of their own, instead of being dropped; the
        counts stay pending here (under ``_lock``)."""
        if self._spool is None:
            log.error("scan backlog full: its %d oldest events dropped", len(oldest))
            return
        try:
            self._spool.spill(uuid.uuid4().hex, [SpooledFlush(1, oldest)]).release()
        except OSError as exc:
            log.error("scan backlog full: its %d oldest events dropped, the spool refused them (%s)", len(oldest), exc)
        else:
            log.error("scan backlog full: its %d oldest events kept in %s until the database takes them",
                      len(oldest), self._spool.directory)

    def _pending(self, key: UnitKey, ident: int) -> _Pending:
        """The unit's pending counts (under ``_lock``), started if it has none."""
        pending = self._units.get(key)
        if pending is None:
            pending = self._units[key] = _Pending(ident)
        return pending

    def backlog(self) -> tuple[int, datetime | None]:
        """The events this process has not written yet (taken by a flush still going included)
        and when the oldest of them was made: a flush every interval keeps it under a second old,
        a database that refuses the writes lets it grow (readiness, ``app.health``)."""
        with self._lock:
            count = len(self._events) + sum(p.count for p in self._flight.values())
            oldest = [p.first for p in self._flight.values() if p.first is not None]
            if self._events:
                oldest.append(self._events[0]["at"])
        return count, min(oldest, default=None)

    def spooled(self) -> int:
        """How many files of unwritten events wait in the spool (readiness, ``app.health``)."""
        return self._spool.waiting() if self._spool is not None else 0

    # -- the writing side ---------------------------------------------------------------------
    def _take(self) -> tuple[int, list[dict[str, Any]], dict[UnitKey, _Pending]]:
        with self._lock:
            if not self._events and not self._units:
                return 0, [], {}
            epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
            taken = self._events, self._units
            self._flight, self._flight_events, self._flight_epoch = self._units, self._events, epoch
            self._events, self._units = [], {}
            return (epoch, *taken)

    def _landed(self) -> None:
        with self._lock:
            self._flight, self._flight_events, self._flight_epoch = {}, [], None

    def _put_back(self, events) -> None:
        with self._lock:
            self._events[:0] = events
            for key, older in self._flight.items():
                if key in self._units:  # what arrived meanwhile happened after what was taken
                    older.merge_later(self._units[key])
                self._units[key] = older
            self._flight, self._flight_events, self._flight_epoch = {}, [], None

    def flush(self, session: Session | None = None) -> int:
        """Write everything pending; returns the number of events written. With ``session``, the
        writes join that transaction (its owner commits)."""
        writer = self.writer_id
        with self._flush_lock:
            epoch, events, units = self._take()
            if not epoch:
                return 0
            own = session is None
            if own and self._factory is None:
                self._put_back(events)
                raise RuntimeError("this ScanWriter has no session factory: pass a session")
            work = self._factory() if own else session
            try:
                self._write(work, events, units)
                self._mark(work, writer, epoch)
                if own:
                    work.commit()
            except Exception:
                # Whatever failed (a lost connection fails the rollback too), the events are kept:
                # put back to be written by the next flush, unless the commit landed before the
                # connection was lost, which this writer's row then says.
                if own:
                    _quietly(work.rollback)
                if own and self._landed_anyway(writer, epoch):
                    self._landed()
                else:
                    self._put_back(events)
                raise
            finally:
                if own:
                    _quietly(work.close)
            self._landed()
            return len(events)

    def _landed_anyway(self, writer: str, epoch: int) -> bool:
        """Whether flush ``epoch`` was committed although its transaction reported a failure (read
        on a new connection; when that fails too, it did not: the events are written again)."""
        try:
            with self._factory() as check:
                row = _WRITTEN_EPOCH.first(check, {"id": writer})
                return row is not None and row[0] >= epoch
        except Exception:  # noqa: BLE001 - the database is still unreachable
            return False

    def _mark(self, session: Session, writer: str, epoch: int) -> None:
        """This flush's number in this writer's row, in the flush's transaction; now and then,
        remove the rows of processes that ended."""
        now = utcnow()
        _MARK.execute(session, {"id": writer, "epoch": epoch, "at": now})
        self._flushes += 1
        if self._flushes % _SWEEP_EVERY == 1:
            session.execute(delete(ScanWriterState).where(ScanWriterState.updated_at < now - _FORGET_AFTER))

    @staticmethod
    def _write(session: Session, events, units: dict[UnitKey, _Pending]) -> None:
        """A handful of statements per flush, however many events: the events, the new (serial,
        client) pairs (answering which were really new: another server may have written the same
        pair first), and the counters, in a fixed order so servers never deadlock."""
        serials = {p.ident: p for key, p in units.items() if key[0] == "serial"}
        batches = {p.ident: p for key, p in units.items() if key[0] == "batch"}
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(_RELAXED_COMMIT)  # only this transaction: scan events, not registrations
        pairs = [(serial_id, client) for serial_id, p in sorted(serials.items()) for client in sorted(p.new_clients)]
        really_new: dict[int, int] = {}
        for start in range(0, len(pairs), 500):  # bounded statements, even after a backlog
            chunk = pairs[start:start + 500]
            if postgres:
                found = _PG_INSERT_CLIENTS.all(session, {"s": [s for s, _ in chunk], "c": [c for _, c in chunk]})
            else:
                found = _SQLITE_INSERT_CLIENTS.all(session, {"pairs": json.dumps(chunk)})
            for (serial_id,) in found:
                really_new[serial_id] = really_new.get(serial_id, 0) + 1
        counters = [{"id": serial_id, "n": p.count, "new_clients": really_new.get(serial_id, 0), "first": p.first,
                     "last": p.last, "lat": p.lat, "lon": p.lon, "net": p.net, "flag": p.flag,
                     "flag_at": p.flag_at}
                    for serial_id, p in sorted(serials.items())]
        if postgres:
            if events:
                _PG_INSERT_EVENTS.execute(session, _columns(events, _EVENT_COLUMNS))
            if counters:
                _PG_BUMP_SERIALS.execute(session, _columns(counters, _SERIAL_COUNTERS))
        else:
            if events:
                _INSERT_EVENTS.many(session, events)
            if counters:
                _BUMP_SERIAL.many(session, counters)
        if batches:
            _BUMP_BATCH.many(session, [{"id": batch_id, "n": p.count, "first": p.first}
                                          for batch_id, p in sorted(batches.items())])

    def _ensure_thread(self) -> None:
        thread = self._thread
        if (thread is not None and thread.is_alive()) or self._factory is None or self._stopping:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="scan-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failing_since: float | None = None  # monotonic time of the first failure in a row
        said = 0.0  # when the failures were last logged
        spool_checked = -SPOOL_CHECK_SECONDS  # the first flush that lands looks at once
        # Files left by a worker that ended: written within a second, however long the interval.
        wait = min(self._interval, 1.0) if self._spool is not None and self._spool.waiting() else self._interval
        while not self._stopping:
            self._wake.wait(wait)
            wait = self._interval
            self._wake.clear()
            try:
                self.flush()
                self._tell_observer(failed=False)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure of one flush
                self._tell_observer(failed=True)
                # The first failure with its traceback, then one line a minute while they go on:
                # a database down for an hour had logged a traceback twice a second per worker.
                now = time.monotonic()
                if failing_since is None:
                    failing_since = said = now
                    log.exception("writing scan events failed; they stay pending and are retried")
                elif now - said >= FAILURE_LOG_SECONDS:
                    said = now
                    log.error("writing scan events still fails after %.0f s (%d events pending): %s",
                              now - failing_since, self.backlog()[0], exc)
            else:
                if failing_since is not None:
                    log.warning("writing scan events works again after %.0f s", time.monotonic() - failing_since)
                    failing_since, spool_checked = None, -SPOOL_CHECK_SECONDS  # and what waits in the spool
                if time.monotonic() - spool_checked >= SPOOL_CHECK_SECONDS:
                    spool_checked = time.monotonic()
                    try:
                        self.replay_spool()
                    except Exception:  # noqa: BLE001 - the files stay; the next look tries again
                        log.exception("writing the scan events kept in %s failed", self._spool.directory)

    def close(self) -> None:
        """Stop the flushing thread and write what is pending (app shutdown, tests)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._factory is not None:
            self.flush()

    def _tell_observer(self, *, failed: bool) -> None:
        if self._observer is not None:
            self._observer.flushed(self.backlog()[0], self.spooled(), failed=failed)

    def _unwritten(self) -> list[SpooledFlush]:
        """What the database may not hold yet, by the flush number that writes it: the flush under
        way, and what is pending (the next number; a failed flush's events are put back into it)."""
        with self._lock:
            unwritten = []
            if self._flight_epoch is not None:
                unwritten.append(SpooledFlush(self._flight_epoch, list(self._flight_events), _unit_rows(self._flight)))
            if self._events or self._units:
                unwritten.append(SpooledFlush(self._next_epoch, list(self._events), _unit_rows(self._units)))
            return unwritten

    def _flush_at_exit(self) -> None:
        """The process ends: what is unwritten goes to the spool first, then to the database within
        ``EXIT_SECONDS``; the file is removed once it is in, else left for the next process (which
        writes only the flushes this writer's row does not show committed)."""
        deadline = time.monotonic() + EXIT_SECONDS
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=EXIT_SECONDS / 2)  # a flush under way lands or fails meanwhile
        unwritten = self._unwritten()
        if not unwritten:
            return
        spilled = self._spill(unwritten)
        if thread is None or not thread.is_alive():  # else that flush still holds the flush lock
            last = threading.Thread(target=self._last_flushes, name="scan-writer-exit", daemon=True)
            last.start()
            last.join(timeout=max(deadline - time.monotonic(), 0.0))
        left = self._unwritten()
        if not left:
            if spilled is not None:
                spilled.discard()
            return
        count = sum(len(f.events) for f in left)
        if spilled is not None:
            # Its lock is let go with the process: a flush still under way may yet commit, and no
            # other process may write the same events before that is settled.
            self._kept = spilled
            log.warning("%d scan events not written before this process ended are kept in %s; the next process "
                        "of this server writes them", count, spilled.path)
        else:
            log.error("%d scan events not written before this process ended are lost", count)

    def _spill(self, unwritten: list[SpooledFlush]) -> Spilled | None:
        if self._spool is None:
            return None
        try:
            return self._spool.spill(self._id, unwritten)
        except OSError:
            log.exception("scan events pending at exit could not be kept in %s", self._spool.directory)
            return None

    def _last_flushes(self) -> None:
        for attempt in (1, 2, 3):  # a lost connection or a lock conflict: the events are still pending
            try:
                self.flush()
                return
            except Exception as exc:  # noqa: BLE001
                if attempt == 3:
                    log.warning("scan events pending at exit could not be written: %s", exc)

    def replay_spool(self) -> int:
        """Write what other processes of this server left in the spool (those that ended: a file's
        lock is held until its process ends); returns the number of events written. A flush its
        writer's row shows committed is not written again."""
        if self._spool is None or self._factory is None:
            return 0
        written = 0
        for claimed, writer, flushes in self._spool.claim():
            try:
                with self._factory() as session:
                    row = _WRITTEN_EPOCH.first(session, {"id": writer})
                    todo = [f for f in flushes if f.epoch > (row[0] if row is not None else 0)]
                    if todo:
                        events = [event for f in todo for event in f.events]
                        self._write(session, events, _units_of(todo))
                        _MARK.execute(session, {"id": writer, "epoch": todo[-1].epoch, "at": utcnow()})
                        session.commit()
                        written += len(events)
                        log.info("wrote %d scan events kept in %s", len(events), claimed.path)
            except OperationalError:  # the database is unavailable again: every file stays for later
                claimed.release()
                raise
            except SQLAlchemyError as exc:
                # What the database refuses whenever it is sent (a serial this database does not
                # hold: a file moved from another registry's server): kept apart, named, and the
                # other files still written.
                log.error("scan events kept in %s cannot be written (%s): set aside as %s", claimed.path,
                          exc.__class__.__name__, claimed.set_aside(".unwritable").name)
                continue
            except BaseException:
                claimed.release()
                raise
            claimed.discard()
        return written


_UNIT_FIELDS = tuple(f.name for f in fields(_Pending))


def _unit_rows(units: dict[UnitKey, _Pending]) -> list[dict[str, Any]]:
    """Pending counts as plain rows, for the spool (which writes their sets as sorted lists)."""
    return [{"key": list(key), **{name: getattr(p, name) for name in _UNIT_FIELDS}} for key, p in units.items()]


def _units_of(flushes: list[SpooledFlush]) -> dict[UnitKey, _Pending]:
    """The spooled flushes' counts as one flush's, the later merged into the earlier."""
    units: dict[UnitKey, _Pending] = {}
    for flush in flushes:
        for row in flush.units:
            values = {name: row[name] for name in _UNIT_FIELDS}
            later = _Pending(**{**values, "new_clients": set(values["new_clients"]), "networks": set(values["networks"])})
            key = tuple(row["key"])
            if key in units:
                units[key].merge_later(later)
            else:
                units[key] = later
    return units


class ScanObserver(Protocol):
    """What a ``ScanWriter`` tells of its work (``app.metrics.ScanMetrics``)."""

    def recorded(self, channel: str, verdict: str) -> None:
        """An event was handed to the writer (in the request: keep it cheap)."""

    def flushed(self, pending: int, spooled: int, *, failed: bool) -> None:
        """A flush of the writer's thread ended: what is still pending in this process, the files
        waiting in the spool, whether the database refused the flush."""


def _quietly(step: Callable[[], Any]) -> None:
    """A rollback or close on a connection that may be gone: its failure changes nothing."""
    try:
        step()
    except Exception:  # noqa: BLE001
        log.debug("ignored a failure to end a failed scan flush's transaction", exc_info=True)


#: Every writer of this process, re-keyed in a forked child by one hook (a getpid() per request,
#: as before, was a system call each time: 2 % of the verification's CPU, bench/http_load.py).
_WRITERS: "weakref.WeakSet[ScanWriter]" = weakref.WeakSet()


def _writers_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork()


os.register_at_fork(after_in_child=_writers_after_fork)


@dataclass(slots=True)
class _UnitState:
    """One read of a unit: what the database held, and what this process had pending before."""

    key: UnitKey
    client: str | None
    seen: PendingView
    ident: int | None  # the serial's (or batch code's) row id; None: no such unit
    count: int = 0
    clients: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    client_seen: bool = False
    written: int | None = None  # the last flush of this process's writer that the read saw
    last_network: str | None = None  # the network the latest place came from
    flagged: bool = False
    cleared_at: datetime | None = None  # an inspector last cleared a clone flag then
    baseline: int = 0  # the distinct clients counted at that moment


def _flagged(state: _UnitState, pending: _Pending) -> bool:
    """Flagged in the database, or by a verification of this process not yet written (unless an
    inspector's clearance, already written, came after it: the write will not flag it again)."""
    if state.flagged:
        return True
    if pending.flag is None:
        return False
    return state.cleared_at is None or pending.flag_at is None or pending.flag_at > state.cleared_at


class ScanHistory:
    """``verification.verdicts.ScanRecorder`` over the registry: reads counters, hands events to the writer.

    Given the request's ``RegistryLookup``, ``begin`` makes the one read of a verification: with the
    counters it answers the serial's id and the registry's generation, which the lookup adopts
    instead of reading them itself (bench/http_load.py: on PostgreSQL each round trip costs more
    than the rest of the request's database work)."""

    def __init__(self, source: Session | Reader, writer: ScanWriter, *, lookup: RegistryLookup | None = None,
                 clock: Callable[[], datetime] = utcnow, network_cache: NetworkCache | None = None,
                 recording: bool = True) -> None:
        """``recording=False``: the history is read and summarised as it stands, and nothing is
        added to it (a verdict shown again, not a new check: the page's language switched)."""
        self._source = source
        self._writer = writer
        self._lookup = lookup
        self._clock = clock
        self._network_cache = network_cache
        self._recording = recording
        self._state: _UnitState | None = None
        self._held: tuple[dict[str, Any], UnitKey, bool] | None = None  # record()'s event, until settle()

    def begin(self, gtin: str, lot: str, serial: str | None, context: ScanContext) -> None:
        self._state = self._read(unit_key(gtin, lot, serial), context.client)

    def _read(self, key: UnitKey, client: str | None) -> _UnitState:
        writer = self._writer.writer_id
        seen = self._writer.view(key)
        if key[0] == "batch":
            generation, ident, count, first_seen, written = _BATCH_STATE.first(
                self._source, {"gtin": key[1], "lot": key[2], "writer": writer})
            state = _UnitState(key, client, seen, ident, count or 0, first_seen=as_utc(first_seen), written=written)
        else:
            (generation, ident, issued, count, clients, first_seen, last_seen, lat, lon, last_network, flagged,
             cleared_at, baseline, client_seen, written) = _UNIT_STATE.first(
                self._source, {"gtin": key[1], "lot": key[2], "serial": key[3], "client": client or "",
                               "writer": writer})
            state = _UnitState(key, client, seen, ident, count or 0, clients or 0, as_utc(first_seen),
                               as_utc(last_seen), lat, lon, bool(client_seen), written, last_network, flagged is not None,
                               as_utc(cleared_at), baseline or 0)
            if self._lookup is not None:
                self._lookup.adopt_serial(key[1], key[2], key[3], ident, issued)
        if self._lookup is not None:
            self._lookup.adopt_generation(generation or 0)
        return state

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               counted: bool = True) -> ScanSummary | None:
        """The unit's history with this verification counted. Its event is held until ``settle``
        gives the verdict answered (the clone check, which needs this summary, may change it).
        ``counted=False`` (a code that proves nothing), or a history that is not recording: the
        history as it stands."""
        self._held = None
        if batch.batch_id is None:
            return None
        key = unit_key(batch.gtin, batch.lot, serial.serial if serial else None)
        state, self._state = self._state, None
        if state is None or state.key != key or state.client != context.client or state.ident is None:
            state = self._read(key, context.client)  # no begin() for this unit (or an unissued serial)
        pending = state.seen.unwritten(state.written)
        if not (self._recording and counted):
            clients = state.clients + len(pending.new_clients) if serial is not None else 0
            return ScanSummary(count=state.count + pending.count, first_seen=state.first_seen or pending.first,
                               distinct_clients=clients, flagged=serial is not None and _flagged(state, pending),
                               counted_since=state.cleared_at, clone_baseline=state.baseline)
        now = context.at or self._clock()
        event = {"batch_id": batch.batch_id, "serial_id": serial.serial_id if serial else None, "at": now,
                 "channel": context.channel, "client_hash": context.client, "network_hash": context.network,
                 "lat": context.lat, "lon": context.lon}  # its "verdict": settle()
        first = state.first_seen or pending.first or now
        if serial is None:
            self._held = (event, key, False)
            return ScanSummary(count=state.count + pending.count + 1, first_seen=first, distinct_clients=0)
        client = context.client
        new_client = client is not None and not state.client_seen and client not in pending.new_clients
        travel = None
        last, lat, lon, net = state.last_seen, state.lat, state.lon, state.last_network
        if pending.last is not None and (last is None or pending.last >= last) and pending.lat is not None:
            last, lat, lon, net = pending.last, pending.lat, pending.lon, pending.net
        # Places are what clients say: two from one network prove no travel (one phone can claim both).
        other_network = net is None or context.network is None or net != context.network
        if (context.lat is not None and context.lon is not None and lat is not None and lon is not None and last
                and other_network):
            hours = max((now - last).total_seconds() / 3600, 1 / 60)  # a minute's slack
            travel = haversine_km(lat, lon, context.lat, context.lon) / hours
        self._held = (event, key, new_client)
        return ScanSummary(count=state.count + pending.count + 1, first_seen=first,
                           distinct_clients=state.clients + len(pending.new_clients) + (1 if new_client else 0),
                           travel_kmh=travel, flagged=_flagged(state, pending), counted_since=state.cleared_at,
                           clone_baseline=state.baseline)

    def settle(self, verdict: Verdict) -> None:
        """Hand the event ``record`` held to the scan writer, with the verdict the verification
        answered: a check found to be a clone's had been stored as 'genuine', the verdict before the
        clone check, and the inspectors' scan history said so."""
        held, self._held = self._held, None
        if held is not None:
            event, key, new_client = held
            event["verdict"] = verdict.value
            self._writer.submit(event, key=key, new_client=new_client)

    def networks(self, batch: BatchInfo, serial: SerialInfo, context: ScanContext, *,
                 since: datetime | None = None) -> int:
        """The networks of the serial's latest ``RECENT_NETWORKS_SCANNED`` verifications in the
        database (after ``since``, a cleared flag; as the ``NetworkCache`` last read them, if
        given), with those this process has not written yet and this one's (when it is recorded)."""
        seen = self._writer.view(unit_key(batch.gtin, batch.lot, serial.serial))  # before the read: no gap
        cache = self._network_cache
        cached = (serial.serial_id, since)  # a clearance starts a new count, and a new cache entry
        written = cache.get(cached) if cache is not None else None
        if written is None:
            written = frozenset(network for (network,) in _RECENT_NETWORKS.all(
                self._source, {"id": serial.serial_id, "n": RECENT_NETWORKS_SCANNED, "since": since or _EPOCH}))
            if cache is not None:
                cache.put(cached, written)
        found = set(written)
        for part in (seen.flight, seen.pending):
            if part is not None:
                found |= part.networks
        if context.network is not None and self._recording:
            found.add(context.network)
        if cache is not None:
            cache.add(cached, found)
        return len(found)

    def flag(self, batch: BatchInfo, serial: SerialInfo, reason: ReasonCode) -> None:
        if not self._recording:
            return  # a verdict shown again: the check that was recorded has flagged what it found
        self._writer.flag(unit_key(batch.gtin, batch.lot, serial.serial), serial.serial_id, reason.value,
                          self._clock())
