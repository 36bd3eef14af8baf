"""Exports for partner agencies: CSV lists and GS1 EPCIS 2.0 JSON-LD events.

CSV exports (batches, recalls, confirmed cases, violators in force) are generators of lines, so
a large export streams in constant memory. Cells that a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@``, a tab or a carriage return first) are prefixed with an apostrophe,
identifiers included: a lot or a serial may begin with any of these (GS1's character set 82), and
a shopper's report brings codes nobody checked; the exact values are in the EPCIS export.

The EPCIS export turns registrations, corrections, scan events and recalls into ObjectEvents of
an ``EPCISDocument``: a verified unit is identified by its GS1 Digital Link URI on ``id.gs1.org``
in ``epcList``, a batch by the class-level URI in ``quantityList``; a scan made with a (coarse)
place gets a ``geo:`` read point. A registration is the batch's commissioning (ADD, with the lot's
master data in ``ilmd``); a correction is an EPCIS error declaration of the commissioning event it
corrects and a corrective commissioning event. The document validates against the standard's JSON
schema, vendored in ``registry/data/epcis/``.

Nothing here imports Flask. Authorisation is checked when an export is asked for, before the
first line is produced.
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import functools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from keys.encoding import MalformedEncoding, b64url_decode, b64url_encode, rfc3339, utcnow
from registry.errors import Invalid, NotFound
from registry.models import (MAX_ROW_ID, Batch, BatchVersion, CaseNote, Producer, Publication, Recall, Report, ScanEvent,
                             Serial)
from registry.rules import shown_status
from registry.services import Actor, Role, batch_named
from verification.digital_link import build_url
from verification.localtime import vietnam_date

__all__ = [
    "ExportService",
    "CSV_EXPORTS",
    "EPCIS_SCHEMA_PATH",
    "EPCIS_CONTEXT",
    "EPCIS_EVENTS",
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

#: The kinds of EPCIS events, numbered as in a page position (``PagePosition.kind``): at one time,
#: the export's order. New kinds take new numbers, so the tokens already given keep their meaning.
SCAN, RECALL, REGISTRATION, ERROR_DECLARATION, CORRECTION = range(5)
#: The ``events`` choices of the EPCIS export and the kinds each holds.
EPCIS_EVENTS: dict[str, frozenset[int]] = {
    "all": frozenset((SCAN, RECALL, REGISTRATION, ERROR_DECLARATION, CORRECTION)),
    "scans": frozenset((SCAN,)),
    "recalls": frozenset((RECALL,)),
    "registrations": frozenset((REGISTRATION,)),
    "corrections": frozenset((ERROR_DECLARATION, CORRECTION)),
}
_COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166-1 alpha-2, as cbvmda:countryOfOrigin takes it
_GLN = re.compile(r"[0-9]{13}")

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
    if isinstance(value, str) and value.lstrip(" ").startswith(_FORMULA_START):  # " =1+1" runs in some
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


def _quantity(gtin: str, lot: str, record: dict[str, Any] | None) -> dict[str, Any]:
    """The batch as a ``quantityList`` element: its class, and its quantity when the record has one."""
    quantity: dict[str, Any] = {"epcClass": class_uri(gtin, lot)}
    amount = (record or {}).get("quantity")
    if isinstance(amount, int) and not isinstance(amount, bool):
        quantity["quantity"] = amount
    return quantity


@dataclass(frozen=True)
class PagePosition:
    """Where an EPCIS page ended: the last event's time, kind (0 scan, 1 recall, 2 registration,
    3 error declaration, 4 corrective event) and row id. Sent to clients as an opaque token
    (base64url of a small JSON array)."""

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
            if (moment.tzinfo is None or kind not in EPCIS_EVENTS["all"] or not isinstance(row_id, int)
                    or not 0 <= row_id <= MAX_ROW_ID):
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


def _serial_scans():
    """The verifications of a batch's units, beside its batch-level code's own ``scan_count``."""
    return (select(func.coalesce(func.sum(Serial.scan_count), 0)).where(Serial.batch_id == Batch.id)
            .correlate(Batch).scalar_subquery())


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
        """Each batch with its status as shoppers' verdicts call it (an active batch past its expiry
        date in Vietnam is ``expired``) and every verification of it, its units' included: the
        file had said ``active`` and counted the batch-level code's scans alone."""
        today = vietnam_date(self.clock())
        stmt = (select(Batch, Producer.name, _serial_scans().label("serial_scans"))
                .join(Producer, Producer.id == Batch.producer_id).order_by(Batch.id))
        for batch, producer_name, serial_scans in self._stream(stmt):
            record = batch.record or {}
            product = record.get("product") or {}
            facility = record.get("facility") or {}
            yield (batch.gtin, batch.lot, batch.producer_id, producer_name, batch.product_name, product.get("brand"),
                   product.get("category"), facility.get("name"), facility.get("country"), batch.production_date,
                   batch.expiry_date, record.get("quantity"), shown_status(batch.status, batch.expiry_date, today),
                   batch.serial_count, int(batch.scan_count or 0) + int(serial_scans or 0),
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
                         offset: int = 0, query: str = "") -> list[dict[str, Any]]:
        """A producer's batches, newest first, with status and scan counts (its producer, the
        authority, inspectors and partners); ``query``: those whose lot, GTIN or product name holds
        it (case ignored), for a producer with thousands of lots."""
        actor.require(Role.PRODUCER, *READERS)
        if actor.role == Role.PRODUCER:
            actor.require_producer(producer_id)
        if self.session.get(Producer, producer_id) is None:
            raise NotFound(f"no producer {producer_id}", code="PRODUCER_UNKNOWN")
        serial_scans = _serial_scans()
        flagged = (select(func.count(Serial.id)).where(Serial.batch_id == Batch.id, Serial.flagged.is_not(None))
                   .correlate(Batch).scalar_subquery())
        stmt = select(Batch, serial_scans.label("serial_scans"), flagged.label("flagged")).where(
            Batch.producer_id == producer_id)
        query = query.strip()
        if query:
            stmt = stmt.where(or_(Batch.lot.icontains(query, autoescape=True),
                                  Batch.gtin.contains(query.lstrip("0") or query, autoescape=True),
                                  Batch.product_name.icontains(query, autoescape=True)))
        rows = self.session.execute(
            stmt.order_by(Batch.created_at.desc(), Batch.id.desc()).offset(offset).limit(limit)).all()
        today = vietnam_date(self.clock())
        return [{"gtin": b.gtin, "lot": b.lot, "product_name": b.product_name,
                 "status": shown_status(b.status, b.expiry_date, today),
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
    def _event_id(self, kind: str, row_id: int | str) -> str:
        return f"urn:uuid:{uuid.uuid5(_EVENT_NAMESPACE, f'{self.base_url}|{kind}|{row_id}')}"

    def _record_event_id(self, batch_id: int, version: int) -> str:
        """The commissioning event of a batch's record ``version``: its registration for version 1,
        the corrective event of the correction that made it for a later one."""
        if version == 1:
            return self._event_id("registration", batch_id)
        return self._event_id("record", f"{batch_id}/{version}")

    def _read(self, stmt, at, row_id, kind: int, since: datetime | None, until: datetime | None,  # noqa: ANN001
              after: PagePosition | None, rows: int) -> Iterator[Any]:
        """At most ``rows`` rows of ``stmt`` in the order of the index (``at``, ``row_id``), within
        ``since`` / ``until``, after the page's position in the export's order (time, kind, id).
        Every read is a seek in that index: the rest of the position's own second is read by its
        time and the id (times are to the second, and an import registers many batches in one), then
        the later times; a page costs the same after 10 rows as after 10 million."""
        if since is not None:
            stmt = stmt.where(at >= since)
        if until is not None:
            stmt = stmt.where(at < until)
        if after is None:
            yield from self._stream(stmt.order_by(at, row_id).limit(rows))
            return
        if kind == after.kind:
            for row in self._stream(stmt.where(at == after.at, row_id > after.row_id).order_by(row_id).limit(rows)):
                rows -= 1
                yield row
            later = at > after.at
        else:  # a kind before the position's comes after it only at a later time; a kind after it, at the same
            later = at > after.at if kind < after.kind else at >= after.at
        if rows > 0:
            yield from self._stream(stmt.where(later).order_by(at, row_id).limit(rows))

    def _scan_events(self, since: datetime | None, until: datetime | None, after: PagePosition | None,
                     rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        """At most ``rows`` scan events, read in the order of the index (at, id) from the page's
        position: a page costs the same on an empty history as on 10 million events."""
        stmt = (select(ScanEvent, Batch.gtin, Batch.lot, Serial.serial)
                .join(Batch, Batch.id == ScanEvent.batch_id)
                .outerjoin(Serial, Serial.id == ScanEvent.serial_id))
        p = EXTENSION_PREFIX
        for scan, gtin, lot, serial in self._read(stmt, ScanEvent.at, ScanEvent.id, SCAN, since, until, after, rows):
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
            yield scan.at, SCAN, scan.id, event

    def _recall_events(self, since: datetime | None, until: datetime | None, after: PagePosition | None,
                       rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        """At most ``rows`` recalls, in the order of the index (at, id) from the page's position."""
        stmt = select(Recall, Batch.gtin, Batch.lot, Batch.record).join(Batch, Batch.id == Recall.batch_id)
        p = EXTENSION_PREFIX
        for recall, gtin, lot, record in self._read(stmt, Recall.at, Recall.id, RECALL, since, until, after, rows):
            yield recall.at, RECALL, recall.id, {
                "type": "ObjectEvent",
                "eventTime": rfc3339(recall.at),
                "eventTimeZoneOffset": "+00:00",
                "eventID": self._event_id("recall", recall.id),
                "action": "OBSERVE",
                "bizStep": "holding",
                "disposition": "recalled",
                "quantityList": [_quantity(gtin, lot, record)],
                f"{p}:reason": recall.reason,
                f"{p}:logIndex": recall.log_index,
            }

    def _commissioning(self, *, batch_id: int, gtin: str, lot: str, producer_id: str, registered_at: datetime,
                       record: dict[str, Any], log_index: int) -> dict[str, Any]:
        """The commissioning of a batch as one version of its origin record tells it: an ObjectEvent
        ADD (bizStep commissioning, disposition active) of the batch's class with its quantity, at
        the registration's time, with the lot's master data in ``ilmd`` (CBV's names where CBV has
        one, this service's extension fields for the rest). The same inputs always make the same
        event, so an error declaration repeats the event it declares erroneous exactly."""
        p = EXTENSION_PREFIX
        version = record.get("version", 1)
        product = record.get("product") or {}
        facility = record.get("facility") or {}
        ilmd: dict[str, Any] = {"cbvmda:lotNumber": lot}
        if record.get("production_date"):
            ilmd[f"{p}:productionDate"] = record["production_date"]  # no CBV name found for it
        if record.get("expiry_date"):
            ilmd["cbvmda:itemExpirationDate"] = record["expiry_date"]
        if isinstance(facility.get("country"), str) and _COUNTRY.fullmatch(facility["country"]):
            ilmd["cbvmda:countryOfOrigin"] = facility["country"]
        for name, value in (("productName", product.get("name")), ("brand", product.get("brand")),
                            ("category", product.get("category")), ("facilityName", facility.get("name")),
                            ("facilityAddress", facility.get("address")),
                            ("certifications", record.get("certifications"))):
            if value:
                ilmd[f"{p}:{name}"] = value
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventTime": rfc3339(registered_at),
            "eventTimeZoneOffset": "+00:00",
            "eventID": self._record_event_id(batch_id, version),
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "quantityList": [_quantity(gtin, lot, record)],
        }
        if isinstance(facility.get("gln"), str) and _GLN.fullmatch(facility["gln"]):
            event["bizLocation"] = {"id": f"{GS1_RESOLVER}/414/{facility['gln']}"}
        event["ilmd"] = ilmd
        event[f"{p}:producerId"] = producer_id
        event[f"{p}:logIndex"] = log_index
        event[f"{p}:recordVersion"] = version
        if version > 1:  # a corrective event: the one it corrects, and why (from the signed record itself)
            event[f"{p}:correctionOf"] = self._record_event_id(batch_id, version - 1)
            event[f"{p}:reason"] = record.get("reason")
        return event

    def _registration_events(self, since: datetime | None, until: datetime | None, after: PagePosition | None,
                             rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        """At most ``rows`` registrations, in the order of the index (created_at, id) from the page's
        position: each with the record the batch was registered with (kept in batch_versions as its
        version 1 once corrected), as first exported."""
        first = aliased(BatchVersion)
        stmt = (select(Batch, first.record, first.log_index)
                .outerjoin(first, and_(first.batch_id == Batch.id, first.version == 1)))
        for batch, first_record, first_index in self._read(stmt, Batch.created_at, Batch.id, REGISTRATION, since,
                                                           until, after, rows):
            record, index = (batch.record, batch.log_index) if first_record is None else (first_record, first_index)
            yield batch.created_at, REGISTRATION, batch.id, self._commissioning(
                batch_id=batch.id, gtin=batch.gtin, lot=batch.lot, producer_id=batch.producer_id,
                registered_at=batch.created_at, record=record, log_index=index)

    def _correction_events(self, kind: int, since: datetime | None, until: datetime | None,
                           after: PagePosition | None, rows: int) -> Iterator[tuple[datetime, int, int, dict]]:
        """At most ``rows`` corrections, in the order of the index (superseded_at, id) from the page's
        position, at the time each was made. EPCIS events are never changed: a correction is, as EPCIS
        2.0 says, an error declaration (``kind`` ERROR_DECLARATION: the commissioning event of the
        replaced version again, with ``errorDeclaration``, reason ``incorrect_data``, naming its
        corrective event) and the corrective event (``kind`` CORRECTION: the commissioning event with
        the corrected record, a new event id). Both keep the registration's ``eventTime``."""
        newer = aliased(BatchVersion)
        stmt = (select(BatchVersion, Batch.gtin, Batch.lot, Batch.producer_id, Batch.created_at, Batch.record,
                       Batch.log_index, newer.record, newer.log_index)
                .join(Batch, Batch.id == BatchVersion.batch_id)
                .outerjoin(newer, and_(newer.batch_id == BatchVersion.batch_id,
                                       newer.version == BatchVersion.version + 1)))
        p = EXTENSION_PREFIX
        rows_read = self._read(stmt, BatchVersion.superseded_at, BatchVersion.id, kind, since, until, after, rows)
        for old, gtin, lot, producer_id, registered_at, current, current_index, newer_record, newer_index in rows_read:
            record, index = (current, current_index) if newer_record is None else (newer_record, newer_index)
            batch = {"batch_id": old.batch_id, "gtin": gtin, "lot": lot, "producer_id": producer_id,
                     "registered_at": registered_at}
            if kind == ERROR_DECLARATION:
                event = self._commissioning(**batch, record=old.record, log_index=old.log_index)
                event["errorDeclaration"] = {
                    "declarationTime": rfc3339(old.superseded_at),
                    "reason": "incorrect_data",
                    "correctiveEventIDs": [self._record_event_id(old.batch_id, record.get("version", old.version + 1))],
                    f"{p}:reason": record.get("reason"),
                    f"{p}:logIndex": index,
                }
            else:
                event = self._commissioning(**batch, record=record, log_index=index)
            yield old.superseded_at, kind, old.id, event

    def epcis_page(self, actor: Actor, *, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 10_000, events: str = "all", page_token: str | None = None) -> "EpcisPage":
        """ObjectEvents in time order (the kinds that ``events`` names, one of ``EPCIS_EVENTS``,
        merged, then by kind and id), at most ``limit``, from where ``page_token`` (a previous page's
        ``next_token``) left off; checks the role and the arguments now. Paging is by position, not
        offset: events written meanwhile never shift a page."""
        actor.require(*READERS)
        if events not in EPCIS_EVENTS:
            raise Invalid(f"events must be one of {', '.join(EPCIS_EVENTS)}", code="BAD_EVENTS", field="events")
        if not 1 <= limit <= MAX_EPCIS_EVENTS:
            raise Invalid(f"limit must be between 1 and {MAX_EPCIS_EVENTS}", code="BAD_LIMIT", field="limit")
        if since is not None and until is not None and since > until:  # a slip, not "nothing happened"
            raise Invalid(f"until ({rfc3339(until)}) comes before since ({rfc3339(since)})", code="BAD_PERIOD",
                          field="until")
        after = PagePosition.from_token(page_token) if page_token else None
        readers = {SCAN: self._scan_events, RECALL: self._recall_events, REGISTRATION: self._registration_events,
                   ERROR_DECLARATION: functools.partial(self._correction_events, ERROR_DECLARATION),
                   CORRECTION: functools.partial(self._correction_events, CORRECTION)}
        sources = [readers[kind](since, until, after, limit + 1) for kind in sorted(EPCIS_EVENTS[events])]
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
