"""The registry's side of verification: key, batch and serial lookups, and the scan history."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keys.encoding import b64url_decode, utcnow
from keys.signing import public_key_from_raw
from registry.models import Batch, Producer, ProducerKey, Recall, ScanEvent, Serial, SerialClient
from verification.verdicts import BatchInfo, KeyInfo, ReasonCode, ScanContext, ScanSummary, SerialInfo, Verdict

__all__ = ["RegistryLookup", "ScanHistory", "haversine_km"]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


class RegistryLookup:
    """``verification.verdicts.Lookup`` over the registry database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def key(self, kid: str) -> KeyInfo | None:
        row = self._session.get(ProducerKey, kid)
        if row is None:
            return None
        return KeyInfo(kid=row.kid, public_key=public_key_from_raw(b64url_decode(row.public_key)),
                       producer_id=row.producer_id, gs1_prefixes=tuple(row.gs1_prefixes), status=row.status,
                       compromised_at=row.compromised_at)

    def batch(self, gtin: str, lot: str) -> BatchInfo | None:
        row = self._session.execute(
            select(Batch, Producer).join(Producer, Producer.id == Batch.producer_id)
            .where(Batch.gtin == gtin, Batch.lot == lot)
        ).first()
        if row is None:
            return None
        batch, producer = row
        reason = None
        if batch.status == "recalled":
            reason = self._session.execute(
                select(Recall.reason).where(Recall.batch_id == batch.id).order_by(Recall.id.desc()).limit(1)
            ).scalar_one_or_none()
        return BatchInfo(batch_id=batch.id, gtin=batch.gtin, lot=batch.lot, producer_id=batch.producer_id,
                         status=batch.status, expiry_date=batch.expiry_date, record=batch.record,
                         producer={"id": producer.id, "name": producer.name, "country": producer.country},
                         recall_reason=reason)

    def product(self, gtin: str) -> dict[str, Any] | None:
        record = self._session.execute(
            select(Batch.record).where(Batch.gtin == gtin).order_by(Batch.id.desc()).limit(1)
        ).scalar_one_or_none()
        return record.get("product") if record else None

    def serial(self, batch: BatchInfo, serial: str) -> SerialInfo | None:
        row = self._session.execute(
            select(Serial.id).where(Serial.batch_id == batch.batch_id, Serial.serial == serial)
        ).scalar_one_or_none()
        return SerialInfo(serial_id=row, serial=serial) if row is not None else None


class ScanHistory:
    """``verification.verdicts.ScanRecorder``: one scan event per verification, with summary counters
    on the serial so the clone check costs the same with ten or ten million events."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._session = session
        self._clock = clock

    def _insert_ignore(self, table, values: dict[str, Any]) -> bool:
        dialect = self._session.get_bind().dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(**values).on_conflict_do_nothing()
        return self._session.execute(stmt).rowcount == 1

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               verdict: Verdict) -> ScanSummary | None:
        now = context.at or self._clock()
        self._session.add(ScanEvent(batch_id=batch.batch_id, serial_id=serial.serial_id if serial else None, at=now,
                                    channel=context.channel, client_hash=context.client, lat=context.lat,
                                    lon=context.lon, verdict=verdict.value))
        if serial is None:
            if batch.batch_id is None:
                return None
            row = self._session.get(Batch, batch.batch_id, with_for_update=True)
            row.scan_count = (row.scan_count or 0) + 1
            row.first_seen = row.first_seen or now
            self._session.flush()
            return ScanSummary(count=row.scan_count, first_seen=row.first_seen, distinct_clients=0)
        row = self._session.get(Serial, serial.serial_id, with_for_update=True)
        new_client = context.client is not None and self._insert_ignore(
            SerialClient.__table__, {"serial_id": serial.serial_id, "client_hash": context.client})
        travel = None
        if (context.lat is not None and context.lon is not None and row.last_lat is not None
                and row.last_lon is not None and row.last_seen is not None):
            km = haversine_km(row.last_lat, row.last_lon, context.lat, context.lon)
            hours = max((now - row.last_seen).total_seconds() / 3600, 1 / 60)  # a minute's slack
            travel = km / hours
        values: dict[str, Any] = {
            "scan_count": Serial.scan_count + 1,
            "last_seen": now,
            "distinct_clients": Serial.distinct_clients + (1 if new_client else 0),
        }
        if row.first_seen is None:
            values["first_seen"] = now
        if context.lat is not None and context.lon is not None:
            values["last_lat"], values["last_lon"] = context.lat, context.lon
        self._session.execute(update(Serial).where(Serial.id == serial.serial_id).values(**values))
        self._session.refresh(row)
        return ScanSummary(count=row.scan_count, first_seen=row.first_seen, distinct_clients=row.distinct_clients,
                           travel_kmh=travel)

    def flag(self, serial: SerialInfo, reason: ReasonCode) -> None:
        self._session.execute(update(Serial).where(Serial.id == serial.serial_id, Serial.flagged.is_(None))
                              .values(flagged=reason.value))
