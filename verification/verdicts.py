"""From a decoded text to a verdict and the reasons behind it (DESIGN.md, "Verdicts").

Checks run in the order a verifier must trust them: the text parses, the signature verifies
under a key the authority certified for that GTIN's company prefix, then the registry's view of
the batch (status, expiry, serial) and the scan history. Low-level checks raise typed errors;
this module turns each into one reason code and a verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Callable, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.certificates import gtin_covered
from keys.encoding import rfc3339
from keys.errors import BadSignature
from keys.signing import public_raw, split_code_signature, verify_code
from verification.digital_link import same_host
from verification.localtime import vietnam_date
from verification.parsing import MalformedCode, ParsedCode, parse_code

__all__ = [
    "Verdict",
    "ReasonCode",
    "Reason",
    "KeyInfo",
    "BatchInfo",
    "SerialInfo",
    "ScanContext",
    "ScanSummary",
    "Lookup",
    "ScanRecorder",
    "CloneThresholds",
    "Verification",
    "Verifier",
    "most_serious",
    "VERDICT_ORDER",
]

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    GENUINE = "genuine"
    COUNTERFEIT = "counterfeit"
    SUSPECT = "suspect"
    RECALLED = "recalled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    UNVERIFIABLE = "unverifiable"
    UNREADABLE = "unreadable"


# The most serious first: a signed code beside a plain barcode decides the overall verdict.
VERDICT_ORDER = (Verdict.COUNTERFEIT, Verdict.SUSPECT, Verdict.RECALLED, Verdict.EXPIRED, Verdict.UNKNOWN,
                 Verdict.GENUINE, Verdict.UNVERIFIABLE, Verdict.UNREADABLE)


def most_serious(verdicts: list[Verdict]) -> Verdict:
    if not verdicts:
        return Verdict.UNREADABLE
    return min(verdicts, key=VERDICT_ORDER.index)


class ReasonCode(StrEnum):
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    KEY_UNKNOWN = "KEY_UNKNOWN"
    PREFIX_NOT_LICENSED = "PREFIX_NOT_LICENSED"
    SERIAL_CLONED = "SERIAL_CLONED"
    KEY_REVOKED = "KEY_REVOKED"
    DATA_MISMATCH = "DATA_MISMATCH"
    BATCH_RECALLED = "BATCH_RECALLED"
    EXPIRED = "EXPIRED"
    BATCH_UNKNOWN = "BATCH_UNKNOWN"
    SERIAL_UNKNOWN = "SERIAL_UNKNOWN"
    GTIN_UNKNOWN = "GTIN_UNKNOWN"
    PLAIN_GTIN = "PLAIN_GTIN"
    UNSIGNED_CODE = "UNSIGNED_CODE"
    NO_CODE_FOUND = "NO_CODE_FOUND"
    MALFORMED_CODE = "MALFORMED_CODE"
    BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"
    # Notes: they explain, they do not change the verdict.
    OFFLINE_NO_RECALLS = "OFFLINE_NO_RECALLS"
    OFFLINE_NO_CLONES = "OFFLINE_NO_CLONES"
    SCANNER_SLIP = "SCANNER_SLIP"
    RECALLED_SINCE = "RECALLED_SINCE"  # a check judged as of its own time: the batch was recalled after it
    OTHER_HOST = "OTHER_HOST"  # a Digital Link that leads to another website than the registry's


VERDICT_OF = {
    ReasonCode.SIGNATURE_INVALID: Verdict.COUNTERFEIT,
    ReasonCode.KEY_UNKNOWN: Verdict.COUNTERFEIT,
    ReasonCode.PREFIX_NOT_LICENSED: Verdict.COUNTERFEIT,
    ReasonCode.SERIAL_CLONED: Verdict.SUSPECT,
    ReasonCode.KEY_REVOKED: Verdict.SUSPECT,
    ReasonCode.DATA_MISMATCH: Verdict.SUSPECT,
    ReasonCode.BATCH_RECALLED: Verdict.RECALLED,
    ReasonCode.EXPIRED: Verdict.EXPIRED,
    ReasonCode.BATCH_UNKNOWN: Verdict.UNKNOWN,
    ReasonCode.SERIAL_UNKNOWN: Verdict.UNKNOWN,
    ReasonCode.GTIN_UNKNOWN: Verdict.UNKNOWN,
    ReasonCode.PLAIN_GTIN: Verdict.UNVERIFIABLE,
    ReasonCode.UNSIGNED_CODE: Verdict.UNVERIFIABLE,
    ReasonCode.NO_CODE_FOUND: Verdict.UNREADABLE,
    ReasonCode.MALFORMED_CODE: Verdict.UNREADABLE,
    ReasonCode.BAD_CHECK_DIGIT: Verdict.UNREADABLE,
}


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    detail: str = ""  # English, technical: what exactly was found (logged and shown to inspectors)

    @property
    def is_note(self) -> bool:
        return self.code not in VERDICT_OF


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    public_key: Ed25519PublicKey
    producer_id: str
    gs1_prefixes: tuple[str, ...]
    status: str  # active | revoked
    compromised_at: datetime | None = None

    @cached_property
    def raw(self) -> bytes:
        """The public key's 32 bytes, what the signature check takes (computed once per key)."""
        return public_raw(self.public_key)


@dataclass(frozen=True)
class BatchInfo:
    batch_id: int | None
    gtin: str
    lot: str
    producer_id: str
    status: str  # active | recalled
    expiry_date: date | None
    record: dict[str, Any]
    producer: dict[str, Any]
    recall_reason: str | None = None
    recalled_at: datetime | None = None  # when, for the shopper's page (the latest recall)
    code_exp: str | None = None  # the expiry (YYMMDD) the registry writes into, and signs in, its codes
    recalled_since: datetime | None = None  # judged as of an earlier moment: recalled after it (RECALLED_SINCE)


@dataclass(frozen=True)
class SerialInfo:
    serial_id: int
    serial: str
    issued: str | None = None  # the ``s`` the registry signed and printed on this unit's label


@dataclass(frozen=True)
class ScanContext:
    """Where a verification comes from. ``client`` and ``network`` are already salted hashes (the
    client's own id, and the network its address belongs to); places are coarse."""

    channel: str = "api"
    client: str | None = None
    lat: float | None = None
    lon: float | None = None
    at: datetime | None = None
    network: str | None = None


@dataclass(frozen=True)
class ScanSummary:
    count: int
    first_seen: datetime | None
    distinct_clients: int
    travel_kmh: float | None = None  # speed implied since the previous scan's place, if both had one
    # (and they came from different networks: one network can say any place it likes)
    flagged: bool = False  # an earlier verification found this serial to be a likely clone
    # Clone detection counts from here: an inspector cleared an earlier flag at ``counted_since``,
    # when ``clone_baseline`` of the distinct clients had verified the serial (they no longer count).
    counted_since: datetime | None = None
    clone_baseline: int = 0

    @property
    def clients_counted(self) -> int:
        """The distinct clients clone detection counts: those since the last cleared flag."""
        return self.distinct_clients - self.clone_baseline


class Lookup(Protocol):
    """What the verifier needs to know; the registry implements it online, the trust list offline."""

    def key(self, kid: str) -> KeyInfo | None: ...

    def batch(self, gtin: str, lot: str) -> BatchInfo | None: ...

    def product(self, gtin: str) -> dict[str, Any] | None: ...

    def serial(self, batch: BatchInfo, serial: str) -> SerialInfo | None: ...

    def recall_reason(self, gtin: str, lot: str) -> str | None:
        """The reason the batch was recalled for, if it is known to be (offline: as the trust list
        says; online the batch's status says it)."""


class ScanRecorder(Protocol):
    def begin(self, gtin: str, lot: str, serial: str | None, context: ScanContext) -> None:
        """The verification of this code starts, before any lookup: a recorder may read now, in one
        go, what ``record`` will need (the registry's recorder also answers the lookups' questions
        from that read)."""

    def record(self, *, batch: BatchInfo, serial: SerialInfo | None, context: ScanContext,
               counted: bool = True) -> ScanSummary | None:
        """The unit's history with this verification counted; nothing is kept until ``settle``.
        ``counted=False``: the history as it stands, nothing added (a code that proves nothing)."""

    def settle(self, verdict: Verdict) -> None:
        """Keep the verification ``record`` counted, with the verdict answered."""

    def networks(self, batch: BatchInfo, serial: SerialInfo, context: ScanContext, *,
                 since: datetime | None = None) -> int:
        """How many different networks the serial's recent verifications came from, this one
        included (asked only when its distinct clients pass the limit: one network can invent
        any number of client ids); ``since``: only the verifications after that moment."""

    def flag(self, batch: BatchInfo, serial: SerialInfo, reason: ReasonCode) -> None: ...


@dataclass(frozen=True)
class CloneThresholds:
    """A serial is a likely clone when more than ``max_distinct_clients`` clients from more than
    ``max_networks`` networks verified it: once found, it stays flagged until an inspector clears
    the flag, and then counting starts again (``ScanSummary.counted_since``). Two verifications from
    different networks further apart than ``max_speed_kmh`` allows make the later one ``suspect``,
    and flag nothing: places are what clients say (the shoppers' page sends none), and two
    requests with made-up places from a phone's data and a wifi network had flagged a genuine unit
    for everyone, for good."""

    max_distinct_clients: int = 10
    max_speed_kmh: float = 900.0
    max_networks: int = 5


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    code: ParsedCode | None = None
    text: str = ""
    batch: BatchInfo | None = None
    product: dict[str, Any] | None = None
    scans: ScanSummary | None = None
    offline: bool = False
    hint: str | None = None

    @property
    def notes(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.is_note)


@dataclass
class _Findings:
    reasons: list[Reason] = field(default_factory=list)

    def add(self, code: ReasonCode, detail: str = "") -> None:
        self.reasons.append(Reason(code, detail))

    def drop(self, code: ReasonCode) -> None:
        self.reasons = [r for r in self.reasons if r.code != code]

    def verdict(self, default: Verdict) -> Verdict:
        verdicts = [VERDICT_OF[r.code] for r in self.reasons if not r.is_note]
        return most_serious(verdicts) if verdicts else default


class Verifier:
    """Answers a verdict for a decoded text. ``scans`` is None offline (no history, no recalls).
    ``today`` is what expiry dates are compared with: the date in Vietnam unless told otherwise
    (a check made earlier is judged on its own date). ``home_hosts``: the hosts the registry's codes
    are printed under (``verification.digital_link.same_host``); a Digital Link on any other host gets
    the note ``OTHER_HOST``, since a phone's camera would open that website, not the registry (the
    host is not signed: a genuine code's text under a lookalike site still verifies). Empty: not
    judged (offline, the trust list does not say the registry's host)."""

    def __init__(self, *, lookup: Lookup, scans: ScanRecorder | None = None,
                 thresholds: CloneThresholds = CloneThresholds(), today: Callable[[], date] = vietnam_date,
                 offline: bool = False, home_hosts: frozenset[str] = frozenset()) -> None:
        self._lookup = lookup
        self._scans = scans
        self._thresholds = thresholds
        self._today = today
        self._offline = offline
        self._home_hosts = home_hosts

    def verify_text(self, text: str, *, context: ScanContext = ScanContext()) -> Verification:
        try:
            code = parse_code(text)
        except MalformedCode as exc:
            reason = ReasonCode(exc.reason)
            return Verification(verdict=Verdict.UNREADABLE, reasons=(Reason(reason, exc.detail),), text=text,
                                hint=exc.hint, offline=self._offline)
        return self.verify_code(code, text=text, context=context)

    def verify_code(self, code: ParsedCode, *, text: str = "", context: ScanContext = ScanContext()) -> Verification:
        found = _Findings()
        for note in code.notes:
            found.add(ReasonCode.SCANNER_SLIP, note)
        if self._home_hosts and code.host is not None and same_host(code.host) not in self._home_hosts:
            found.add(ReasonCode.OTHER_HOST, code.host)
        if code.gtin is None:
            found.add(ReasonCode.MALFORMED_CODE, "the code carries no GTIN")
            return self._result(found, code, text, default=Verdict.UNREADABLE)
        if code.lot is None:  # a product barcode: names a product, proves nothing
            found.add(ReasonCode.PLAIN_GTIN)
            return self._result(found, code, text, default=Verdict.UNVERIFIABLE,
                                product=self._lookup.product(code.gtin))
        if self._scans is not None and not self._offline:
            self._scans.begin(code.gtin, code.lot, code.serial, context)
        key = None
        if code.signature is not None:
            issued = self._issued_signature(code) if code.serial is not None and not self._offline else None
            key = self._check_signature(code, found, issued=issued)
            if found.verdict(Verdict.GENUINE) == Verdict.COUNTERFEIT:
                return self._result(found, code, text, default=Verdict.COUNTERFEIT)
        if code.expiry is not None and code.expiry < self._today():
            found.add(ReasonCode.EXPIRED, f"expiry {code.expiry.isoformat()} has passed")
        if self._offline:
            recall = self._lookup.recall_reason(code.gtin, code.lot)
            if recall is not None:
                found.add(ReasonCode.BATCH_RECALLED, recall)
            found.add(ReasonCode.OFFLINE_NO_RECALLS)  # those made after the trust list was issued
            if code.serial is not None:
                found.add(ReasonCode.OFFLINE_NO_CLONES)
            if code.signature is None:
                found.add(ReasonCode.UNSIGNED_CODE, "an unsigned code cannot be checked offline")
            return self._result(found, code, text, default=Verdict.GENUINE)
        batch = self._lookup.batch(code.gtin, code.lot)
        if batch is None:
            known = self._lookup.product(code.gtin)
            found.add(ReasonCode.BATCH_UNKNOWN if known else ReasonCode.GTIN_UNKNOWN,
                      f"no batch {code.gtin} / {code.lot} in the registry")
            return self._result(found, code, text, default=Verdict.UNKNOWN, product=known)
        if key is not None and key.producer_id != batch.producer_id:
            found.add(ReasonCode.DATA_MISMATCH, "the signing key belongs to another producer than the batch")
        if code.expiry_raw is not None and batch.expiry_date is not None and code.expiry != batch.expiry_date:
            found.add(ReasonCode.DATA_MISMATCH,
                      f"the code says expiry {code.expiry}, the registry {batch.expiry_date.isoformat()}")
            # The registry's date decides "expired" (below): the page shows it, and "the expiry
            # date has passed" beside a registered date years ahead had said two things at once.
            found.drop(ReasonCode.EXPIRED)
        if batch.status == "recalled":
            found.add(ReasonCode.BATCH_RECALLED, batch.recall_reason or "")
        elif batch.recalled_since is not None:
            found.add(ReasonCode.RECALLED_SINCE, f"recalled at {rfc3339(batch.recalled_since)}, after this check"
                      + (f": {batch.recall_reason}" if batch.recall_reason else ""))
        if batch.expiry_date is not None and batch.expiry_date < self._today() and not any(
                r.code == ReasonCode.EXPIRED for r in found.reasons):
            found.add(ReasonCode.EXPIRED, f"expiry {batch.expiry_date.isoformat()} has passed")
        serial = None
        if code.serial is not None:
            serial = self._lookup.serial(batch, code.serial)
            if serial is None:
                found.add(ReasonCode.SERIAL_UNKNOWN, f"serial {code.serial} was never issued for this batch")
        if key is None:
            found.add(ReasonCode.UNSIGNED_CODE)
        default = Verdict.GENUINE if key is not None else Verdict.UNVERIFIABLE
        scans = None
        # A serial never issued has no history: recorded under the batch's code, it had shown that
        # code's counts as its own, and added to them.
        if self._scans is not None and (serial is not None or code.serial is None):
            # Only a signed code is the unit's: its GTIN, lot and serial are printed in clear on
            # every label, and typed by anyone from anywhere they would flag a genuine unit as a
            # clone. Such a check reads the history and adds nothing to it, as a forged one does.
            signed = key is not None
            scans = self._scans.record(batch=batch, serial=serial, context=context, counted=signed)
            cloned = (signed and serial is not None and scans is not None
                      and self._check_clones(scans, found, batch, serial, context))
            self._scans.settle(found.verdict(default))  # what is answered, the clone check included
            if cloned:
                self._scans.flag(batch, serial, ReasonCode.SERIAL_CLONED)
        return self._result(found, code, text, default=default, batch=batch, scans=scans)

    def _issued_signature(self, code: ParsedCode) -> str | None:
        """The ``s`` the registry signed for this unit at issuance, if the code carries the expiry
        it signed (None: no such unit, or another expiry)."""
        batch = self._lookup.batch(code.gtin or "", code.lot or "")
        if batch is None or code.expiry_raw != batch.code_exp:
            return None
        serial = self._lookup.serial(batch, code.serial or "")
        return serial.issued if serial is not None else None

    def _check_signature(self, code: ParsedCode, found: _Findings, *, issued: str | None = None) -> KeyInfo | None:
        """The code's ``s``: its key, and its signature over what the code says. Online, a unit
        code whose ``s`` is the one the registry signed for that serial (and expiry) at issuance
        is that signature, checked when it was made: comparing it is enough, the Ed25519 check
        (the largest part of a verification's CPU, bench/http_load.py) is made for every other
        code. This trusts nothing new: online, the registry's database is already what says which
        keys are certified and which serials exist. The key's status and licence are checked
        either way; offline, every signature is checked."""
        try:
            kid, _ = split_code_signature(code.signature or "")
        except BadSignature as exc:
            found.add(ReasonCode.SIGNATURE_INVALID, str(exc))
            return None
        key = self._lookup.key(kid)
        if key is None and self._offline:
            # A trust list knows the keys certified before it was issued: a key missing from it may
            # be newer (a new producer, a key rotation), so the code cannot be checked, not "forged".
            issued = getattr(self._lookup, "issued_at", None)
            when = f" issued at {rfc3339(issued)}" if issued is not None else ""
            found.add(ReasonCode.UNSIGNED_CODE,
                      f"key {kid} is not in the trust list{when}: refresh the trust list and check again "
                      "(keys certified after the list are unknown offline)")
            return None
        if key is None:
            found.add(ReasonCode.KEY_UNKNOWN, f"no certified key {kid}")
            return None
        if issued is None or code.signature != issued:
            try:
                verify_code(key.raw, code.signature or "", gtin=code.gtin or "", lot=code.lot or "",
                            serial=code.serial, exp=code.expiry_raw)
            except BadSignature as exc:
                found.add(ReasonCode.SIGNATURE_INVALID, str(exc))
                return None
        if not gtin_covered(code.gtin or "", list(key.gs1_prefixes)):
            found.add(ReasonCode.PREFIX_NOT_LICENSED,
                      f"key {kid} is not certified for the company prefix of GTIN {code.gtin}")
            return None
        if key.status == "revoked":
            when = key.compromised_at.isoformat() if key.compromised_at else "an unknown time"
            found.add(ReasonCode.KEY_REVOKED, f"key {kid} was revoked (compromised at {when})")
        return key

    def _check_clones(self, scans: ScanSummary, found: _Findings, batch: BatchInfo, serial: SerialInfo,
                      context: ScanContext) -> bool:
        """Whether this verification finds the serial to be a likely clone (True: flag it now)."""
        limits = self._thresholds
        if scans.flagged:
            found.add(ReasonCode.SERIAL_CLONED, "flagged as a likely clone by an earlier verification")
            return False
        clients = scans.clients_counted
        if clients > limits.max_distinct_clients:
            networks = self._scans.networks(batch, serial, context, since=scans.counted_since)
            if networks > limits.max_networks:
                since = f" since a cleared flag ({scans.counted_since.isoformat()})" if scans.counted_since else ""
                found.add(ReasonCode.SERIAL_CLONED,
                          f"verified by {clients} different clients from {networks} networks{since} "
                          f"(limits {limits.max_distinct_clients} clients, {limits.max_networks} networks)")
                return True
        if scans.travel_kmh is not None and scans.travel_kmh > limits.max_speed_kmh:
            found.add(ReasonCode.SERIAL_CLONED,
                      f"seen in places {scans.travel_kmh:.0f} km/h apart (limit {limits.max_speed_kmh:.0f})")
        return False  # places are claims: this verification is suspect, the serial is not flagged

    def _result(self, found: _Findings, code: ParsedCode, text: str, *, default: Verdict,
                batch: BatchInfo | None = None, product: dict[str, Any] | None = None,
                scans: ScanSummary | None = None) -> Verification:
        if product is None and batch is not None:
            product = batch.record.get("product")
        return Verification(verdict=found.verdict(default), reasons=tuple(found.reasons), code=code, text=text,
                            batch=batch, product=product, scans=scans, offline=self._offline)
