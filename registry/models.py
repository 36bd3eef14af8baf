"""The registry's tables. Signed objects are stored exactly as signed; nothing here imports the app."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, UTCDateTime
from registry.rules import fold

__all__ = [
    "MAX_ROW_ID",
    "Producer",
    "ProducerKey",
    "Batch",
    "Serial",
    "SerialClient",
    "Recall",
    "LogEntry",
    "LogNode",
    "LogState",
    "Checkpoint",
    "ApiToken",
    "ScanEvent",
    "Report",
    "ReportPhoto",
    "Publication",
    "AuditEvent",
    "User",
    "Inspection",
    "InspectionCheck",
    "CaseNote",
]

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
#: The largest id (signed 64-bit, in both databases): a larger number names no row, and the drivers
#: overflow on it instead of finding nothing, so URLs, commands and page tokens stop there.
MAX_ROW_ID = 2**63 - 1


class Producer(Base):
    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tax_code: Mapped[str] = mapped_column(String(32), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    gs1_prefixes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    keys: Mapped[list["ProducerKey"]] = relationship(  # in certification order, which the log fixes
        back_populates="producer", order_by="[ProducerKey.created_at, ProducerKey.log_index]")


class ProducerKey(Base):
    __tablename__ = "producer_keys"

    kid: Mapped[str] = mapped_column(String(8), primary_key=True)
    producer_id: Mapped[str] = mapped_column(ForeignKey("producers.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64url of the raw 32 bytes
    custodial: Mapped[bool] = mapped_column(Boolean)  # True: the service holds the private key
    certificate: Mapped[dict[str, Any]] = mapped_column(JSON)
    gs1_prefixes: Mapped[list[str]] = mapped_column(JSON)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    compromised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(Integer)

    producer: Mapped[Producer] = relationship(back_populates="keys")


class Batch(Base):
    """A registered batch (GTIN + lot) with its current origin record. Indexed in registration order
    for the EPCIS export's commissioning events (migration 0016)."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("gtin", "lot", name="uq_batches_gtin_lot"),
                      Index("ix_batches_created_at_id", "created_at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gtin: Mapped[str] = mapped_column(String(14), index=True)
    lot: Mapped[str] = mapped_column(String(20))
    producer_id: Mapped[str] = mapped_column(ForeignKey("producers.id"), index=True)
    kid: Mapped[str] = mapped_column(ForeignKey("producer_keys.kid"))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the signed origin record, as signed
    product_name: Mapped[str] = mapped_column(String(200))
    production_date: Mapped[date] = mapped_column(Date)
    expiry_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | recalled
    serial_count: Mapped[int] = mapped_column(Integer, default=0)
    scan_count: Mapped[int] = mapped_column(BigInteger, default=0)  # scans of the batch-level code
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    producer: Mapped[Producer] = relationship()


class Serial(Base):
    """One unit code. Scan summary counters live here so clone checks stay O(1) as history grows."""

    __tablename__ = "serials"
    __table_args__ = (UniqueConstraint("batch_id", "serial", name="uq_serials_batch_serial"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    serial: Mapped[str] = mapped_column(String(20))
    s: Mapped[str] = mapped_column(String(100))  # {kid}.{signature} printed in the code
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scan_count: Mapped[int] = mapped_column(BigInteger, default=0)
    distinct_clients: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lon: Mapped[float | None] = mapped_column(Float)
    last_network: Mapped[str | None] = mapped_column(String(32))  # where the last place came from
    flagged: Mapped[str | None] = mapped_column(String(32))  # reason code once clone-suspected
    # An inspector cleared the flag (registry.inspections): clone detection counts again from then,
    # the clients that had verified the serial by that moment (``clone_baseline``) no longer count.
    flag_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clone_baseline: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SerialClient(Base):
    """Which (hashed) clients have verified a serial: one row per pair."""

    __tablename__ = "serial_clients"

    serial_id: Mapped[int] = mapped_column(ForeignKey("serials.id"), primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(32), primary_key=True)


class ScanWriterState(Base):
    """How far each server process's scan writer has written: the number of its last committed
    flush, written in that flush's transaction. A verification reads its writer's row with the
    counters, so it knows exactly which of its process's pending counts the database already
    holds (``registry.scans``). Rows of processes that ended are removed after a day."""

    __tablename__ = "scan_writers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Recall(Base):
    """A recall; indexed in time order for the EPCIS export (migration 0016)."""

    __tablename__ = "recalls"
    __table_args__ = (Index("ix_recalls_at_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(Integer)


class BatchVersion(Base):
    """An origin record that a correction replaced (``Registry.correct_batch``): records are immutable,
    so each version stays, as signed and logged; ``batches.record`` holds the current one. Indexed in
    the order of the corrections for the EPCIS export (migration 0016)."""

    __tablename__ = "batch_versions"
    __table_args__ = (UniqueConstraint("batch_id", "version", name="uq_batch_versions_batch_version"),
                      Index("ix_batch_versions_superseded_at_id", "superseded_at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    version: Mapped[int] = mapped_column(Integer)  # 1: the record the batch was registered with
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    log_index: Mapped[int] = mapped_column(Integer)
    superseded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogState(Base):
    """One row: the log's size. Appenders lock it, so log indexes are handed out one at a time."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0)


class LogEntry(Base):
    __tablename__ = "log_entries"

    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)  # JCS of the whole signed object
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogNode(Base):
    """Hash of every complete subtree: leaves [index*2**level, (index+1)*2**level)."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    signed: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token. Who created it (a person, or a token: ``TokenAdmin.create``) is kept so
    that revoking a token, or deactivating a person, revokes what they created (migration 0006)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    producer_id: Mapped[str | None] = mapped_column(ForeignKey("producers.id"))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), index=True)


class ScanEvent(Base):
    """One verification. Indexed for a serial's history (inspections, and the networks of its latest
    verifications, which clone detection counts: on PostgreSQL the index carries the network, so
    that read touches a few index pages however long the history, migration 0012) and for the
    exports' time order; a batch's counts are its summary counters, so no index by batch (0004)."""

    __tablename__ = "scan_events"
    __table_args__ = (Index("ix_scan_events_serial_at_net", "serial_id", "at", postgresql_include=["network_hash"]),
                      Index("ix_scan_events_at_id", "at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    serial_id: Mapped[int | None] = mapped_column(ForeignKey("serials.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(16))
    client_hash: Mapped[str | None] = mapped_column(String(32))
    network_hash: Mapped[str | None] = mapped_column(String(32))  # the client address's network, salted
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))


class Report(Base):
    """A shopper's counterfeit report; inspectors work it as a case."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    code: Mapped[str] = mapped_column(Text, default="")
    gtin: Mapped[str | None] = mapped_column(String(14), index=True)
    lot: Mapped[str | None] = mapped_column(String(20))
    serial: Mapped[str | None] = mapped_column(String(20))
    producer_id: Mapped[str | None] = mapped_column(ForeignKey("producers.id"), index=True)
    verdict: Mapped[str | None] = mapped_column(String(16))
    where_kind: Mapped[str] = mapped_column(String(16), default="")  # shop | market | ecommerce | social | livestream | other
    where_text: Mapped[str] = mapped_column(Text, default="")
    seller: Mapped[str] = mapped_column(String(200), default="")
    link: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[str] = mapped_column(String(32), default="")
    bought_on: Mapped[date | None] = mapped_column(Date)
    contact: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    client_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # SHA-256 of the case number and the follow-up code given to the shopper (registry.reports):
    # with both, the shopper reads how the report is handled. None: filed before follow-up codes.
    followup_hash: Mapped[str | None] = mapped_column(String(64))
    # When the contact and the client hash were removed, the case closed long enough before
    # (registry.retention.ContactRetention); None while they are kept.
    contact_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the case search compares: the seller, the place, the link, the lot and the serial, folded
    # (registry.rules.fold: lower case, no diacritics), so that "shop ca phe" finds "Shop Cà Phê" on
    # SQLite and PostgreSQL alike. Kept by the flush (report_search_text below), whoever writes.
    search_text: Mapped[str] = mapped_column(Text, default="")

    photos: Mapped[list["ReportPhoto"]] = relationship(back_populates="report", order_by="ReportPhoto.id")


def report_search_text(seller: str | None, where_text: str | None, link: str | None, lot: str | None,
                       serial: str | None) -> str:
    """``Report.search_text`` for these fields (also migration 0019's, for the reports before it)."""
    return fold(" ".join(part for part in (seller, where_text, link, lot, serial) if part))


@event.listens_for(Report, "before_insert")
@event.listens_for(Report, "before_update")
def _fold_for_search(_mapper, _connection, report: Report) -> None:
    report.search_text = report_search_text(report.seller, report.where_text, report.link, report.lot, report.serial)


class ReportPhoto(Base):
    __tablename__ = "report_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    media_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="photos")


class Publication(Base):
    """A consumer warning or a confirmed violator, published by the authority (and logged)."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # warning | violator
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    tax_code: Mapped[str] = mapped_column(String(32), default="")
    product: Mapped[str] = mapped_column(String(300), default="")
    place: Mapped[str] = mapped_column(String(300), default="")
    decision_ref: Mapped[str] = mapped_column(String(100), default="")
    decided_on: Mapped[date | None] = mapped_column(Date)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    # What was done to one thing (the flagged serials' earlier clearances), and the authority's
    # reading of the trail by who or by what, newest first (registry.audit.AuditTrail).
    __table_args__ = (Index("ix_audit_events_target_action", "target", "action"),
                      Index("ix_audit_events_actor_id", "actor", "id"),
                      Index("ix_audit_events_action_id", "action", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A person who logs in to a portal. Passwords are argon2 hashes; repeated failures lock."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    producer_id: Mapped[str | None] = mapped_column(ForeignKey("producers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Counts the ends of all this user's sessions (logout, deactivation): a session keeps the
    # value it logged in with and is over once the two differ (AccountService.actor).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class Inspection(Base):
    """An inspector's on-site check: a place, a time, and the codes verified there."""

    __tablename__ = "inspections"
    __table_args__ = (Index("uq_inspections_client_id", "inspector", "client_id", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspector: Mapped[str] = mapped_column(String(100))
    place: Mapped[str] = mapped_column(String(300), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the browser's id of an inspection started offline (migration 0018): sent again, the same one
    client_id: Mapped[str | None] = mapped_column(String(32))

    checks: Mapped[list["InspectionCheck"]] = relationship(back_populates="inspection",
                                                           order_by="InspectionCheck.id")


class InspectionCheck(Base):
    __tablename__ = "inspection_checks"
    __table_args__ = (Index("uq_inspection_checks_client_id", "inspection_id", "client_id", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    verdict: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # the verification JSON as answered
    offline: Mapped[bool] = mapped_column(Boolean, default=False)  # checked in the browser, sent later
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str | None] = mapped_column(String(32))
    # the browser's id for a check made offline: sent again (a retry, a second tab), it is one check
    client_id: Mapped[str | None] = mapped_column(String(32))
    # when the registry took the check (migration 0020; None before it), and whether the inspection
    # was closed by then (a check made offline before the close, sent after it), which the evidence says
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    after_close: Mapped[bool] = mapped_column(Boolean, default=False)

    inspection: Mapped[Inspection] = relationship(back_populates="checks")


class CaseNote(Base):
    """A note (and optional attachment) on a shopper's report worked as a case."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text, default="")
    status_from: Mapped[str | None] = mapped_column(String(16))
    status_to: Mapped[str | None] = mapped_column(String(16))
    attachment: Mapped[bytes | None] = mapped_column(LargeBinary)
    attachment_name: Mapped[str | None] = mapped_column(String(200))
    attachment_type: Mapped[str | None] = mapped_column(String(64))
    # What the system did, for the pages to say in the reader's language (``text`` is what a person
    # wrote): ``assigned`` (detail: the assignee) or ``published`` (detail: the publication's id).
    event: Mapped[str | None] = mapped_column(String(16))
    event_detail: Mapped[str | None] = mapped_column(String(64))
