"""How long the scan history is kept: old scan events deleted, in short transactions.

A scan event holds when and through which channel a code was verified, the coarse place a client
gave and the salted hashes of the client and its network: little, but about people, and a national
service gathers millions a day. Nothing needs the old ones: a serial's and a batch's counters
(``scan_count``, ``distinct_clients``, ``first_seen``, ``last_seen``...) are summary columns of
their own, and ``serial_clients`` (which clients saw a serial, what the clone check counts) is
kept, so "first verified on ..., verified N times" and the clone check stay as they were. What
goes is the row-by-row history: an inspector's view of a serial's past verifications and the EPCIS
export's scan events older than the cutoff. The clone check reads a serial's latest
verifications' networks, and inspectors its recent history, hence ``MIN_RETENTION``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from registry.actors import Actor, Role
from registry.audit import audit
from registry.errors import Invalid
from registry.models import ScanEvent

__all__ = ["MIN_RETENTION", "PURGE_BATCH", "ScanRetention"]

#: The least history a purge keeps.
MIN_RETENTION = timedelta(days=30)
#: Rows deleted per transaction: short enough that verifications' writes never wait long for it.
PURGE_BATCH = 10_000


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
