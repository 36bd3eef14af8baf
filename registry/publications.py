"""Consumer warnings and confirmed violators, published by the authority.

Each publication and each withdrawal is a signed object (authority key) appended to the
transparency log, so the public lists cannot be silently edited: a withdrawn publication stays
in the table and in the log, marked withdrawn, and drops out of the public lists.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from keys.signing import Signer, sign
from registry.audit import audit
from registry.errors import Conflict, Invalid, NotFound, collect, raise_problems
from registry.log import TransparencyLog
from registry.models import AuditEvent, Publication
from registry.rules import check_tax_code, fold, parse_date
from registry.services import Actor, Role

__all__ = ["KINDS", "PublicationService"]

log = logging.getLogger(__name__)

KINDS = ("warning", "violator")
_TEXT_FIELDS = {"title": 300, "body": 10_000, "name": 200, "tax_code": 32, "product": 300, "place": 300,
                "decision_ref": 100}
#: Searching filters the newest publications in Python (accent- and case-insensitive, which
#: SQLite's LIKE is not); the authority publishes hundreds, not millions.
SEARCH_WINDOW = 5000


class PublicationService:
    def __init__(self, session: Session, *, authority: Signer | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.authority = authority
        self.clock = clock

    def _log(self) -> TransparencyLog:
        if self.authority is None:
            raise RuntimeError("publishing needs the authority key")
        return TransparencyLog(self.session, authority=self.authority, clock=self.clock)

    # -- reading -------------------------------------------------------------------------------
    def list(self, kind: str, *, query: str = "", limit: int = 50, offset: int = 0) -> list[Publication]:
        """Published (not withdrawn) items of ``kind``, newest first; ``query`` matches the title,
        name, tax code, product, place or text, ignoring case and diacritics."""
        if kind not in KINDS:
            raise Invalid(f"kind must be one of {', '.join(KINDS)}", code="BAD_KIND", field="kind")
        stmt = (select(Publication).where(Publication.kind == kind, Publication.withdrawn_at.is_(None))
                .order_by(Publication.published_at.desc(), Publication.id.desc()))
        words = fold(query).split()
        if not words:
            return list(self.session.execute(stmt.offset(offset).limit(limit)).scalars())
        matches = []
        for item in self.session.execute(stmt.limit(SEARCH_WINDOW)).scalars():
            haystack = fold(" ".join([item.title, item.name, item.tax_code, item.product, item.place, item.body,
                                      item.decision_ref]))
            if all(word in haystack for word in words):
                matches.append(item)
        return matches[offset:offset + limit]

    def get(self, publication_id: int) -> Publication:
        item = self.session.get(Publication, publication_id)
        if item is None:
            raise NotFound(f"no publication {publication_id}", code="PUBLICATION_UNKNOWN")
        return item

    @staticmethod
    def view(item: Publication) -> dict[str, Any]:
        return {"id": item.id, "kind": item.kind, "title": item.title, "body": item.body, "name": item.name,
                "tax_code": item.tax_code, "product": item.product, "place": item.place,
                "decision_ref": item.decision_ref,
                "decided_on": item.decided_on.isoformat() if item.decided_on else None,
                "published_at": rfc3339(item.published_at),
                "withdrawn_at": rfc3339(item.withdrawn_at) if item.withdrawn_at else None,
                "record": item.record, "log_index": item.log_index}

    # -- writing -------------------------------------------------------------------------------
    def publish(self, actor: Actor, *, kind: str, title: str, body: str = "", name: str = "", tax_code: str = "",
                product: str = "", place: str = "", decision_ref: str = "",
                decided_on: date | str | None = None) -> Publication:
        """Sign, log and store a warning or a violator (authority only)."""
        actor.require(Role.AUTHORITY)
        if kind not in KINDS:
            raise Invalid(f"kind must be one of {', '.join(KINDS)}", code="BAD_KIND", field="kind")
        values = {"title": title, "body": body, "name": name, "tax_code": tax_code, "product": product,
                  "place": place, "decision_ref": decision_ref}
        values = {k: (v or "").strip() for k, v in values.items()}
        problems: list[Invalid] = []  # every field's, so that the form marks them all at once
        for field_name, limit in _TEXT_FIELDS.items():
            if len(values[field_name]) > limit:
                problems.append(Invalid(f"{field_name} is longer than {limit} characters", code="TOO_LONG",
                                        field=field_name))
        if not values["title"]:
            problems.append(Invalid("a publication needs a title", code="FIELD_REQUIRED", field="title"))
        if kind == "violator" and not values["name"]:
            problems.append(Invalid("a violator needs the name of the person or business", code="FIELD_REQUIRED",
                                    field="name"))
        if kind == "violator" and not values["decision_ref"]:  # a name made public for good rests on one
            problems.append(Invalid("a violator is published on a decision: give its reference",
                                    code="FIELD_REQUIRED", field="decision_ref"))
        if values["tax_code"]:  # a name made public with a mistyped number would name another business
            vietnamese = re.fullmatch(r"[0-9]{10}(-[0-9]{3})?", values["tax_code"])  # else a foreign seller's
            collect(problems, lambda: check_tax_code(values["tax_code"], country="VN" if vietnamese else "other"))
        if kind == "warning" and not (values["product"] or values["body"]):
            problems.append(Invalid("a warning needs the product or a text", code="FIELD_REQUIRED", field="product"))
        decided = collect(problems, parse_date, decided_on, "decided_on")
        now = self.clock()
        if decided is not None and decided > (now + timedelta(hours=14)).date():  # today somewhere on Earth
            problems.append(Invalid(f"the decision date {decided.isoformat()} is in the future",
                                    code="DATE_IN_FUTURE", field="decided_on"))
        raise_problems(problems)
        record = sign({"t": "publication", "kind": kind, **values,
                       "decided_on": decided.isoformat() if decided else None, "published_at": rfc3339(now)},
                      self._signer())
        tlog = self._log()
        index = tlog.append(record, kind="publication")
        tlog.sign_checkpoint()
        item = Publication(kind=kind, **values, decided_on=decided, record=record, published_at=now,
                           withdrawn_at=None, log_index=index)
        self.session.add(item)
        self.session.flush()
        audit(self.session, now, actor, "publication.publish", str(item.id), kind=kind, log_index=index)
        self.session.flush()
        log.info("publication %s (%s) published at log index %d", item.id, kind, index)
        return item

    def withdraw(self, actor: Actor, publication_id: int, *, reason: str) -> Publication:
        """Mark a publication withdrawn (it stays stored and logged); the withdrawal is signed and logged."""
        actor.require(Role.AUTHORITY)
        reason = (reason or "").strip()
        if not reason:
            raise Invalid("a withdrawal needs a reason", code="FIELD_REQUIRED", field="reason")
        item = self.get(publication_id)
        if item.withdrawn_at is not None:
            raise Conflict(f"publication {publication_id} is already withdrawn", code="ALREADY_WITHDRAWN")
        now = self.clock()
        record = sign({"t": "publication-withdrawal", "publication": item.record["sig"]["value"],
                       "log_index": item.log_index, "reason": reason[:1000], "at": rfc3339(now)}, self._signer())
        tlog = self._log()
        index = tlog.append(record, kind="publication-withdrawal")
        tlog.sign_checkpoint()
        item.withdrawn_at = now
        # The publications table has no column for the withdrawal record: it lives in the log and here.
        audit(self.session, now, actor, "publication.withdraw", str(item.id), reason=reason[:1000], log_index=index,
              record=record)
        self.session.flush()
        log.info("publication %s withdrawn at log index %d", item.id, index)
        return item

    def withdrawal(self, item: Publication) -> dict[str, Any] | None:
        """The signed withdrawal record and its log index, if ``item`` was withdrawn."""
        event = self.session.execute(
            select(AuditEvent).where(AuditEvent.action == "publication.withdraw", AuditEvent.target == str(item.id))
            .order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
        return event.detail if event else None

    def _signer(self) -> Signer:
        if self.authority is None:
            raise RuntimeError("publishing needs the authority key")
        return self.authority
