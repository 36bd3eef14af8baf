"""Exports for partner agencies: CSV lists and GS1 EPCIS 2.0 JSON-LD events.

CSV exports (batches, recalls, confirmed cases, violators in force) are generators of lines, so
a large export streams in constant memory. Cells that a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@``, a tab or a carriage return first) are prefixed with an apostrophe,
identifiers included: a lot or a serial may begin with any of these (GS1's character set 82), and
a shopper's report brings codes nobody checked; the exact values are in the EPCIS export.

The EPCIS export turns scan events and recalls into ObjectEvents of an ``EPCISDocument``:
a verified unit is identified by its GS1 Digital Link URI on ``id.gs1.org`` in ``epcList``, a
batch-level scan or a recall by the class-level URI in ``quantityList``; a scan made with a
(coarse) place gets a ``geo:`` read point. The document validates against the standard's JSON
schema, vendored in ``registry/data/epcis/``.

Nothing here imports Flask. Authorisation is checked when an export is asked for, before the
first line is produced.
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from keys.encoding import MalformedEncoding, b64url_decode, b64url_encode, rfc3339, utcnow
from registry.errors import Invalid, NotFound
from registry.models import MAX_ROW_ID, Batch, CaseNote, Producer, Publication, Recall, Report, ScanEvent, Serial
from registry.services import Actor, Role, batch_named
from verification.digital_link import build_url

__all__ = [
    "ExportService",
    "CSV_EXPORTS",
    "EPCIS_SCHEMA_PATH",
    "EPCIS_CONTEXT",
    "GS1_RESOLVER",
    "csv_lines",
    "serial_uri",
    "class_uri",
]

EPCIS_SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "epcis" / "EPCIS-JSON-Schema.json"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
GS1_RESOLVER = "https://id.gs1.org"
#: The namespace of this service's extension fields in EPCIS events (``pov:verdict``, ...).
EXTENSION_PREFIX = "pov"
_EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-5b7e-9a53-2f7c0e4d1b90")
MAX_EPCIS_EVENTS = 100_000
READERS = (Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER)

#: Columns of each CSV export.
CSV_EXPORTS: dict[str, tuple[str, ...]] = {
    "batches": ("gtin", "lot", "producer_id", "producer_name", "product_name", "brand", "category",
                "facility_name", "facility_country", "production_date", "expiry_date", "quantity", "status",
                "serial_count", "scan_count", "kid", "log_index", "registered_at", "record_version"),
    "recalls": ("gtin", "lot", "producer_id", "product_name", "reason", "recalled_at", "recalled_by", "log_index"),
    "cases": ("case_number", "reported_at", "confirmed_at", "gtin", "lot", "serial", "producer_id", "product_name",
              "verdict_at_report", "where_kind", "where_text", "seller", "link", "price", "bought_on"),
    "violators": ("id", "name", "tax_code", "product", "place", "decision_ref", "decided_on", "title",
                  "published_at", "log_index"),
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return rfc3339(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header, then one CSV line per row (``\\r\\n`` endings, RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Sequence[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(columns)
    for row in rows:
        yield line([_cell(v) for v in row])


def serial_uri(gtin: str, lot: str, serial: str) -> str:
    """``https://id.gs1.org/01/{gtin}/10/{lot}/21/{serial}``, percent-encoded as Digital Link says."""
    return build_url(GS1_RESOLVER, gtin=gtin, lot=lot, serial=serial)


def class_uri(gtin: str, lot: str) -> str:
    """``https://id.gs1.org/01/{gtin}/10/{lot}``: the batch (a class of objects)."""
    return build_url(GS1_RESOLVER, gtin=gtin, lot=lot)


@dataclass(frozen=True)
class PagePosition:
    """Where an EPCIS page ended: the last event's time, kind (0 scan, 1 recall) and row id. Sent
    to clients as an opaque token (base64url of a small JSON array)."""

    at: datetime
    kind: int
    row_id: int

    def token(self) -> str:
        return b64url_encode(json.dumps([self.at.isoformat(), self.kind, self.row_id]).encode("ascii"))

    @classmethod
    def from_token(cls, token: str) -> "PagePosition":
        try:
            at, kind, row_id = json.loads(b64url_decode(token))
            moment = datetime.fromisoformat(at)
            if moment.tzinfo is None or kind not in (0, 1) or not isinstance(row_id, int) or not 0 <= row_id <= MAX_ROW_ID:
                raise ValueError("out of range")
            moment = moment.astimezone(timezone.utc)
        except (ValueError, TypeError, OverflowError, MalformedEncoding):
            raise Invalid("nextPageToken is not a token this service gave", code="BAD_PAGE_TOKEN",
                          field="nextPageToken") from None
        return cls(moment, kind, row_id)


class EpcisPage:
    """One page of EPCIS events, iterated once; after that, ``next_token`` says where the next
    page starts (None: this was the last)."""

    def __init__(self, items: Iterator[tuple[datetime, int, int, dict[str, Any]]], limit: int) -> None:
        self._items, self._limit = items, limit
        self.next_token: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        last = None
        for number, (at, kind, row_id, event) in enumerate(self._items):
            if number == self._limit:  # one more than asked: there is a next page
                self.next_token = PagePosition(at=last[0], kind=last[1], row_id=last[2]).token()
                return
            last = (at, kind, row_id)
            yield event


class ExportService:
    """Read-only exports for the authority, inspectors and partner agencies."""

    def __init__(self, session: Session, *, base_url: str = "", clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    def _stream(self, stmt) -> Iterator[Any]:  # noqa: ANN001
        yield from self.session.execute(stmt.execution_options(yield_per=1000))

    # -- CSV -----------------------------------------------------------------------------------
    def csv(self, actor: Actor, name: str) -> Iterator[str]:
        """Lines of the CSV export ``name`` (one of ``CSV_EXPORTS``); checks the role now."""
        actor.require(*READERS)
        if name not in CSV_EXPORTS:
            raise Invalid(f"exports are {', '.join(CSV_EXPORTS)}", code="BAD_EXPORT", field="name")
        rows = {"batches": self._batches, "recalls": self._recalls, "cases": self._cases,
                "violators": self._violators}[name]()
        return csv_lines(CSV_EXPORTS[name], rows)

    def _batches(self) -> Iterator[tuple]:
        stmt = (select(Batch, Producer.name).join(Producer, Producer.id == Batch.producer_id)
                .order_by(Batch.id))
        for batch, producer_name in self._stream(stmt):
            record = batch.record or {}
            product = record.get("product") or {}
            facility = record.get("facility") or {}
            yield (batch.gtin, batch.lot, batch.producer_id, producer_name, batch.product_name, product.get("brand"),
                   product.get("category"), facility.get("name"), facility.get("country"), batch.production_date,
                   batch.expiry_date, record.get("quantity"), batch.status, batch.serial_count, batch.scan_count,
                   batch.kid, batch.log_index, batch.created_at, record.get("version", 1))

    def _recalls(self) -> Iterator[tuple]:
        stmt = (select(Recall, Batch.gtin, Batch.lot, Batch.producer_id, Batch.product_name)
                .join(Batch, Batch.id == Recall.batch_id).order_by(Recall.at, Recall.id))
        for recall, gtin, lot, producer_id, product in self._stream(stmt):
            yield (gtin, lot, producer_id, product, recall.reason, recall.at, (recall.record or {}).get("by"),
                   recall.log_index)

    def _cases(self) -> Iterator[tuple]:
        confirmed_at = (select(func.max(CaseNote.at)).where(CaseNote.report_id == Report.id,
                                                            CaseNote.status_to == "confirmed")
                        .correlate(Report).scalar_subquery())
        product = (select(Batch.product_name).where(Batch.gtin == Report.gtin, Batch.lot == Report.lot)
                   .correlate(Report).scalar_subquery())
        stmt = (select(Report, confirmed_at.label("confirmed_at"), product.label("product_name"))
                .where(Report.status == "confirmed").order_by(Report.id))
        for report, confirmed, product_name in self._stream(stmt):
            yield (report.case_number, report.created_at, confirmed, report.gtin, report.lot, report.serial,
                   report.producer_id, product_name, report.verdict, report.where_kind, report.where_text,
                   report.seller, report.link, report.price, report.bought_on)

    def _violators(self) -> Iterator[tuple]:
        stmt = (select(Publication).where(Publication.kind == "violator", Publication.withdrawn_at.is_(None))
                .order_by(Publication.published_at, Publication.id))
        for (item,) in self._stream(stmt):
            yield (item.id, item.name, item.tax_code, item.product, item.place, item.decision_ref, item.decided_on,
                   item.title, item.published_at, item.log_index)

    # -- listings for the portals ----------------------------------------------------------------
    def producer_batches(self, actor: Actor, producer_id: str, *, limit: int = 50,
                         offset: int = 0) -> list[dict[str, Any]]:
        """A producer's batches, newest first, with status and scan counts (its producer, the
        authority, inspectors and partners)."""
        actor.require(Role.PRODUCER, *READERS)
        if actor.role == Role.PRODUCER:
            actor.require_producer(producer_id)
        if self.session.get(Producer, producer_id) is None:
            raise NotFound(f"no producer {producer_id}", code="PRODUCER_UNKNOWN")
        serial_scans = (select(func.coalesce(func.sum(Serial.scan_count), 0)).where(Serial.batch_id == Batch.id)
                        .correlate(Batch).scalar_subquery())
        flagged = (select(func.count(Serial.id)).where(Serial.batch_id == Batch.id, Serial.flagged.is_not(None))
                   .correlate(Batch).scalar_subquery())
        rows = self.session.execute(
            select(Batch, serial_scans.label("serial_scans"), flagged.label("flagged"))
            .where(Batch.producer_id == producer_id)
            .order_by(Batch.created_at.desc(), Batch.id.desc()).offset(offset).limit(limit)).all()
        return [{"gtin": b.gtin, "lot": b.lot, "product_name": b.product_name, "status": b.status,
                 "production_date": b.production_date.isoformat(),
                 "expiry_date": b.expiry_date.isoformat() if b.expiry_date else None,
                 "serial_count": b.serial_count, "scan_count": int(b.scan_count or 0) + int(scans or 0),
                 "flagged_serials": int(n or 0), "kid": b.kid, "log_index": b.log_index,
                 "registered_at": rfc3339(b.created_at)} for b, scans, n in rows]

    def batch_serials(self, actor: Actor, gtin: str, lot: str, *, limit: int = 100,
                      offset: int = 0) -> list[dict[str, Any]]:
        """A batch's serials with their scan summaries (its producer, the authority, inspectors)."""
        actor.require(Role.PRODUCER, Role.AUTHORITY, Role.INSPECTOR)
        batch = self.session.execute(batch_named(gtin, lot)).scalar_one_or_none()
        if batch is None:
            raise NotFound(f"no batch {gtin} / {lot}", code="BATCH_UNKNOWN")
        if actor.role == Role.PRODUCER:
            actor.require_producer(batch.producer_id)
        rows = self.session.execute(select(Serial).where(Serial.batch_id == batch.id).order_by(Serial.id)
                                    .offset(offset).limit(limit)).scalars()
        return [{"serial": s.serial, "scan_count": s.scan_count, "distinct_clients": s.distinct_clients,
                 "first_seen": rfc3339(s.first_seen) if s.first_seen else None,
                 "last_seen": rfc3339(s.last_seen) if s.last_seen else None, "flagged": s.flagged}
                for s in rows]

    # -- EPCIS ---------------------------------------------------------------------------------
    def _event_id(self, kind: str, row_id: int) -> str:
        return f"urn:uuid:{uuid.uuid5(_EVENT_NAMESPACE, f'{self.base_url}|{kind}|{row_id}')}"

    @staticmethod
    def _after(stmt, at, row_id, kind: int, after: PagePosition | None):  # noqa: ANN001, ANN205
        """Only the rows after ``after`` in the export's order (time, kind: scans before recalls, id)."""
        if after is None:
            return stmt
        if kind < after.kind:
            return stmt.where(at > after.at)
        if kind > after.kind:
            return stmt.where(at >= after.at)
        # The range on ``at`` alone lets the index (at, id) start at the page's position.
        return stmt.where(at >= after.at, or_(at > after.at, and_(at == after.at, row_id > after.row_id)))

    def _scan_events(self, since: datetime | None, until: datetime | None, after: PagePosition | None,
                     rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        """At most ``rows`` scan events, read in the order of the index (at, id) from the page's
        position: a page costs the same on an empty history as on 10 million events."""
        stmt = (select(ScanEvent, Batch.gtin, Batch.lot, Serial.serial)
                .join(Batch, Batch.id == ScanEvent.batch_id)
                .outerjoin(Serial, Serial.id == ScanEvent.serial_id)
                .order_by(ScanEvent.at, ScanEvent.id))
        if since is not None:
            stmt = stmt.where(ScanEvent.at >= since)
        if until is not None:
            stmt = stmt.where(ScanEvent.at < until)
        stmt = self._after(stmt, ScanEvent.at, ScanEvent.id, 0, after).limit(rows)
        p = EXTENSION_PREFIX
        for scan, gtin, lot, serial in self._stream(stmt):
            event: dict[str, Any] = {
                "type": "ObjectEvent",
                "eventTime": rfc3339(scan.at),
                "eventTimeZoneOffset": "+00:00",
                "eventID": self._event_id("scan", scan.id),
                "action": "OBSERVE",
                "bizStep": "inspecting",
            }
            if serial is not None:
                event["epcList"] = [serial_uri(gtin, lot, serial)]
            else:
                event["quantityList"] = [{"epcClass": class_uri(gtin, lot), "quantity": 1}]
            if scan.verdict in ("recalled", "expired"):
                event["disposition"] = scan.verdict
            if scan.lat is not None and scan.lon is not None:
                event["readPoint"] = {"id": f"geo:{scan.lat:.1f},{scan.lon:.1f}"}
            event[f"{p}:verdict"] = scan.verdict
            event[f"{p}:channel"] = scan.channel
            yield scan.at, 0, scan.id, event

    def _recall_events(self, since: datetime | None, until: datetime | None, after: PagePosition | None,
                       rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        stmt = (select(Recall, Batch.gtin, Batch.lot, Batch.record)
                .join(Batch, Batch.id == Recall.batch_id).order_by(Recall.at, Recall.id))
        if since is not None:
            stmt = stmt.where(Recall.at >= since)
        if until is not None:
            stmt = stmt.where(Recall.at < until)
        stmt = self._after(stmt, Recall.at, Recall.id, 1, after).limit(rows)
        p = EXTENSION_PREFIX
        for recall, gtin, lot, record in self._stream(stmt):
            quantity: dict[str, Any] = {"epcClass": class_uri(gtin, lot)}
            if isinstance((record or {}).get("quantity"), int):
                quantity["quantity"] = record["quantity"]
            yield recall.at, 1, recall.id, {
                "type": "ObjectEvent",
                "eventTime": rfc3339(recall.at),
                "eventTimeZoneOffset": "+00:00",
                "eventID": self._event_id("recall", recall.id),
                "action": "OBSERVE",
                "bizStep": "holding",
                "disposition": "recalled",
                "quantityList": [quantity],
                f"{p}:reason": recall.reason,
                f"{p}:logIndex": recall.log_index,
            }

    def epcis_page(self, actor: Actor, *, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 10_000, scans: bool = True, recalls: bool = True,
                   page_token: str | None = None) -> "EpcisPage":
        """ObjectEvents in time order (scans and recalls merged, then by id), at most ``limit``,
        from where ``page_token`` (a previous page's ``next_token``) left off; checks the role now.
        Paging is by position, not offset: events written meanwhile never shift a page."""
        actor.require(*READERS)
        if not 1 <= limit <= MAX_EPCIS_EVENTS:
            raise Invalid(f"limit must be between 1 and {MAX_EPCIS_EVENTS}", code="BAD_LIMIT", field="limit")
        after = PagePosition.from_token(page_token) if page_token else None
        sources = []
        if scans:
            sources.append(self._scan_events(since, until, after, limit + 1))
        if recalls:
            sources.append(self._recall_events(since, until, after, limit + 1))
        merged = heapq.merge(*sources, key=lambda item: (item[0], item[1], item[2]))
        return EpcisPage(itertools.islice(merged, limit + 1), limit)

    def epcis_events(self, actor: Actor, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The events of ``epcis_page`` alone."""
        return iter(self.epcis_page(actor, **kwargs))

    def _document_head(self) -> dict[str, Any]:
        return {
            "@context": [EPCIS_CONTEXT, {EXTENSION_PREFIX: f"{self.base_url or 'urn:pov'}/ns/epcis/"}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": rfc3339(self.clock()),
        }

    def epcis_document(self, actor: Actor, **kwargs: Any) -> dict[str, Any]:
        """The whole EPCIS document as one object (for small exports and tests)."""
        events = list(self.epcis_events(actor, **kwargs))
        return {**self._document_head(), "epcisBody": {"eventList": events}}

    def epcis_stream(self, actor: Actor, **kwargs: Any) -> tuple[Iterator[str], "EpcisPage"]:
        """The same document as JSON text chunks, one event at a time (constant memory), and its
        page (whose ``next_token`` is known once the chunks are consumed)."""
        page = self.epcis_page(actor, **kwargs)
        head = json.dumps(self._document_head(), ensure_ascii=False)

        def chunks() -> Iterator[str]:
            yield head[:-1] + ', "epcisBody": {"eventList": ['
            for number, event in enumerate(page):
                yield ("," if number else "") + "\n" + json.dumps(event, ensure_ascii=False)
            yield "\n]}}\n"

        return chunks(), page
