"""Shoppers' reports worked as cases: status, assignment, notes with attachments, publication.

The life of a case::

    new ─┬─> assigned ──> investigating ─┬─> confirmed
         └──────────────> investigating  └─> dismissed ──(reopen)──> investigating
    (any open or confirmed case can be dismissed)

Every change of status is a ``CaseNote`` with ``status_from`` and ``status_to``, and an
``AuditEvent``. Inspectors and the authority work cases; a producer reads the reports about its
own products (never another producer's, never the shopper's contact or the internal notes); a
partner agency reads confirmed cases. A confirmed case can be published as a violator through a
publisher callable (``registry.publications.PublicationService.publish`` in the app).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from registry.audit import audit
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import AuditEvent, Batch, CaseNote, Publication, Report, ReportPhoto, User
from registry.rules import blank, fold
from registry.services import Actor, Role
from verification.localtime import vietnam_date

__all__ = [
    "STATUSES",
    "TRANSITIONS",
    "IMAGE_TYPES",
    "ATTACHMENT_TYPES",
    "MAX_ATTACHMENT_BYTES",
    "AttachmentRejected",
    "CaseService",
    "publish_confirmed",
    "sniff_media_type",
]

log = logging.getLogger(__name__)

STATUSES = ("new", "assigned", "investigating", "confirmed", "dismissed")
#: Allowed moves of ``transition``; ``assign`` also moves ``new`` to ``assigned``.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"assigned", "investigating", "dismissed"}),
    "assigned": frozenset({"investigating", "dismissed"}),
    "investigating": frozenset({"confirmed", "dismissed"}),
    "confirmed": frozenset({"dismissed"}),
    "dismissed": frozenset({"investigating"}),
}
#: Moves that need a note saying why.
NEEDS_TEXT = frozenset({"confirmed", "dismissed"})
OPEN_STATUSES = ("new", "assigned", "investigating")  # a case someone may still be working
CLOSED_STATUSES = ("confirmed", "dismissed")  # decided (a dismissed case may still be reopened)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"})
ATTACHMENT_TYPES = IMAGE_TYPES | {"application/pdf", "text/plain"}
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_NOTE_LENGTH = 10_000


class AttachmentRejected(Invalid):
    """An upload is too large (``status`` 413) or of a type not accepted (415)."""

    def __init__(self, message: str, *, code: str, status: int, field: str = "attachment") -> None:
        super().__init__(message, code=code, field=field)
        self.status = status


def sniff_media_type(data: bytes) -> str:
    """The media type judged by the bytes (magic numbers), never by a declared name or type."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if b"\x00" not in data[:8192]:
        try:
            data[:65536].decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as exc:
            if exc.start >= 65536 - 4:  # a character cut at the window's edge
                return "text/plain"
    return "application/octet-stream"


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*')
    return base[:200] or None


def publish_confirmed(case: Report, publisher: Callable[..., Any], **overrides: Any) -> Any:
    """Publish a confirmed case as a violator through ``publisher(kind="violator", title=..., ...)``.

    ``publisher`` takes the fields of ``PublicationService.publish`` (without the actor) and
    returns the publication. The fields come from the report (seller, product, place) and can be
    overridden (``name``, ``tax_code``, ``decision_ref``, ``decided_on``, ...)."""
    if case.status != "confirmed":
        raise Conflict("only a confirmed case can be published", code="CASE_NOT_CONFIRMED")
    product = overrides.pop("product", None)
    if product is None:
        product = case.gtin or ""
        if case.gtin and case.lot:
            product = f"{case.gtin} / {case.lot}"
    fields: dict[str, Any] = {
        "kind": "violator",
        # A publication is a signed record, not a page: both languages of the public pages, Vietnamese first.
        "title": f"Hàng giả đã xác nhận / Confirmed counterfeit ({case.case_number})",
        "name": case.seller,
        "product": product,
        "place": case.where_text or case.link,
        "body": f"Vụ việc / Case {case.case_number}",
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if blank(str(fields.get("name") or "")):
        raise Invalid("a violator needs the name of the person or business (the report names no seller)",
                      code="FIELD_REQUIRED", field="name")
    return publisher(**fields)


def live_publication(session: Session, report_id: int) -> int | None:
    """The publication of this case as a violator still on the public list (not withdrawn), from the
    case's ``published`` notes; None when it was never published or every publication is withdrawn."""
    published = [int(detail) for detail in session.execute(
        select(CaseNote.event_detail).where(CaseNote.report_id == report_id, CaseNote.event == "published")
    ).scalars() if detail and detail.isdigit()]
    if not published:
        return None
    return session.execute(select(func.max(Publication.id)).where(
        Publication.id.in_(published), Publication.withdrawn_at.is_(None))).scalar_one()


class CaseService:
    """Work shoppers' reports as cases, inside the caller's transaction."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow,
                 max_attachment_bytes: int = MAX_ATTACHMENT_BYTES) -> None:
        self.session = session
        self.clock = clock
        self.max_attachment_bytes = max_attachment_bytes

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _may_read(actor: Actor, case: Report) -> None:
        if actor.role in (Role.AUTHORITY, Role.INSPECTOR):
            return
        if actor.role == Role.PRODUCER:
            if case.producer_id is not None and case.producer_id == actor.producer_id:
                return
            raise Forbidden("this report is about another producer's product", code="NOT_YOUR_PRODUCER")
        if actor.role == Role.PARTNER and case.status == "confirmed":
            return
        raise Forbidden("partner agencies read confirmed cases only", code="ROLE_FORBIDDEN")

    def _find(self, case_number: str, *, lock: bool = False) -> Report:
        stmt = select(Report).where(Report.case_number == case_number)
        if lock:
            stmt = stmt.with_for_update()
        case = self.session.execute(stmt).scalar_one_or_none()
        if case is None:
            raise NotFound(f"no case {case_number}", code="CASE_UNKNOWN")
        return case

    def get(self, actor: Actor, case_number: str) -> Report:
        case = self._find(case_number)
        self._may_read(actor, case)
        return case

    def list(self, actor: Actor, *, status: str | None = None, producer_id: str | None = None,
             assigned_to: str | None = None, query: str = "", limit: int = 50, offset: int = 0) -> list[Report]:
        """Cases newest first, filtered; each role sees only what it may read. ``query``: the cases
        whose seller, place, link, lot and serial hold each of its words (case and accents ignored:
        "shop ca phe" finds "Shop Cà Phê"), or whose number or GTIN holds it."""
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}", code="BAD_STATUS", field="status")
        stmt = select(Report).order_by(Report.created_at.desc(), Report.id.desc())
        if actor.role == Role.PRODUCER:
            if not actor.producer_id:
                return []
            stmt = stmt.where(Report.producer_id == actor.producer_id)
        elif actor.role == Role.PARTNER:
            if status not in (None, "confirmed"):
                return []
            status = "confirmed"
        elif actor.role not in (Role.AUTHORITY, Role.INSPECTOR):
            raise Forbidden("this role cannot read cases", code="ROLE_FORBIDDEN")
        if status is not None:
            stmt = stmt.where(Report.status == status)
        if producer_id is not None:
            stmt = stmt.where(Report.producer_id == producer_id)
        if assigned_to is not None:
            stmt = stmt.where(Report.assigned_to == assigned_to)
        query = (query or "").strip()
        if query:  # every word in the folded text (accents and case aside), or a case number, or a GTIN
            words = fold(query).split()
            # A report that a server of the version before migration 0019 wrote during a rolling
            # upgrade has no folded text: its columns are searched as that version did (case aside).
            unfolded = and_(Report.search_text == "", or_(*(column.icontains(query, autoescape=True) for column in (
                Report.seller, Report.where_text, Report.link, Report.lot, Report.serial))))
            stmt = stmt.where(or_(and_(*(Report.search_text.contains(word, autoescape=True) for word in words)),
                                  unfolded, Report.case_number.icontains(query, autoescape=True),
                                  Report.gtin.contains(query.lstrip("0") or query, autoescape=True)))
        return list(self.session.execute(stmt.offset(offset).limit(limit)).scalars())

    def counts(self, actor: Actor) -> dict[str, int]:
        """How many cases in each status (inspectors and the authority)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        rows = self.session.execute(select(Report.status, func.count(Report.id)).group_by(Report.status)).all()
        found = dict(rows)
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def notes(self, actor: Actor, case_number: str) -> list[CaseNote]:
        """The case's notes, oldest first (internal: inspectors and the authority)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        case = self._find(case_number)
        return list(self.session.execute(
            select(CaseNote).where(CaseNote.report_id == case.id).order_by(CaseNote.id)).scalars())

    def attachment(self, actor: Actor, case_number: str, note_id: int) -> tuple[bytes, str, str]:
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        case = self._find(case_number)
        note = self.session.get(CaseNote, note_id)
        if note is None or note.report_id != case.id or note.attachment is None:
            raise NotFound(f"no attachment on note {note_id}", code="ATTACHMENT_UNKNOWN")
        return note.attachment, note.attachment_type or "application/octet-stream", note.attachment_name or "attachment"

    def photo(self, actor: Actor, case_number: str, sha256: str) -> tuple[bytes, str]:
        case = self.get(actor, case_number)
        photo = self.session.execute(
            select(ReportPhoto).where(ReportPhoto.report_id == case.id, ReportPhoto.sha256 == sha256).limit(1)
        ).scalar_one_or_none()
        if photo is None:
            raise NotFound("no such photo on this case", code="PHOTO_UNKNOWN")
        return photo.data, photo.media_type

    def view(self, actor: Actor, case: Report) -> dict[str, Any]:
        """The case as ``actor`` may read it: the shopper's contact only for inspectors and the authority."""
        product = None
        if case.gtin and case.lot:
            product = self.session.execute(
                select(Batch.product_name).where(Batch.gtin == case.gtin, Batch.lot == case.lot)
            ).scalar_one_or_none()
        body: dict[str, Any] = {
            "case_number": case.case_number, "status": case.status, "assigned_to": case.assigned_to,
            "code": case.code, "gtin": case.gtin, "lot": case.lot, "serial": case.serial,
            "producer_id": case.producer_id, "product_name": product, "verdict": case.verdict,
            "where": {"kind": case.where_kind, "text": case.where_text}, "seller": case.seller, "link": case.link,
            "price": case.price, "bought_on": case.bought_on.isoformat() if case.bought_on else None,
            "description": case.description, "created_at": rfc3339(case.created_at),
            "photos": [{"sha256": p.sha256, "media_type": p.media_type} for p in case.photos],
        }
        if actor.role in (Role.AUTHORITY, Role.INSPECTOR):
            body["contact"] = case.contact
            body["contact_removed_at"] = rfc3339(case.contact_removed_at) if case.contact_removed_at else None
        return body

    @staticmethod
    def note_view(note: CaseNote) -> dict[str, Any]:
        return {"id": note.id, "author": note.author, "at": rfc3339(note.at), "text": note.text,
                "status_from": note.status_from, "status_to": note.status_to,
                "event": None if note.event is None else {"kind": note.event, "detail": note.event_detail},
                "attachment": None if note.attachment is None else {
                    "name": note.attachment_name, "media_type": note.attachment_type,
                    "size": len(note.attachment)}}

    # -- writing -------------------------------------------------------------------------------
    def _note(self, actor: Actor, case: Report, *, text: str = "", status_from: str | None = None,
              status_to: str | None = None, attachment: bytes | None = None,
              attachment_name: str | None = None, event: tuple[str, str] | None = None) -> CaseNote:
        """A note; ``event`` is what the system did, ``(kind, detail)``, stored apart from the text a
        person wrote so that each page names it in its reader's language."""
        text = (text or "").strip()
        if len(text) > MAX_NOTE_LENGTH:
            raise Invalid(f"a note has at most {MAX_NOTE_LENGTH} characters", code="TOO_LONG", field="text")
        media_type = None
        if attachment is not None:
            if len(attachment) > self.max_attachment_bytes:
                raise AttachmentRejected(
                    f"an attachment is at most {self.max_attachment_bytes // (1024 * 1024)} MiB",
                    code="ATTACHMENT_TOO_LARGE", status=413)
            if not attachment:
                raise Invalid("the attachment is empty", code="ATTACHMENT_EMPTY", field="attachment")
            media_type = sniff_media_type(attachment)
            if media_type not in ATTACHMENT_TYPES:
                raise AttachmentRejected("attachments are photos, PDF or plain text (judged by their bytes)",
                                         code="ATTACHMENT_TYPE", status=415)
        note = CaseNote(report_id=case.id, author=actor.name or actor.role.value, at=self.clock(), text=text,
                        status_from=status_from, status_to=status_to, attachment=attachment,
                        attachment_name=_safe_name(attachment_name) if attachment is not None else None,
                        attachment_type=media_type, event=event[0] if event else None,
                        event_detail=event[1] if event else None)
        self.session.add(note)
        self.session.flush()
        return note

    def add_note(self, actor: Actor, case_number: str, *, text: str = "", attachment: bytes | None = None,
                 attachment_name: str | None = None) -> CaseNote:
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        case = self._find(case_number, lock=True)
        if blank(text) and attachment is None:
            raise Invalid("a note needs a text or an attachment", code="FIELD_REQUIRED", field="text")
        note = self._note(actor, case, text=text, attachment=attachment, attachment_name=attachment_name)
        audit(self.session, self.clock(), actor, "case.note", case.case_number, note=note.id,
              attachment=note.attachment_type)
        self.session.flush()
        return note

    def note_flag_clearance(self, actor: Actor, gtin: str, lot: str, serial: str, *, note: str) -> list[str]:
        """A unit's clone flag was cleared (``InspectionService.clear_flag``): every open case about
        that unit gets a note carrying what was checked (event ``flag_cleared``), so that whoever
        works the case reads it in its history. Returns their case numbers, oldest first."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        cases = self.session.execute(
            select(Report).where(Report.gtin == gtin, Report.lot == lot, Report.serial == serial,
                                 Report.status.in_(OPEN_STATUSES)).order_by(Report.id)).scalars().all()
        for case in cases:
            self._note(actor, case, text=note, event=("flag_cleared", serial))
        return [case.case_number for case in cases]

    def assign(self, actor: Actor, case_number: str, *, assignee: str, text: str = "") -> Report:
        """Assign (or reassign) an open case; a new case becomes ``assigned``."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        assignee = (assignee or "").strip()
        if not assignee or len(assignee) > 64:
            raise Invalid("name whom the case is assigned to (at most 64 characters)", code="FIELD_REQUIRED",
                          field="assignee")
        if assignee.startswith("user:"):  # a portal account: it must exist and be able to work cases
            user = self.session.execute(select(User).where(User.username == assignee[5:])).scalar_one_or_none()
            if user is None or not user.active or user.role not in (Role.INSPECTOR.value, Role.AUTHORITY.value):
                raise Invalid(f"no active inspector or authority account {assignee[5:]!r}", code="UNKNOWN_ASSIGNEE",
                              field="assignee")
        case = self._find(case_number, lock=True)
        if case.status in ("confirmed", "dismissed"):
            raise Conflict(f"a {case.status} case is closed; reopen it first", code="CASE_CLOSED")
        before = case.status
        after = "assigned" if before == "new" else before
        case.assigned_to = assignee
        case.status = after
        self._note(actor, case, text=text, event=("assigned", assignee),
                   status_from=before if after != before else None, status_to=after if after != before else None)
        audit(self.session, self.clock(), actor, "case.assign", case.case_number, assignee=assignee,
              status_from=before, status_to=after)
        self.session.flush()
        return case

    def transition(self, actor: Actor, case_number: str, *, to: str, text: str = "",
                   expected: str | None = None) -> Report:
        """Move a case to another status (see ``TRANSITIONS``); confirming or dismissing needs a text.
        ``expected``: the status the mover saw (a page's form), refused once the case has moved on:
        an inspector's page left open had dismissed a case another had confirmed meanwhile."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        if to not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}", code="BAD_STATUS", field="to")
        case = self._find(case_number, lock=True)
        before = case.status
        if expected is not None and expected != before:
            raise Conflict(f"the case is {before} now, not {expected}: it was moved on meanwhile",
                           code="BAD_TRANSITION")
        if to not in TRANSITIONS.get(before, frozenset()):
            raise Conflict(f"a case cannot go from {before} to {to}", code="BAD_TRANSITION")
        if to == "assigned" and not case.assigned_to:
            raise Invalid("assign the case to someone (use assign)", code="FIELD_REQUIRED", field="assignee")
        if to in NEEDS_TEXT and blank(text):
            raise Invalid(f"say why the case is {to}", code="FIELD_REQUIRED", field="text")
        live = live_publication(self.session, case.id) if before == "confirmed" else None
        if live is not None:  # the public list would name a seller the case no longer holds against
            raise Conflict(f"the case is published as a violator (publication {live}): the authority withdraws "
                           "the publication first", code="CASE_PUBLISHED")
        case.status = to
        self._note(actor, case, text=text, status_from=before, status_to=to)
        audit(self.session, self.clock(), actor, "case.transition", case.case_number, status_from=before, status_to=to)
        self.session.flush()
        log.info("case %s: %s -> %s", case.case_number, before, to)
        return case

    def published(self, case: Report) -> dict[str, Any] | None:
        """The case's publication as a violator while it is on the public list (``{"publication":
        id, "log_index"}``); None once withdrawn, after which it may be published again."""
        live = live_publication(self.session, case.id)
        if live is None:
            return None
        event = self.session.execute(
            select(AuditEvent).where(AuditEvent.action == "case.publish", AuditEvent.target == case.case_number)
            .order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
        return {**(event.detail if event else {}), "publication": live}

    def publish(self, actor: Actor, case_number: str, publisher: Callable[..., Any], **overrides: Any) -> Any:
        """Publish a confirmed case as a violator (the authority), once; see :func:`publish_confirmed`."""
        actor.require(Role.AUTHORITY)
        case = self._find(case_number, lock=True)
        if self.published(case) is not None:
            raise Conflict(f"case {case_number} is already published", code="ALREADY_PUBLISHED")
        if overrides.get("decided_on") is None and case.status == "confirmed":
            confirmed_at = self.session.execute(
                select(CaseNote.at).where(CaseNote.report_id == case.id, CaseNote.status_to == "confirmed")
                .order_by(CaseNote.id.desc()).limit(1)).scalar_one_or_none()
            overrides["decided_on"] = vietnam_date(confirmed_at or self.clock())  # the day in Vietnam, not UTC's
        publication = publish_confirmed(case, publisher, **overrides)
        pub_id = getattr(publication, "id", None)
        self._note(actor, case, event=("published", str(pub_id)))
        audit(self.session, self.clock(), actor, "case.publish", case.case_number, publication=pub_id,
              log_index=getattr(publication, "log_index", None))
        self.session.flush()
        return publication
