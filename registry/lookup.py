"""The registry's side of verification: key, batch and serial lookups, and the scan history.

Verification is the hot path. Keys and batches change only through events that are appended to
the transparency log (certification, revocation, registration, recall), so the log size is a
generation number: lookups are cached per process and the cache is dropped whenever the log has
grown. One primary-key read of the log size per request keeps every server exact, with no
cross-server invalidation.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Float, Integer, bindparam, select, text, update
from sqlalchemy.orm import Session

from keys.encoding import b64url_decode, utcnow
from keys.signing import public_key_from_raw
from registry.db import UTCDateTime
from registry.models import Batch, Producer, ProducerKey, Recall, Serial
from verification.verdicts import BatchInfo, KeyInfo, ReasonCode, ScanContext, ScanSummary, SerialInfo, Verdict

__all__ = ["RegistryLookup", "ScanHistory", "LookupCache", "haversine_km"]

_MISSING = object()


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


_LOG_SIZE = text("SELECT size FROM log_state WHERE id = 1")


class LookupCache:
    """Per-process cache of keys, batches and products, valid for one log generation."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._entries: dict[tuple, Any] = {}
        self._max = max_entries

    def view(self, generation: int) -> dict[tuple, Any]:
        with self._lock:
            if generation != self._generation or len(self._entries) > self._max:
                self._generation = generation
                self._entries = {}
            return self._entries


class RegistryLookup:
    """``verification.verdicts.Lookup`` over the registry database."""

    def __init__(self, session: Session, *, cache: LookupCache | None = None) -> None:
        self._session = session
        self._entries: dict[tuple, Any] | None = None
        if cache is not None:
            generation = session.execute(_LOG_SIZE).scalar() or 0
            self._entries = cache.view(generation)

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        if self._entries is None:
            return load()
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            value = load()
            self._entries[key] = value
        return value

    def key(self, kid: str) -> KeyInfo | None:
        return self._cached(("key", kid), lambda: self._load_key(kid))

    def _load_key(self, kid: str) -> KeyInfo | None:
        row = self._session.execute(
            select(ProducerKey.kid, ProducerKey.public_key, ProducerKey.producer_id, ProducerKey.gs1_prefixes,
                   ProducerKey.status, ProducerKey.compromised_at).where(ProducerKey.kid == kid)
        ).first()
        if row is None:
            return None
        return KeyInfo(kid=row.kid, public_key=public_key_from_raw(b64url_decode(row.public_key)),
                       producer_id=row.producer_id, gs1_prefixes=tuple(row.gs1_prefixes), status=row.status,
                       compromised_at=row.compromised_at)

    def batch(self, gtin: str, lot: str) -> BatchInfo | None:
        return self._cached(("batch", gtin, lot), lambda: self._load_batch(gtin, lot))

    def _load_batch(self, gtin: str, lot: str) -> BatchInfo | None:
        row = self._session.execute(
            select(Batch.id, Batch.gtin, Batch.lot, Batch.producer_id, Batch.status, Batch.expiry_date, Batch.record,
                   Producer.name, Producer.country)
            .join(Producer, Producer.id == Batch.producer_id)
            .where(Batch.gtin == gtin, Batch.lot == lot)
        ).first()
        if row is None:
            return None
        reason = None
        if row.status == "recalled":
            reason = self._session.execute(
                select(Recall.reason).where(Recall.batch_id == row.id).order_by(Recall.id.desc()).limit(1)
            ).scalar_one_or_none()
        return BatchInfo(batch_id=row.id, gtin=row.gtin, lot=row.lot, producer_id=row.producer_id,
                         status=row.status, expiry_date=row.expiry_date, record=row.record,
                         producer={"id": row.producer_id, "name": row.name, "country": row.country},
                         recall_reason=reason)

    def product(self, gtin: str) -> dict[str, Any] | None:
        return self._cached(("product", gtin), lambda: self._load_product(gtin))

    def _load_product(self, gtin: str) -> dict[str, Any] | None:
        record = self._session.execute(
            select(Batch.record).where(Batch.gtin == gtin).order_by(Batch.id.desc()).limit(1)
        ).scalar_one_or_none()
        return record.get("product") if record else None

    def serial(self, batch: BatchInfo, serial: str) -> SerialInfo | None:
        # Issued serials are never deleted: a hit can be cached across generations' lifetime.
        def load() -> SerialInfo | None:
            row = self._session.execute(
                select(Serial.id).where(Serial.batch_id == batch.batch_id, Serial.serial == serial)
            ).scalar_one_or_none()
            return SerialInfo(serial_id=row, serial=serial) if row is not None else None

        if self._entries is None:
            return load()
        found = self._entries.get(("serial", batch.batch_id, serial))
        if found is None:
            found = load()
            if found is not None:  # a miss is not cached: serials are issued without a log entry
                self._entries[("serial", batch.batch_id, serial)] = found
        return found


_AT = UTCDateTime()
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
# The scan path runs on every verification: plain SQL built once, typed binds, no ORM overhead.
_INSERT_EVENT = text(
    "INSERT INTO scan_events (batch_id, serial_id, at, channel, client_hash, lat, lon, verdict) "
    "VALUES (:batch_id, :serial_id, :at, :channel, :client_hash, :lat, :lon, :verdict)"
).bindparams(bindparam("at", type_=_AT))
_PREVIOUS_PLACE = text(
    "SELECT last_seen, last_lat, last_lon FROM serials WHERE id = :id"
).columns(last_seen=_AT, last_lat=Float(), last_lon=Float())
_INSERT_CLIENT = {
    "sqlite": text("INSERT INTO serial_clients (serial_id, client_hash) VALUES (:serial_id, :client_hash) "
                   "ON CONFLICT DO NOTHING"),
    "postgresql": text("INSERT INTO serial_clients (serial_id, client_hash) VALUES (:serial_id, :client_hash) "
                       "ON CONFLICT DO NOTHING"),
}
_BUMP_SERIAL = text(
    "UPDATE serials SET scan_count = scan_count + 1, distinct_clients = distinct_clients + :new_client, "
    "first_seen = COALESCE(first_seen, :at), last_seen = :at, "
    "last_lat = COALESCE(:lat, last_lat), last_lon = COALESCE(:lon, last_lon) "
    "WHERE id = :id RETURNING scan_count, first_seen, distinct_clients"
).bindparams(bindparam("at", type_=_AT), bindparam("lat", type_=Float()), bindparam("lon", type_=Float())
             ).columns(scan_count=Integer(), first_seen=_AT, distinct_clients=Integer())
_BUMP_BATCH = text(
    "UPDATE batches SET scan_count = scan_count + 1, first_seen = COALESCE(first_seen, :at) "
    "WHERE id = :id RETURNING scan_count, first_seen"
).bindparams(bindparam("at", type_=_AT)).columns(scan_count=Integer(), first_seen=_AT)


class ScanHistory:
    """``verification.verdicts.ScanRecorder``: one scan event per verification, with summary counters
    on the serial so the clone check costs the same with ten or ten million events."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._session = session
        self._clock = clock

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               verdict: Verdict) -> ScanSummary | None:
        now = context.at or self._clock()
        execute = self._session.execute
        if self._session.get_bind().dialect.name == "postgresql":
            # A scan event may be lost in a server crash; it must not cost a WAL flush per request.
            # Only this transaction is relaxed: registrations, serials and recalls stay durable.
            execute(_RELAXED_COMMIT)
        execute(_INSERT_EVENT, {"batch_id": batch.batch_id, "serial_id": serial.serial_id if serial else None,
                                "at": now, "channel": context.channel, "client_hash": context.client,
                                "lat": context.lat, "lon": context.lon, "verdict": verdict.value})
        if serial is None:
            if batch.batch_id is None:
                return None
            row = execute(_BUMP_BATCH, {"id": batch.batch_id, "at": now}).one()
            return ScanSummary(count=row.scan_count, first_seen=row.first_seen, distinct_clients=0)
        travel = None
        if context.lat is not None and context.lon is not None:
            previous = execute(_PREVIOUS_PLACE, {"id": serial.serial_id}).one()
            if previous.last_lat is not None and previous.last_lon is not None and previous.last_seen is not None:
                km = haversine_km(previous.last_lat, previous.last_lon, context.lat, context.lon)
                hours = max((now - previous.last_seen).total_seconds() / 3600, 1 / 60)  # a minute's slack
                travel = km / hours
        new_client = 0
        if context.client is not None:
            dialect = self._session.get_bind().dialect.name
            inserted = execute(_INSERT_CLIENT[dialect], {"serial_id": serial.serial_id, "client_hash": context.client})
            new_client = 1 if inserted.rowcount == 1 else 0
        row = execute(_BUMP_SERIAL, {"id": serial.serial_id, "at": now, "new_client": new_client,
                                     "lat": context.lat, "lon": context.lon}).one()
        return ScanSummary(count=row.scan_count, first_seen=row.first_seen, distinct_clients=row.distinct_clients,
                           travel_kmh=travel)

    def flag(self, serial: SerialInfo, reason: ReasonCode) -> None:
        self._session.execute(update(Serial).where(Serial.id == serial.serial_id, Serial.flagged.is_(None))
                              .values(flagged=reason.value))
