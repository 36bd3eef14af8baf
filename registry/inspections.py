"""Inspectors' on-site checks, their signed evidence files, and the serials flagged as likely clones.

An inspection is a place and a time; each check in it keeps the verification JSON as answered
(and the photo, by its bytes and SHA-256). A check done in the browser with no network
(``offline``) is re-verified here when it is synced: both answers are kept, and the server's is
the check's verdict. The evidence file is the JSON of the inspection and its checks with the
latest signed log checkpoint, signed by the authority key, so anyone holding the trust list can
check it with no network.

Nothing here imports Flask; verification is passed in as a callable that answers the API's JSON.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import Select, func, select, tuple_, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from keys.encoding import MalformedEncoding, canonical_bytes, rfc3339, utcnow
from keys.signing import Signer, sign
from registry.cases import IMAGE_TYPES, AttachmentRejected, CaseService, sniff_media_type
from registry.audit import audit
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.log import TransparencyLog
from registry.models import AuditEvent, Batch, Inspection, InspectionCheck, Producer, Report, ScanEvent, Serial
from registry.services import Actor, Role

__all__ = ["InspectionService", "EVIDENCE_TYPE", "VERDICTS", "MAX_PHOTO_BYTES", "MAX_OFFLINE_AGE"]

log = logging.getLogger(__name__)

EVIDENCE_TYPE = "inspection-evidence"
VERDICTS = ("genuine", "counterfeit", "suspect", "recalled", "expired", "unknown", "unverifiable", "unreadable")
MAX_PHOTO_BYTES = 10 * 1024 * 1024
#: How old an offline check may be when it is synced, and how far ahead a client clock may run.
MAX_OFFLINE_AGE = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=5)
MAX_CHECKS = 2000
MAX_CLEARANCE_NOTE = 2000
MAX_LINKED_REPORTS = 10  # shoppers' reports shown with each flagged serial
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: The most a phone's own answer to an offline check may hold (its canonical JSON). It goes into the
#: evidence file the authority signs, so it is held to what a verification answer can be: the
#: longest origin record the registry takes (every text at its limit, in 3-byte letters) comes to
#: about 17 KiB with its reasons and notes.
MAX_OFFLINE_RESULT_BYTES = 32 * 1024

Recheck = Callable[[str, datetime], dict[str, Any]]


def _verdict(result: Any, field: str = "result") -> str:
    if not isinstance(result, dict):
        raise Invalid("a check's result is the verification JSON object", code="BAD_RESULT", field=field)
    verdict = result.get("verdict")
    if verdict not in VERDICTS:
        raise Invalid(f"the result's verdict must be one of {', '.join(VERDICTS)}", code="BAD_RESULT", field=field)
    return verdict


class InspectionService:
    """Open, fill, close and export inspections, inside the caller's transaction."""

    def __init__(self, session: Session, *, authority: Signer | None = None,
                 clock: Callable[[], datetime] = utcnow, max_photo_bytes: int = MAX_PHOTO_BYTES) -> None:
        self.session = session
        self.authority = authority
        self.clock = clock
        self.max_photo_bytes = max_photo_bytes

    # -- access --------------------------------------------------------------------------------
    # An inspection is its opener's: only they add checks to it or close it, whatever their role,
    # since the signed evidence file credits every check to its ``inspector``. The authority reads
    # everyone's (oversight) and writes only its own; an inspector reads only their own.
    @staticmethod
    def opener(actor: Actor) -> str:
        """Whom an inspection the actor opens is recorded as (``Inspection.inspector``)."""
        return actor.name or actor.role.value

    @classmethod
    def _may_see(cls, actor: Actor, inspection: Inspection) -> None:
        if actor.role == Role.AUTHORITY or inspection.inspector == cls.opener(actor):
            return
        raise Forbidden("this inspection belongs to another inspector", code="NOT_YOUR_INSPECTION")

    @classmethod
    def _may_write(cls, actor: Actor, inspection: Inspection) -> None:
        if inspection.inspector != cls.opener(actor):
            raise Forbidden("only whoever opened this inspection adds checks to it or closes it",
                            code="NOT_YOUR_INSPECTION")

    def get(self, actor: Actor, inspection_id: int, *, lock: bool = False, write: bool = False) -> Inspection:
        """An inspection the actor may read; with ``write``, one it may also add checks to and close
        (its own: refused before the caller verifies anything for it)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        inspection = self.session.get(Inspection, inspection_id, with_for_update=lock or None)
        if inspection is None:
            raise NotFound(f"no inspection {inspection_id}", code="INSPECTION_UNKNOWN")
        self._may_see(actor, inspection)
        if write:
            self._may_write(actor, inspection)
        return inspection

    def list(self, actor: Actor, *, own: bool = False, open_only: bool = False, limit: int = 50,
             offset: int = 0) -> list[Inspection]:
        """Inspections newest first: an inspector's own; the authority's everyone's (each names its
        ``inspector``), or with ``own`` its own alone (its "My inspections")."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        stmt = select(Inspection).order_by(Inspection.started_at.desc(), Inspection.id.desc())
        if own or actor.role != Role.AUTHORITY:
            stmt = stmt.where(Inspection.inspector == self.opener(actor))
        if open_only:
            stmt = stmt.where(Inspection.closed_at.is_(None))
        return list(self.session.execute(stmt.offset(offset).limit(limit)).scalars())

    # -- writing -------------------------------------------------------------------------------
    def open(self, actor: Actor, *, place: str = "", lat: float | None = None, lon: float | None = None,
             started_at: datetime | None = None, client_id: str | None = None,
             started_by: str | None = None) -> Inspection:
        """Start an inspection, now; or one the phone started offline (``started_at``: when, within
        the last 30 days; ``client_id``: the browser's id for it, which makes sending it again, a
        retry or a second tab, answer the inspection already made for this inspector;
        ``started_by``: whom the phone was logged in as then, who alone may send it: a phone
        passed to another inspector had sent the first one's inspection as the second's)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        if started_by is not None and started_by != self.opener(actor):
            raise Conflict(f"this inspection was started on this phone by {started_by}: only they can send it",
                           code="OTHER_INSPECTOR")
        if client_id is not None:
            if not CLIENT_ID.fullmatch(client_id):
                raise Invalid("an inspection's client id is 1 to 32 letters, digits, '-' or '_'", code="BAD_CLIENT_ID",
                              field="id")
            earlier = self._started(actor, client_id)
            if earlier is not None:
                log.info("inspection %s sent again (client id %s), kept once", earlier.id, client_id)
                return earlier
        now = self.clock()
        if started_at is not None and not now - MAX_OFFLINE_AGE <= started_at <= now + CLOCK_SKEW:
            raise Invalid("an inspection started offline must have started within the last 30 days",
                          code="BAD_DATE", field="started_at")
        place = (place or "").strip()
        if len(place) > 300:
            raise Invalid("place has at most 300 characters", code="TOO_LONG", field="place")
        if (lat is None) != (lon is None):
            raise Invalid("give both lat and lon, or neither", code="BAD_PLACE", field="lat")
        if lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):  # type: ignore[operator]
            raise Invalid("lat must be within ±90 and lon within ±180", code="BAD_PLACE", field="lat")
        inspection = Inspection(inspector=self.opener(actor), place=place, lat=lat, lon=lon,
                                started_at=min(started_at, now) if started_at is not None else now, closed_at=None,
                                client_id=client_id)
        try:
            with self.session.begin_nested():  # two tabs sending the same one at once: the other's is it
                self.session.add(inspection)
                self.session.flush()
        except IntegrityError:
            if client_id is None:
                raise
            return self._started(actor, client_id)
        audit(self.session, now, actor, "inspection.open", f"inspection:{inspection.id}", place=place,
              **({"offline": True, "started_at": rfc3339(inspection.started_at)} if started_at is not None else {}))
        self.session.flush()
        return inspection

    def _started(self, actor: Actor, client_id: str) -> Inspection | None:
        """The inspection this actor's browser sent under ``client_id``, if any."""
        return self.session.execute(select(Inspection).where(
            Inspection.inspector == self.opener(actor), Inspection.client_id == client_id)).scalar_one_or_none()

    def add_check(self, actor: Actor, inspection_id: int, *, result: dict[str, Any], photo: bytes | None = None,
                  offline: bool = False, code: str | None = None, at: datetime | None = None,
                  recheck: Recheck | None = None, client_id: str | None = None) -> InspectionCheck:
        """Record one check.

        Online, ``result`` is the verification JSON the server just answered. Offline
        (``offline=True``), ``result`` is what the browser answered, ``code`` the text it read and
        ``at`` when; ``recheck(code, at)`` verifies the code here, and both answers are kept
        (``{"offline": ..., "server": ...}``) with the server's verdict as the check's.
        ``client_id`` is the browser's id for the check: sent again (a retry, a second tab), the
        check already kept under it in this inspection is returned and nothing new is recorded.
        Only whoever opened the inspection adds checks to it (``NOT_YOUR_INSPECTION``)."""
        inspection = self.get(actor, inspection_id, lock=True, write=True)
        if client_id is not None:
            if not CLIENT_ID.fullmatch(client_id):
                raise Invalid("a check's client id is 1 to 32 letters, digits, '-' or '_'", code="BAD_CLIENT_ID",
                              field="id")
            earlier = self.session.execute(
                select(InspectionCheck).where(InspectionCheck.inspection_id == inspection.id,
                                              InspectionCheck.client_id == client_id)).scalar_one_or_none()
            if earlier is not None:
                log.info("inspection %s: check %s sent again (client id %s), kept once", inspection.id,
                         earlier.id, client_id)
                return earlier
        now = self.clock()
        client_verdict = _verdict(result)
        if offline:
            if at is None:
                raise Invalid("an offline check needs the time it was made", code="FIELD_REQUIRED", field="checked_at")
            if at > now + CLOCK_SKEW or at < now - MAX_OFFLINE_AGE:
                raise Invalid("an offline check's time must be within the last 30 days", code="BAD_DATE", field="checked_at")
            if inspection.closed_at is not None and at > inspection.closed_at:
                raise Conflict("the inspection was closed before this check was made", code="INSPECTION_CLOSED")
            if at < inspection.started_at - CLOCK_SKEW:  # else the signed evidence puts it in another visit
                raise Invalid("an offline check's time is before its inspection began", code="BAD_DATE", field="checked_at")
            if not (code or "").strip():
                raise Invalid("an offline check needs the code as read, to check it again here",
                              code="FIELD_REQUIRED", field="code")
            if recheck is None:
                raise RuntimeError("syncing an offline check needs a recheck callable")
            server = recheck(code.strip(), at)
            verdict = _verdict(server, "server")
            stored: dict[str, Any] = {"offline": result, "server": server}
        else:
            if inspection.closed_at is not None:
                raise Conflict("the inspection is closed", code="INSPECTION_CLOSED")
            at, verdict, stored = now, client_verdict, result
        try:  # the check goes into the signed evidence file: it must be signable, or that file never is
            canonical_bytes({"result": stored})
            too_large = offline and len(canonical_bytes(result)) > MAX_OFFLINE_RESULT_BYTES  # the phone's part
        except MalformedEncoding:
            raise Invalid("the result holds a number JSON cannot carry exactly (beyond ±2^53, NaN or infinite)",
                          code="BAD_RESULT", field="result") from None
        if too_large:
            raise Invalid(f"an offline check's result holds at most {MAX_OFFLINE_RESULT_BYTES // 1024} KiB",
                          code="BAD_RESULT", field="result")
        if self._count(inspection.id) >= MAX_CHECKS:
            raise Conflict(f"an inspection holds at most {MAX_CHECKS} checks; open another", code="TOO_MANY_CHECKS")
        media_type = sha = None
        if photo is not None:
            if len(photo) > self.max_photo_bytes:
                raise AttachmentRejected(f"a photo is at most {self.max_photo_bytes // (1024 * 1024)} MiB",
                                         code="PHOTO_TOO_LARGE", status=413)
            media_type = sniff_media_type(photo)
            if media_type not in IMAGE_TYPES:
                raise AttachmentRejected("the photo is not an image (judged by its bytes)", code="NOT_AN_IMAGE",
                                         status=415)
            sha = hashlib.sha256(photo).hexdigest()
        check = InspectionCheck(inspection_id=inspection.id, at=at, verdict=verdict, result=stored, offline=offline,
                                photo=photo, photo_sha256=sha, media_type=media_type, client_id=client_id,
                                received_at=now, after_close=inspection.closed_at is not None)
        self.session.add(check)
        self.session.flush()
        audit(self.session, self.clock(), actor, "inspection.check", f"inspection:{inspection.id}", check=check.id,
              verdict=verdict, offline=offline, **({"offline_verdict": client_verdict} if offline else {}))
        self.session.flush()
        return check

    def close(self, actor: Actor, inspection_id: int) -> Inspection:
        """Close the inspection: whoever opened it alone (``NOT_YOUR_INSPECTION``)."""
        inspection = self.get(actor, inspection_id, lock=True, write=True)
        if inspection.closed_at is not None:
            raise Conflict("the inspection is already closed", code="INSPECTION_CLOSED")
        inspection.closed_at = self.clock()
        audit(self.session, self.clock(), actor, "inspection.close", f"inspection:{inspection.id}",
              checks=self._count(inspection.id))
        self.session.flush()
        return inspection

    # -- views and evidence --------------------------------------------------------------------
    def _count(self, inspection_id: int) -> int:
        return self.session.execute(
            select(func.count(InspectionCheck.id)).where(InspectionCheck.inspection_id == inspection_id)
        ).scalar_one()

    def checks(self, inspection: Inspection) -> list[InspectionCheck]:
        """The inspection's checks in order, without loading the photos' bytes."""
        return list(self.session.execute(
            select(InspectionCheck).options(defer(InspectionCheck.photo))
            .where(InspectionCheck.inspection_id == inspection.id).order_by(InspectionCheck.id)
        ).scalars())

    def photo(self, actor: Actor, inspection_id: int, check_id: int) -> tuple[bytes, str]:
        """A check's photo and its media type."""
        inspection = self.get(actor, inspection_id)
        check = self.session.get(InspectionCheck, check_id)
        if check is None or check.inspection_id != inspection.id or check.photo is None:
            raise NotFound(f"no photo for check {check_id}", code="PHOTO_UNKNOWN")
        return check.photo, check.media_type or "application/octet-stream"

    def view(self, inspection: Inspection, *, checks: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": inspection.id, "inspector": inspection.inspector, "place": inspection.place,
            "lat": inspection.lat, "lon": inspection.lon, "started_at": rfc3339(inspection.started_at),
            "closed_at": rfc3339(inspection.closed_at) if inspection.closed_at else None,
        }
        if checks:
            body["checks"] = [self.check_view(c) for c in self.checks(inspection)]
        return body

    @staticmethod
    def _evidence_entry(check: InspectionCheck) -> dict[str, Any]:
        """A check as the evidence file holds it. ``received_at``: when the registry took it, absent
        for checks kept before it was recorded. A check made offline before the close may arrive
        after it, so a file issued later holds more than one issued at the close: such a check is
        marked ``received_after_close`` (the inspection's row is locked while a check is added, so
        this is exact, whatever the times to the second say)."""
        entry = {"id": check.id, "at": rfc3339(check.at), "verdict": check.verdict, "result": check.result,
                 "photo_sha256": check.photo_sha256, "media_type": check.media_type, "offline": check.offline}
        if check.received_at is not None:
            entry["received_at"] = rfc3339(check.received_at)
        if check.after_close:
            entry["received_after_close"] = True
        return entry

    @classmethod
    def check_view(cls, check: InspectionCheck) -> dict[str, Any]:
        body = cls._evidence_entry(check)
        if check.offline and isinstance(check.result, dict):
            body["offline_verdict"] = (check.result.get("offline") or {}).get("verdict")
        return body

    def evidence(self, actor: Actor, inspection_id: int) -> dict[str, Any]:
        """The signed evidence file: ``{"t": "inspection-evidence", "inspection", "checks",
        "checkpoint", "issued_at", "sig"}``, signed by the authority key."""
        if self.authority is None:
            raise RuntimeError("signing evidence needs the authority key")
        inspection = self.get(actor, inspection_id)
        checks = [self._evidence_entry(c) for c in self.checks(inspection)]
        checkpoint = TransparencyLog(self.session, authority=self.authority, clock=self.clock).latest_checkpoint()
        body = {"t": EVIDENCE_TYPE, "inspection": self.view(inspection), "checks": checks,
                "checkpoint": checkpoint, "issued_at": rfc3339(self.clock())}
        audit(self.session, self.clock(), actor, "inspection.evidence", f"inspection:{inspection.id}",
              checks=len(checks))
        self.session.flush()
        return sign(body, self.authority)

    # -- flagged serials -----------------------------------------------------------------------
    def flagged_serials(self, actor: Actor, *, limit: int = 50, offset: int = 0,
                        history: int = 20) -> list[dict[str, Any]]:
        """Serials flagged as clone suspicions, most recently seen first, each with its scan summary
        and latest scan events (time, channel, coarse place, verdict; never the client hash)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        rows = self.session.execute(
            select(Serial, Batch.gtin, Batch.lot, Batch.product_name, Producer.id, Producer.name)
            .join(Batch, Batch.id == Serial.batch_id).join(Producer, Producer.id == Batch.producer_id)
            .where(Serial.flagged.is_not(None))
            .order_by(Serial.last_seen.desc(), Serial.id.desc()).offset(offset).limit(limit)
        ).all()
        units = [(serial, gtin, lot) for serial, gtin, lot, *_ in rows]
        histories = self._latest_scans([serial.id for serial, *_ in units], history)
        reports = self._reports_about([(gtin, lot, serial.serial) for serial, gtin, lot in units])
        clearances = self._last_clearances([_unit_target(gtin, lot, serial.serial) for serial, gtin, lot in units
                                            if serial.flag_cleared_at is not None])
        out = []
        for serial, gtin, lot, product, producer_id, producer_name in rows:
            out.append({
                "serial": serial.serial, "gtin": gtin, "lot": lot, "product_name": product,
                "producer": {"id": producer_id, "name": producer_name}, "flagged": serial.flagged,
                **_clearance(serial, clearances.get(_unit_target(gtin, lot, serial.serial))),
                "reports": reports.get((gtin, lot, serial.serial), []),
                "scans": {"count": serial.scan_count, "distinct_clients": serial.distinct_clients,
                          "first_seen": rfc3339(serial.first_seen) if serial.first_seen else None,
                          "last_seen": rfc3339(serial.last_seen) if serial.last_seen else None,
                          "last_lat": serial.last_lat, "last_lon": serial.last_lon},
                "history": histories.get(serial.id, []),
            })
        return out

    def unit_state(self, actor: Actor, gtin: str, lot: str, serial: str) -> dict[str, Any] | None:
        """What clone detection holds of one unit, for an inspector working a report about it: its
        checks, whether it is flagged, and the last clearance of its flag (None: no such unit)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        unit = self.session.execute(_unit(gtin, lot, serial)).scalar_one_or_none()
        if unit is None:
            return None
        target = _unit_target(gtin, lot, serial)
        clearance = self._last_clearances([target]).get(target) if unit.flag_cleared_at is not None else None
        return {"flagged": unit.flagged, **_clearance(unit, clearance),
                "scans": {"count": unit.scan_count, "distinct_clients": unit.distinct_clients}}

    def _latest_scans(self, serial_ids: list[int], limit: int) -> dict[int, list[dict[str, Any]]]:
        """The latest ``limit`` scan events of each serial (time, channel, coarse place, verdict;
        never the client hash): one statement for a whole page of serials, each part of it bounded
        by the serial's index however long its history (a copied code can be scanned millions of
        times, which a window over all its events would read)."""
        if not serial_ids:
            return {}
        parts = [select(ScanEvent.serial_id, ScanEvent.id, ScanEvent.at, ScanEvent.channel, ScanEvent.lat,
                        ScanEvent.lon, ScanEvent.verdict).where(ScanEvent.serial_id == serial_id)
                 .order_by(ScanEvent.at.desc(), ScanEvent.id.desc()).limit(limit).subquery()
                 for serial_id in serial_ids]
        rows = self.session.execute(union_all(*(select(part) for part in parts))).all()
        out: dict[int, list[dict[str, Any]]] = {}
        for e in sorted(rows, key=lambda e: (e.at, e.id), reverse=True):
            out.setdefault(e.serial_id, []).append(
                {"at": rfc3339(e.at), "channel": e.channel, "lat": e.lat, "lon": e.lon, "verdict": e.verdict})
        return out

    def _reports_about(self, units: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """Shoppers' reports about each of these very units (GTIN, lot, serial), newest first (at most
        ``MAX_LINKED_REPORTS`` each): what an inspector reads before deciding whether a flagged unit
        is a copy. One statement for a whole page of units."""
        if not units:
            return {}
        rank = func.row_number().over(partition_by=(Report.gtin, Report.lot, Report.serial),
                                      order_by=Report.id.desc()).label("rank")
        ranked = (select(Report.gtin, Report.lot, Report.serial, Report.case_number, Report.status,
                         Report.created_at, rank)
                  .where(tuple_(Report.gtin, Report.lot, Report.serial).in_(units)).subquery())
        out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in self.session.execute(select(ranked).where(ranked.c.rank <= MAX_LINKED_REPORTS)
                                      .order_by(ranked.c.rank)):
            out.setdefault((r.gtin, r.lot, r.serial), []).append(
                {"case_number": r.case_number, "status": r.status, "created_at": rfc3339(r.created_at)})
        return out

    def _last_clearances(self, targets: list[str]) -> dict[str, dict[str, Any]]:
        """Who cleared each of these serials' flags last, when, and what they wrote (from the audit
        log; a target is ``GTIN/lot/serial``). One statement for a whole page of serials."""
        if not targets:
            return {}
        last = (select(func.max(AuditEvent.id)).where(AuditEvent.target.in_(targets),
                                                      AuditEvent.action == "serial.flag_clear")
                .group_by(AuditEvent.target).scalar_subquery())
        events = self.session.execute(select(AuditEvent).where(AuditEvent.id.in_(last))).scalars()
        return {e.target: {"at": rfc3339(e.at), "by": e.actor, "note": (e.detail or {}).get("note", "")}
                for e in events}

    def clear_flag(self, actor: Actor, gtin: str, lot: str, serial: str, *, note: str) -> dict[str, Any]:
        """An inspector who has looked into a flagged serial and found nothing wrong (the display
        unit every customer scans, a shopper behind a VPN) clears its flag, saying what was checked.
        Clone detection then counts again from now: the clients that had verified the serial and
        the networks of the verifications before no longer count, so the next check reads genuine
        and the flag comes back only if a new crowd of clients on many networks verifies it. A
        verification that flagged it just before, not yet written by its server, does not flag it
        again (``registry.scans``). The audit log keeps who cleared what, why, and the counts; each
        open report case about the unit gets the note too (``CaseService.note_flag_clearance``)."""
        actor.require(Role.INSPECTOR, Role.AUTHORITY)
        note = (note or "").strip()
        if not note:
            raise Invalid("say what was checked before clearing the flag", code="FIELD_REQUIRED", field="note")
        if len(note) > MAX_CLEARANCE_NOTE:
            raise Invalid(f"the note has at most {MAX_CLEARANCE_NOTE} characters", code="TOO_LONG", field="note")
        unit = self.session.execute(_unit(gtin, lot, serial).with_for_update(of=Serial)
                                    .execution_options(populate_existing=True)).scalar_one_or_none()
        if unit is None:
            raise NotFound(f"no serial {serial} in batch {gtin} / {lot}", code="SERIAL_UNKNOWN")
        if unit.flagged is None:
            raise Conflict("this serial is not flagged", code="NOT_FLAGGED")
        reason, now = unit.flagged, self.clock()
        unit.flagged, unit.flag_cleared_at, unit.clone_baseline = None, now, unit.distinct_clients
        cases = CaseService(self.session, clock=lambda: now).note_flag_clearance(actor, gtin, lot, serial, note=note)
        audit(self.session, now, actor, "serial.flag_clear", _unit_target(gtin, lot, serial), reason=reason, note=note,
              scan_count=unit.scan_count, distinct_clients=unit.distinct_clients, cases=cases)
        self.session.flush()
        return {"gtin": gtin, "lot": lot, "serial": serial, "cleared": reason, "flag_cleared_at": rfc3339(now),
                "scans": {"count": unit.scan_count, "distinct_clients": unit.distinct_clients}, "cases": cases}


def _unit(gtin: str, lot: str, serial: str) -> Select:
    """The serial row of one unit, by what its code says."""
    return (select(Serial).join(Batch, Batch.id == Serial.batch_id)
            .where(Batch.gtin == gtin, Batch.lot == lot, Serial.serial == serial))


def _unit_target(gtin: str, lot: str, serial: str) -> str:
    """How the audit trail names one unit (``serial.flag_clear`` events)."""
    return f"{gtin}/{lot}/{serial}"


def _clearance(unit: Serial, last: dict[str, Any] | None) -> dict[str, Any]:
    """When the unit's flag was last cleared, and by whom and why (``last``, from the audit log)."""
    if unit.flag_cleared_at is None:
        return {"flag_cleared_at": None, "cleared_before": None}
    return {"flag_cleared_at": rfc3339(unit.flag_cleared_at), "cleared_before": last}
