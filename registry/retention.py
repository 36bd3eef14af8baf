"""How long what the service keeps about people is kept: old scan events deleted, in short
transactions (``ScanRetention``), and the shoppers' contacts removed from reports whose case
closed long ago (``ContactRetention``).

A scan event holds when and through which channel a code was verified, the coarse place a client
gave and the salted hashes of the client and its network: little, but about people, and a national
service gathers millions a day. Nothing needs the old ones: a serial's and a batch's counters
(``scan_count``, ``distinct_clients``, ``first_seen``, ``last_seen``...) are summary columns of
their own, and ``serial_clients`` (which clients saw a serial, what the clone check counts) is
kept, so "first verified on ..., verified N times" and the clone check stay as they were. What
goes is the row-by-row history: an inspector's view of a serial's past verifications and the EPCIS
export's scan events older than the cutoff. The clone check reads a serial's latest
verifications' networks, and inspectors its recent history, hence ``MIN_RETENTION``.

A report holds what the shopper typed to be reached (``contact``) and the salted hash of their
client (what limits floods of reports). Inspectors need them while they work the case; once it is
decided (confirmed counterfeit or dismissed) and some time has passed, nothing does. What the
shopper reported stays (the product, where and from whom, the photos, already without their
metadata, the case's notes), and so does the follow-up code's hash: the shopper can still read how
the report ended. A dismissed case may be reopened, hence ``MIN_CONTACT_RETENTION``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from registry.actors import Actor, Role
from registry.audit import audit
from registry.cases import CLOSED_STATUSES
from registry.errors import Invalid
from registry.models import CaseNote, Report, ScanEvent

__all__ = ["MIN_RETENTION", "MAX_RETENTION_DAYS", "PURGE_BATCH", "ScanRetention", "MIN_CONTACT_RETENTION",
           "ContactRetention"]

#: The least history a purge keeps.
MIN_RETENTION = timedelta(days=30)
#: The most days a retention may keep (a century): more is no date a database holds.
MAX_RETENTION_DAYS = 36_500
#: Rows deleted per transaction: short enough that verifications' writes never wait long for it.
PURGE_BATCH = 10_000


def _within_a_century(days: int, field: str) -> None:
    """800,000 days had been a date out of range, a traceback; 10^11 an integer too large for one."""
    if days > MAX_RETENTION_DAYS:
        raise Invalid(f"keep at most {MAX_RETENTION_DAYS:,} days (a century)", code="RETENTION_TOO_LONG", field=field)


class ScanRetention:
    """Delete the scan events recorded before a cutoff, a batch at a time (each batch its own
    transaction: the caller commits between them), oldest first, through the index (at, id)."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.clock = clock

    def cutoff(self, actor: Actor, *, keep_days: int) -> datetime:
        """The moment before which events go, keeping the last ``keep_days`` days; checks the role."""
        actor.require(Role.AUTHORITY)
        if keep_days < MIN_RETENTION.days:
            raise Invalid(f"keep at least {MIN_RETENTION.days} days of scan events: the clone check reads a "
                          "serial's latest verifications and inspectors its recent history",
                          code="RETENTION_TOO_SHORT", field="keep_days")
        _within_a_century(keep_days, "keep_days")
        return self.clock() - timedelta(days=keep_days)

    def purge_batch(self, before: datetime, *, limit: int = PURGE_BATCH) -> int:
        """Delete at most ``limit`` of the oldest events recorded before ``before``; how many went."""
        oldest = (select(ScanEvent.id).where(ScanEvent.at < before)
                  .order_by(ScanEvent.at, ScanEvent.id).limit(limit).scalar_subquery())
        return self.session.execute(delete(ScanEvent).where(ScanEvent.id.in_(oldest))).rowcount or 0

    def record(self, actor: Actor, before: datetime, deleted: int) -> None:
        """The purge in the audit trail (in the caller's last transaction)."""
        audit(self.session, self.clock(), actor, "scans.purge", "scan_events", before=rfc3339(before),
              deleted=deleted)


#: The least time after a case was decided before its shopper's contact may be removed.
MIN_CONTACT_RETENTION = timedelta(days=30)


class ContactRetention:
    """Remove the shopper's contact and client hash from the reports whose case was decided
    (confirmed or dismissed) before a cutoff, in one statement: a case reopened meanwhile is not
    touched. Each report then says when (``contact_removed_at``)."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.clock = clock

    def forget(self, actor: Actor, *, closed_days: int) -> tuple[datetime, int]:
        """Forget the contacts of the cases decided more than ``closed_days`` days ago (their latest
        change of status); answers the cutoff and how many reports. Audited; the caller commits."""
        actor.require(Role.AUTHORITY)
        if closed_days < MIN_CONTACT_RETENTION.days:
            raise Invalid(f"keep a shopper's contact at least {MIN_CONTACT_RETENTION.days} days after the case "
                          "was decided: a dismissed case may be reopened", code="RETENTION_TOO_SHORT",
                          field="closed_days")
        _within_a_century(closed_days, "closed_days")
        now = self.clock()
        before = now - timedelta(days=closed_days)
        decided_at = (select(func.max(CaseNote.at)).where(CaseNote.report_id == Report.id,
                                                          CaseNote.status_to.is_not(None))
                      .correlate(Report).scalar_subquery())
        forgotten = self.session.execute(
            update(Report)
            .where(Report.status.in_(CLOSED_STATUSES), Report.contact_removed_at.is_(None),
                   or_(Report.contact != "", Report.client_hash.is_not(None)),
                   func.coalesce(decided_at, Report.created_at) < before)
            .values(contact="", client_hash=None, contact_removed_at=now),
            execution_options={"synchronize_session": False}).rowcount or 0
        audit(self.session, now, actor, "reports.forget_contacts", "reports", closed_before=rfc3339(before),
              reports=forgotten)
        return before, forgotten
