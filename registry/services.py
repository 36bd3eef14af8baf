"""Registry services: producers and their keys, batches, serials, recalls, tokens, the trust list.

Every service takes a session in its constructor and works inside the caller's transaction; the
caller (a request or a CLI command) commits once, so a write and its log entry land together.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keys.certificates import admit_producer, certify_producer_key, gtin_covered
from keys.encoding import (
    MalformedEncoding,
    b64url_decode,
    b64url_encode,
    kid_for,
    log_bytes,
    parse_rfc3339,
    rfc3339,
    utcnow,
)
from keys.errors import KeyStoreError, VerificationError
from keys.signing import (Signer, check_public_key, public_key_from_raw, sign, sign_code, split_code_signature,
                          verify, verify_code)
from keys.storage import KeyStore
from registry.actors import SYSTEM, Actor, Role
from registry.audit import audit
from registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, Unavailable, collect, raise_problems
from registry.log import TransparencyLog
from registry.models import (
    ApiToken,
    Batch,
    BatchVersion,
    LogEntry,
    Producer,
    ProducerKey,
    Recall,
    Serial,
)
from registry.rules import (
    MAX_CERTIFICATION_TEXT,
    MAX_CERTIFICATIONS,
    MAX_QUANTITY,
    RECORD_TEXT,
    blank,
    check_code_date,
    check_country,
    check_gln,
    check_gs1_prefix,
    check_gtin,
    check_lot,
    check_serial,
    check_tax_code,
    check_text,
    parse_date,
    record_text,
    shown_status,
    yymmdd,
)
from verification.digital_link import build_url
from verification.localtime import vietnam_date

if TYPE_CHECKING:
    from registry.labels import LabelData

__all__ = [
    "Role",
    "Actor",
    "SYSTEM",
    "Registry",
    "batch_named",
    "TokenService",
    "SERIAL_ALPHABET",
    "SERIAL_LENGTH",
    "MAX_SERIALS_PER_REQUEST",
    "AUTHORITY_KEY_NAME",
]

log = logging.getLogger(__name__)

#: What a pre-signed correction carries besides an origin record's fields.
_CORRECTION_FIELDS = ("version", "supersedes", "reason")

AUTHORITY_KEY_NAME = "authority"
# Crockford's base32 alphabet: no I, L, O, U, so a serial read aloud or retyped stays unambiguous.
SERIAL_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SERIAL_LENGTH = 12  # 60 random bits: guessing one of 100,000 serials succeeds with p < 1e-13
MAX_SERIALS_PER_REQUEST = 100_000
MAX_RECALL_REASON = 1000  # as the API's RecallInSchema
MAX_CORRECTION_REASON = 1000  # as the API's CorrectionInSchema
#: What an origin record says about its batch: what a correction may change (but the GTIN, the lot and
#: the expiry date) and must change at least one of.
ORIGIN_CONTENT = ("gtin", "lot", "product", "facility", "production_date", "expiry_date", "quantity", "certifications")
DEFAULT_KEY_VALIDITY = timedelta(days=3 * 365)





def batch_named(gtin: str, lot: str) -> Select:
    """The batch a path, a form or a command names: its GTIN as printed under the barcode (8, 12 or 13
    digits are the same GTIN-14) or refused as ``BAD_GTIN``/``BAD_CHECK_DIGIT`` (a malformed GTIN
    names no batch there could ever be, which "no such batch" would not say), and its lot."""
    return select(Batch).where(Batch.gtin == check_gtin(gtin), Batch.lot == lot)


def private_key(keystore: KeyStore, name: str, *, create: bool = False) -> Signer:
    """A private key of the key store (made first with ``create`` if it has none), the one way the
    registry opens them: one that cannot be opened (a KEY_PASSPHRASE other than the one it was
    encrypted with, a key folder not shared with this server) is ``KEYS_UNAVAILABLE``, a 503,
    before anything is written. It had been a 500 (or a traceback) at every signing write."""
    try:
        return keystore.load_or_create(name) if create else keystore.load(name)
    except KeyStoreError as exc:
        if keystore.has(name):  # there, but not opened with this passphrase: the message says so
            hint = ""
        elif name == AUTHORITY_KEY_NAME:
            hint = "; run `python -m app init`"
        else:
            hint = "; every app server needs the instance's key folder (INSTANCE_DIR/keys)"
        raise Unavailable(f"this server cannot sign: {exc}{hint}", code="KEYS_UNAVAILABLE") from None


#: How far ahead of the registry's clock a pre-signed record's ``issued_at`` may be (the producer's clock).
PRESIGNED_CLOCK_SKEW = timedelta(minutes=5)


class Registry:
    """The registry's write and read operations, over one session."""

    def __init__(self, session: Session, *, keystore: KeyStore, base_url: str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.keystore = keystore
        self.base_url = base_url
        self.clock = clock

    # -- authority -----------------------------------------------------------------------------
    @property
    def authority(self) -> Signer:
        return self._private_key(AUTHORITY_KEY_NAME)

    def _private_key(self, name: str) -> Signer:
        return private_key(self.keystore, name)

    def log(self) -> TransparencyLog:
        return TransparencyLog(self.session, authority=self.authority, clock=self.clock)

    def _append(self, obj: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
        tlog = self.log()
        index = tlog.append(obj, kind=kind)
        return index, tlog.sign_checkpoint()

    # -- producers and keys --------------------------------------------------------------------
    def admit_producer(self, actor: Actor, *, name: str, tax_code: str, gs1_prefixes: list[str],
                       country: str) -> Producer:
        actor.require(Role.AUTHORITY)
        problems: list[Invalid] = []  # every field's, so that the form marks them all at once
        checked = functools.partial(collect, problems)
        name = (name or "").strip()
        if not name:
            problems.append(Invalid("name is required", code="FIELD_REQUIRED", field="name"))
        tax_code = (tax_code or "").strip()
        country = checked(check_country, country)
        if not tax_code:
            problems.append(Invalid("tax_code is required", code="FIELD_REQUIRED", field="tax_code"))
        elif country is not None:
            checked(lambda: check_tax_code(tax_code, country=country))
        if not gs1_prefixes:
            problems.append(Invalid("at least one GS1 company prefix is required", code="FIELD_REQUIRED",
                                    field="gs1_prefixes"))
        for prefix in gs1_prefixes or []:
            if checked(check_gs1_prefix, prefix) is None:
                break  # one mark for the field
        raise_problems(problems)
        self.log().lock()  # admissions one at a time: two must not take overlapping prefixes together
        if self.session.execute(select(Producer.id).where(Producer.tax_code == tax_code)).first():
            raise Conflict(f"a producer with tax code {tax_code} is already admitted", code="PRODUCER_EXISTS")
        self._check_prefixes_free(gs1_prefixes)
        producer = Producer(id=f"prd-{secrets.token_hex(5)}", name=name, tax_code=tax_code,
                            gs1_prefixes=sorted(set(gs1_prefixes)), country=country.upper(),
                            created_at=self.clock())
        self._append(self._admission(producer), "producer")
        self.session.add(producer)
        audit(self.session, self.clock(), actor, "producer.admit", producer.id, name=name)
        self.session.flush()
        return producer

    def log_unlogged_producers(self, actor: Actor) -> list[Producer]:
        """Append an admission entry for each producer admitted before admissions were logged (an
        instance upgraded from such a version), marked ``"logged_late"`` with the time it was logged:
        the log vouches for the producer's row from then on, not for what it held before."""
        actor.require(Role.AUTHORITY)
        self.log().lock()  # one at a time, as admissions: a producer is logged once
        logged = {json.loads(data)["id"] for (data,) in self.session.execute(
            select(LogEntry.data).where(LogEntry.kind == "producer"))}
        late = [p for p in self.session.execute(select(Producer).order_by(Producer.created_at, Producer.id)).scalars()
                if p.id not in logged]
        if not late:
            return []
        tlog = self.log()
        now = self.clock()
        for producer in late:
            tlog.append(self._admission(producer, logged_late=now), kind="producer")
            audit(self.session, now, actor, "producer.log", producer.id, name=producer.name)
        tlog.sign_checkpoint()
        self.session.flush()
        return late

    def _admission(self, producer: Producer, *, logged_late: datetime | None = None) -> dict[str, Any]:
        return admit_producer(self.authority, producer_id=producer.id, name=producer.name, tax_code=producer.tax_code,
                              country=producer.country, gs1_prefixes=producer.gs1_prefixes,
                              admitted_at=producer.created_at, logged_late=logged_late)

    def _check_prefixes_free(self, prefixes: list[str]) -> None:
        """A GS1 company prefix belongs to one producer: none of ``prefixes`` may equal, contain or
        lie inside another producer's, or that producer's GTINs could be signed as someone else's."""
        for other_id, taken in self.session.execute(select(Producer.id, Producer.gs1_prefixes)):
            for mine in prefixes:
                clash = next((t for t in taken or () if mine.startswith(t) or t.startswith(mine)), None)
                if clash is not None:
                    raise Conflict(f"GS1 company prefix {mine} overlaps prefix {clash} of producer {other_id}",
                                   code="PREFIX_TAKEN", field="gs1_prefixes")

    def producer(self, producer_id: str) -> Producer:
        producer = self.session.get(Producer, producer_id)
        if producer is None:
            raise NotFound(f"no producer {producer_id}", code="PRODUCER_UNKNOWN")
        return producer

    def certify_key(self, actor: Actor, producer_id: str, *, public_key: str | None = None,
                    gs1_prefixes: list[str] | None = None, not_after: datetime | None = None) -> ProducerKey:
        """Certify a producer key: a new custodial one (``public_key`` None) or one the producer keeps,
        for ``gs1_prefixes`` (None: all the producer's; an empty list is refused, not read as all)."""
        actor.require(Role.AUTHORITY)
        producer = self.producer(producer_id)
        if gs1_prefixes is not None and not gs1_prefixes:
            raise Invalid("choose at least one of the producer's GS1 company prefixes for the key",
                          code="PREFIX_REQUIRED", field="gs1_prefixes")
        prefixes = sorted(set(producer.gs1_prefixes if gs1_prefixes is None else gs1_prefixes))
        for prefix in prefixes:
            if prefix not in producer.gs1_prefixes:
                raise Invalid(f"prefix {prefix} is not one of the producer's GS1 company prefixes",
                              code="PREFIX_NOT_OWNED", field="gs1_prefixes")
        if public_key is None:
            signer = Signer.generate()
            raw = signer.public_raw
            custodial = True
        else:
            try:
                raw = b64url_decode(public_key)
                check_public_key(raw)
            except MalformedEncoding as exc:
                raise Invalid(f"public_key must be a raw 32-byte Ed25519 key in base64url: {exc}",
                              code="BAD_PUBLIC_KEY", field="public_key") from None
            custodial = False
        kid = kid_for(raw)
        self.log().lock()  # certifications one at a time: the same key offered twice at once is a 409
        if self.session.get(ProducerKey, kid) is not None:
            raise Conflict(f"key {kid} is already certified", code="KEY_EXISTS")
        now = self.clock()
        not_after = not_after or now + DEFAULT_KEY_VALIDITY
        if not_after <= now:
            raise Invalid("not_after must be in the future", code="BAD_DATE", field="not_after")
        cert = certify_producer_key(self.authority, producer_id=producer.id, public_raw=raw,
                                    gs1_prefixes=prefixes, not_before=now, not_after=not_after)
        index, _ = self._append(cert, "producer-key")
        key = ProducerKey(kid=kid, producer_id=producer.id, public_key=b64url_encode(raw), custodial=custodial,
                          certificate=cert, gs1_prefixes=prefixes, not_before=now, not_after=not_after,
                          status="active", created_at=now, log_index=index)
        self.session.add(key)
        audit(self.session, self.clock(), actor, "key.certify", kid, producer_id=producer.id, custodial=custodial)
        self.session.flush()
        if custodial:
            # Written last: if the transaction fails after this, an orphan encrypted file is harmless.
            self.keystore.save(kid, signer)
        return key

    def revoke_key(self, actor: Actor, kid: str, *, compromised_at: datetime | None) -> ProducerKey:
        actor.require(Role.AUTHORITY)
        # The log first, as every writer of the log takes it: a registration holds it while its new
        # batch's foreign key holds the key row, so locking the key first deadlocked with it.
        self.log().lock()
        key = self.session.get(ProducerKey, kid, with_for_update=True, populate_existing=True)
        if key is None:
            raise NotFound(f"no key {kid}", code="KEY_UNKNOWN")
        if key.status == "revoked":
            raise Conflict(f"key {kid} is already revoked", code="KEY_ALREADY_REVOKED")
        now = self.clock()
        compromised_at = compromised_at or now
        if compromised_at > now:
            raise Invalid("compromised_at cannot be in the future", code="DATE_IN_FUTURE", field="compromised_at")
        event = sign({"t": "key-revocation", "kid": kid, "compromised_at": rfc3339(compromised_at),
                      "at": rfc3339(now)}, self.authority)
        self._append(event, "key-revocation")
        key.status = "revoked"
        key.compromised_at = compromised_at
        key.revoked_at = now
        audit(self.session, self.clock(), actor, "key.revoke", kid, compromised_at=rfc3339(compromised_at))
        self.session.flush()
        return key

    def active_key(self, producer_id: str, *, gtin: str | None = None) -> ProducerKey:
        """The producer's newest key that can sign now: active and within its validity dates and,
        given ``gtin``, certified for its company prefix (a producer whose keys cover different
        prefixes signs each GTIN with the key that covers it)."""
        now = self.clock()
        keys = self.session.execute(
            select(ProducerKey)
            .where(ProducerKey.producer_id == producer_id, ProducerKey.status == "active",
                   ProducerKey.not_before <= now, ProducerKey.not_after > now)
            .order_by(ProducerKey.created_at.desc(), ProducerKey.log_index.desc())  # the log: same-second ties
        ).scalars().all()
        if not keys:
            raise Conflict("the producer has no active certified key; ask the authority to certify one",
                           code="NO_ACTIVE_KEY")
        for key in keys:
            if gtin is None or gtin_covered(gtin, key.gs1_prefixes):
                return key
        raise Forbidden(f"GTIN {gtin} is outside the GS1 company prefixes certified for the producer's active keys "
                        f"({', '.join(sorted({p for k in keys for p in k.gs1_prefixes}))})",
                        code="PREFIX_NOT_LICENSED")

    def code_key(self, batch: Batch, *, lock: bool = False) -> ProducerKey:
        """The key that signs the batch's codes now (its serials; the batch code on its labels): the
        key its record was registered with while that key can still sign for its GTIN, else the
        producer's newest that can (a code names its key: any certified key of the producer
        verifies). A revoked, expired or unlicensed key had gone on signing new serials, which then
        verified as suspect or counterfeit. ``lock``: the key row is held FOR SHARE until the
        transaction ends, so a revocation (which locks it FOR UPDATE) waits for the codes being
        signed, or they are signed by another key after it."""
        for _ in range(2):
            key = self.session.get(ProducerKey, batch.kid)
            if key is None or not self._can_sign(key, batch.gtin):
                key = self.active_key(batch.producer_id, gtin=batch.gtin)
            if not lock:
                return key
            self.session.refresh(key, with_for_update={"read": True})
            if self._can_sign(key, batch.gtin):
                return key
        raise Conflict("the producer's keys were revoked meanwhile; try again", code="NO_ACTIVE_KEY")

    def _can_sign(self, key: ProducerKey, gtin: str) -> bool:
        return (key.status == "active" and key.not_before <= self.clock() < key.not_after
                and gtin_covered(gtin, key.gs1_prefixes))

    def key(self, kid: str) -> ProducerKey | None:
        return self.session.get(ProducerKey, kid)

    def _signer(self, key: ProducerKey) -> Signer:
        if not key.custodial:
            raise Conflict(f"key {key.kid} is kept by the producer: submit records and codes signed by it",
                           code="KEY_NOT_CUSTODIAL")
        return self._private_key(key.kid)

    # -- batches -------------------------------------------------------------------------------
    def _origin_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """The origin record's fields, checked: every field's problem is collected, then raised
        together (``InvalidFields``), so a form can mark all of them at once."""
        problems: list[Invalid] = []
        checked = functools.partial(collect, problems)
        gtin = checked(check_gtin, str(data.get("gtin", "")))
        lot = checked(check_lot, str(data.get("lot", "")))
        shape = [Invalid(f"{part} must be an object", code="BAD_RECORD", field=part)
                 for part in ("product", "facility") if not isinstance(data.get(part) or {}, dict)]
        certifications = data.get("certifications") or []
        if not isinstance(certifications, list) or not all(isinstance(c, dict) for c in certifications):
            shape.append(Invalid("certifications must be a list of objects", code="BAD_RECORD",
                                 field="certifications"))
        elif len(certifications) > MAX_CERTIFICATIONS:  # every verification answers them, for good
            problems.append(Invalid(f"a batch lists at most {MAX_CERTIFICATIONS} certifications, got "
                                    f"{len(certifications):,}", code="TOO_MANY_CERTIFICATIONS",
                                    field="certifications"))
        if shape:  # nothing below can be read
            problems += shape
            raise_problems(problems)
        product = _record_part(data, "product", problems)
        facility = _record_part(data, "facility", problems)
        if facility.get("gln"):
            checked(check_gln, str(facility["gln"]))
        if facility.get("country"):
            try:
                facility["country"] = check_country(str(facility["country"]))
            except Invalid as exc:  # the facility's country, not the producer's
                problems.append(Invalid(exc.message, code=exc.code, field="facility.country"))
        production = checked(parse_date, data.get("production_date"), "production_date")
        if production is None and not any(p.field == "production_date" for p in problems):
            problems.append(Invalid("production_date is required", code="FIELD_REQUIRED", field="production_date"))
        expiry = checked(parse_date, data.get("expiry_date"), "expiry_date")
        today = self.clock().date()
        if expiry is not None:
            expiry = checked(lambda day: check_code_date(day, field="expiry_date", today=today), expiry)
        if production is not None and production > today + timedelta(days=1):
            problems.append(Invalid("production_date is in the future", code="DATE_IN_FUTURE",
                                    field="production_date"))
        if production is not None and expiry is not None and expiry <= production:
            problems.append(Invalid("expiry_date must be after production_date", code="BAD_DATE",
                                    field="expiry_date"))
        quantity = data.get("quantity")
        if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool)
                                     or not 1 <= quantity <= MAX_QUANTITY):
            problems.append(Invalid(f"quantity must be a whole number from 1 to {MAX_QUANTITY:,}", code="BAD_QUANTITY",
                                    field="quantity"))
        problems += _certification_problems(certifications)
        raise_problems(problems)
        assert production is not None
        certifications = [
            {"scheme": record_text(c.get("scheme", "")), "id": record_text(c.get("id", ""))}
            for c in (data.get("certifications") or [])
        ]
        record: dict[str, Any] = {
            "gtin": gtin,
            "lot": lot,
            "product": product,
            "facility": facility,
            "production_date": production.isoformat(),
            "expiry_date": expiry.isoformat() if expiry else None,
            "quantity": quantity,
            "certifications": certifications,
        }
        return {k: v for k, v in record.items() if v is not None}

    def register_batch(self, actor: Actor, data: dict[str, Any], *, producer_id: str | None = None) -> Batch:
        """Register a batch from its origin data, or from a pre-signed record in ``data["record"]``."""
        batch = self._register_one(actor, data, producer_id=producer_id)
        self.log().sign_checkpoint()
        return batch

    def register_batches(self, actor: Actor, rows: list[dict[str, Any]], *, producer_id: str | None = None,
                         row_names: list[str] | None = None) -> list[Batch]:
        """Register many batches in the caller's transaction: all or none, one checkpoint at the end.

        An error names the row (``Invalid.field`` is prefixed ``row N:``, or by the row's name in
        ``row_names``, such as the file's ``line 7``; ``row`` is N, counted from 1)."""
        batches = []
        for number, data in enumerate(rows, start=1):
            try:
                batches.append(self._register_one(actor, data, producer_id=producer_id))
            except (Invalid, Conflict, Forbidden, NotFound) as exc:
                name = row_names[number - 1] if row_names else f"row {number}"
                for named in (exc, *getattr(exc, "problems", ())):
                    named.message = f"{name}: {named.message}"
                    named.field = name + (f": {named.field}" if named.field else "")
                exc.row = number
                raise
        if batches:
            self.log().sign_checkpoint()
        return batches

    def _register_one(self, actor: Actor, data: dict[str, Any], *, producer_id: str | None) -> Batch:
        actor.require(Role.PRODUCER, Role.AUTHORITY)
        named = producer_id or data.get("producer_id")
        if actor.role == Role.PRODUCER:
            if named and named != actor.producer_id:  # it had been ignored: the batch went to the sender's
                raise Forbidden(f"a producer registers its own batches, not producer {named}'s",
                                code="NOT_YOUR_PRODUCER", field="producer_id")
            producer_id = actor.producer_id
        else:
            producer_id = named
        if not producer_id:
            raise Invalid("producer_id is required when the authority registers a batch",
                          code="FIELD_REQUIRED", field="producer_id")
        producer = self.producer(producer_id)
        # Lock the log first: concurrent registrations queue here (then meet the unique key), and a
        # key revoked meanwhile is seen revoked (revocations take the log first too).
        tlog = self.log()
        tlog.lock()
        presigned = data.get("record")
        if presigned is not None:
            record, key = self._check_presigned(producer, presigned)
        else:
            fields = self._origin_fields(data)
            key = self.active_key(producer.id, gtin=fields["gtin"])
            record = {"t": "origin-record", **fields, "kid": key.kid, "producer_id": producer.id,
                      "issued_at": rfc3339(self.clock())}
            record = sign(record, self._signer(key))
        exists = self.session.execute(
            select(Batch.id).where(Batch.gtin == record["gtin"], Batch.lot == record["lot"])
        ).first()
        if exists:
            raise Conflict(f"batch {record['gtin']} / {record['lot']} is already registered", code="BATCH_EXISTS")
        index = tlog.append(record, kind="origin-record")
        batch = Batch(gtin=record["gtin"], lot=record["lot"], producer_id=producer.id, kid=key.kid, record=record,
                      product_name=record["product"]["name"],
                      production_date=date.fromisoformat(record["production_date"]),
                      expiry_date=date.fromisoformat(record["expiry_date"]) if record.get("expiry_date") else None,
                      status="active", serial_count=0, scan_count=0, log_index=index, created_at=self.clock())
        self.session.add(batch)
        try:
            self.session.flush()
        except IntegrityError:
            raise Conflict(f"batch {record['gtin']} / {record['lot']} is already registered",
                           code="BATCH_EXISTS") from None
        audit(self.session, self.clock(), actor, "batch.register", f"{batch.gtin}/{batch.lot}", log_index=index)
        return batch

    def _check_prefix(self, key: ProducerKey, gtin: str) -> None:
        if not gtin_covered(gtin, key.gs1_prefixes):
            raise Forbidden(f"GTIN {gtin} is outside the GS1 company prefixes certified for key {key.kid} "
                            f"({', '.join(key.gs1_prefixes)})", code="PREFIX_NOT_LICENSED")

    def _check_presigned(self, producer: Producer, record: Any, *, correction: bool = False,
                         ) -> tuple[dict[str, Any], ProducerKey]:
        if not isinstance(record, dict) or record.get("t") != "origin-record":
            raise Invalid("record must be a signed origin-record object", code="BAD_RECORD", field="record")
        sig = record.get("sig") or {}
        kid = sig.get("kid") if isinstance(sig, dict) else None
        key = self.session.get(ProducerKey, kid) if isinstance(kid, str) else None
        if key is None or key.producer_id != producer.id:
            raise Forbidden("the record is not signed by a key certified to this producer", code="KEY_UNKNOWN")
        if key.status != "active" or not key.not_before <= self.clock() < key.not_after:
            raise Forbidden(f"key {key.kid} is not active", code="KEY_REVOKED")
        if record.get("kid") != key.kid or record.get("producer_id") != producer.id:
            raise Invalid("record kid and producer_id must name the signing key and its producer",
                          code="BAD_RECORD", field="record")
        try:
            verify(record, public_key_from_raw(b64url_decode(key.public_key)))
        except (VerificationError, MalformedEncoding) as exc:
            raise Invalid(f"record signature does not verify: {exc}", code="SIGNATURE_INVALID",
                          field="record") from None
        fields = self._origin_fields(record)
        if not isinstance(record.get("issued_at"), str):
            raise Invalid("record needs issued_at", code="BAD_RECORD", field="issued_at")
        try:
            issued_at = parse_rfc3339(record["issued_at"])
        except MalformedEncoding as exc:
            raise Invalid(str(exc), code="BAD_RECORD", field="issued_at") from None
        # Logged for good, the time a shopper reads as when the producer signed: within the key's
        # life and not ahead of the registry's clock (a record "issued" in 2031, or before its key
        # existed, had been taken). Allowance: a producer's clock a few minutes ahead.
        if issued_at > self.clock() + PRESIGNED_CLOCK_SKEW:
            raise Invalid(f"record issued_at {record['issued_at']} is in the future", code="BAD_RECORD",
                          field="issued_at")
        if issued_at < key.not_before:
            raise Invalid(f"record issued_at {record['issued_at']} is before key {key.kid} was valid "
                          f"({rfc3339(key.not_before)})", code="BAD_RECORD", field="issued_at")
        # What is logged is what the registry would have signed, field for field: a record signed
        # with an ISO week date, a made-up "version" or "status", or a product name that is an
        # object had been logged as sent, for good (and the last answered 500).
        canonical = {"t": "origin-record", **fields, "kid": key.kid, "producer_id": producer.id,
                     "issued_at": record["issued_at"]}
        envelope = {"sig", *(_CORRECTION_FIELDS if correction else ())}
        for name in record:
            if name not in canonical and name not in envelope:
                raise Invalid(f"record field {name} is not part of an origin record"
                              + (" (version, supersedes and reason belong to a correction)"
                                 if name in _CORRECTION_FIELDS else ""), code="BAD_RECORD", field=name)
        for name, value in canonical.items():
            if record.get(name) != value:
                raise Invalid(f"record field {name} is not in canonical form: the registry would sign {value!r}",
                              code="BAD_RECORD", field=name)
        self._check_prefix(key, fields["gtin"])
        return record, key

    # -- corrections ---------------------------------------------------------------------------
    def correct_batch(self, actor: Actor, gtin: str, lot: str, data: dict[str, Any], *,
                      reason: str | None = None) -> Batch:
        """Correct a batch's origin record. Records are immutable: the correction is a new version,
        signed and appended to the transparency log, naming the version it replaces (``"version"``,
        ``"supersedes": {"index", "sha256"}``: the replaced record's log index and the SHA-256 of
        its log entry) and why (``"reason"``). The replaced version is kept (``BatchVersion``).

        ``data`` is the whole corrected record, shaped as for ``register_batch`` (GTIN and lot may be
        left out), or a record signed by the producer's own key in ``data["record"]`` that carries
        the version, supersedes and reason itself. The GTIN, the lot and the expiry date cannot
        change (codes already printed carry them), and something else must. Each server's cached
        lookups drop the batch when they see the new log entry (``registry.lookup``)."""
        actor.require(Role.PRODUCER, Role.AUTHORITY)
        self.log().lock()  # then the batch, read afresh: two corrections at once become two versions
        batch = self.owned_batch(actor, gtin, lot, lock=True)
        now = self.clock()
        old = batch.record
        version = int(old.get("version", 1)) + 1
        supersedes = {"index": batch.log_index, "sha256": b64url_encode(hashlib.sha256(log_bytes(old)).digest())}
        presigned = data.get("record")
        if presigned is not None:
            record, key = self._check_presigned(batch.producer, presigned, correction=True)
            if record.get("version") != version or record.get("supersedes") != supersedes:
                raise Conflict(f"the record must be version {version} superseding {supersedes}: it names "
                               "another version, or the batch was corrected meanwhile", code="VERSION_CONFLICT")
            reason = record.get("reason") if isinstance(record.get("reason"), str) else None
            self._check_correction(batch, record, _fixed_fields(record), reason, [])
        else:
            problems: list[Invalid] = []
            fields: dict[str, Any] = {}
            try:
                fields = self._origin_fields({**data, "gtin": data.get("gtin") or batch.gtin,
                                              "lot": data.get("lot") or batch.lot})
            except Invalid as exc:
                problems += getattr(exc, "problems", [exc])
            reason = self._check_correction(batch, fields, _fixed_fields(data), reason, problems)
            key = self.active_key(batch.producer_id, gtin=batch.gtin)
            record = sign({"t": "origin-record", **fields, "kid": key.kid, "producer_id": batch.producer_id,
                           "issued_at": rfc3339(now), "version": version, "supersedes": supersedes,
                           "reason": reason}, self._signer(key))
        index, _ = self._append(record, "origin-record")
        self.session.add(BatchVersion(batch_id=batch.id, version=version - 1, record=old, log_index=batch.log_index,
                                      superseded_at=now))
        # batch.kid stays: it is the key the batch's codes are signed with (labels, serials), which a
        # correction signed with a newer key, or the producer's own, does not change
        batch.record, batch.log_index = record, index
        batch.product_name = record["product"]["name"]
        batch.production_date = date.fromisoformat(record["production_date"])
        audit(self.session, now, actor, "batch.correct", f"{batch.gtin}/{batch.lot}", log_index=index,
              version=version, reason=reason)
        self.session.flush()
        return batch

    @staticmethod
    def _check_correction(batch: Batch, fields: dict[str, Any], fixed: dict[str, Any], reason: str | None,
                          problems: list[Invalid]) -> str:
        """The correction's own rules, added to the record's ``problems`` (all raised together): a
        reason, the same GTIN, lot and expiry date (``fixed``: as the correction names them,
        ``_fixed_fields``), and a change to the record's ``fields``. Returns the reason, stripped."""
        reason = (reason or "").strip()
        if not reason:
            problems.append(Invalid("a correction needs a reason", code="FIELD_REQUIRED", field="reason"))
        elif len(reason) > MAX_CORRECTION_REASON:  # it goes into the transparency log, for good
            problems.append(Invalid(f"a correction's reason is at most {MAX_CORRECTION_REASON:,} characters",
                                    code="TOO_LONG", field="reason"))
        old = batch.record
        for name, words in (("gtin", "GTIN"), ("lot", "lot")):
            if fixed.get(name) not in (None, old[name]):
                problems.append(Invalid(f"a correction cannot change the batch's {words}: register a new batch",
                                        code="BATCH_MISMATCH", field=name))
        if "expiry_date" in fixed and fixed["expiry_date"] != old.get("expiry_date"):
            problems.append(Invalid("a correction cannot change the expiry date: the codes already printed carry "
                                    "it (recall the batch and register a new lot)", code="EXPIRY_FIXED",
                                    field="expiry_date"))
        if fields and not problems and all((fields.get(k) or None) == (old.get(k) or None) for k in ORIGIN_CONTENT):
            problems.append(Invalid("the correction changes nothing in the record", code="NOTHING_CHANGED"))
        raise_problems(problems)
        return reason

    def versions(self, batch: Batch) -> list[BatchVersion]:
        """The versions a batch's record replaced, oldest first (none for a batch never corrected)."""
        if int(batch.record.get("version", 1)) == 1:
            return []
        return list(self.session.execute(
            select(BatchVersion).where(BatchVersion.batch_id == batch.id).order_by(BatchVersion.version)).scalars())

    def batch_recall(self, batch: Batch) -> Recall | None:
        """The recall of a recalled batch (its reason and time), None for a batch in force. A database
        from before recalls locked their batch may hold two: the latest, as the trust list has it."""
        if batch.status != "recalled":
            return None
        return self.session.execute(select(Recall).where(Recall.batch_id == batch.id)
                                    .order_by(Recall.id.desc()).limit(1)).scalar_one_or_none()

    def batch(self, gtin: str, lot: str) -> Batch:
        batch = self.session.execute(batch_named(gtin, lot)).scalar_one_or_none()
        if batch is None:
            raise NotFound(f"no batch {gtin} / {lot}", code="BATCH_UNKNOWN")
        return batch

    def batch_url(self, batch: Batch, *, signed: bool = False) -> str:
        """The batch-level code, signed by ``code_key`` when the service holds that key. Without a key
        that can sign it now (every key revoked), the code unsigned, or with ``signed`` (labels to
        print) NO_ACTIVE_KEY / PREFIX_NOT_LICENSED."""
        exp = yymmdd(batch.expiry_date)
        try:
            key: ProducerKey | None = self.code_key(batch)
        except (Conflict, Forbidden):
            if signed:
                raise
            key = None
        s = None
        if key is not None and key.custodial:
            s = sign_code(self._private_key(key.kid), gtin=batch.gtin, lot=batch.lot, exp=exp)
        elif key is not None and signed:  # labels of a code that would verify as unsigned: refused
            raise Conflict(f"key {key.kid} is kept by the producer: print the batch code it signs, or register unit "
                           "codes it signed (POST .../serials with codes)", code="KEY_NOT_CUSTODIAL")
        return build_url(self.base_url, gtin=batch.gtin, lot=batch.lot, exp=exp, s=s)

    def serial_url(self, batch: Batch, serial: str, s: str) -> str:
        return build_url(self.base_url, gtin=batch.gtin, lot=batch.lot, serial=serial,
                         exp=yymmdd(batch.expiry_date), s=s)

    def batch_view(self, batch: Batch) -> dict[str, Any]:
        """``{"record", "status", "log": {"index", "size", "path", "checkpoint"}, "version", "versions"}``:
        ``status`` as shoppers' verdicts call it (``registry.rules.shown_status``), ``versions`` the
        records corrections replaced, oldest first."""
        tlog = self.log()
        checkpoint = tlog.latest_checkpoint()
        size = int(checkpoint["size"]) if checkpoint else tlog.size()
        proof = tlog.inclusion(batch.log_index, size)
        status = shown_status(batch.status, batch.expiry_date, vietnam_date(self.clock()))
        return {"record": batch.record, "status": status, "producer": self.producer_view(batch.producer),
                "serial_count": batch.serial_count, "url": self.batch_url(batch),
                "log": {"index": batch.log_index, "size": size, "path": proof["path"], "checkpoint": checkpoint},
                "version": int(batch.record.get("version", 1)),
                "versions": [{"version": v.version, "record": v.record, "log": {"index": v.log_index},
                              "superseded_at": rfc3339(v.superseded_at)} for v in self.versions(batch)]}

    @staticmethod
    def producer_view(producer: Producer) -> dict[str, Any]:
        return {"id": producer.id, "name": producer.name, "country": producer.country,
                "gs1_prefixes": producer.gs1_prefixes}

    def owned_batch(self, actor: Actor, gtin: str, lot: str, *, lock: bool = False) -> Batch:
        """The actor's batch; ``lock``: its row locked until the transaction ends and read afresh, so
        that writers of its status and counts (serials, recall) take turns."""
        if lock:
            batch = self.session.execute(
                batch_named(gtin, lot).with_for_update(key_share=True)
                .execution_options(populate_existing=True)).scalar_one_or_none()
            if batch is None:
                raise NotFound(f"no batch {gtin} / {lot}", code="BATCH_UNKNOWN")
        else:
            batch = self.batch(gtin, lot)
        actor.require_producer(batch.producer_id)
        return batch

    def issue_serials(self, actor: Actor, gtin: str, lot: str, count: int) -> list[tuple[str, str]]:
        """Issue ``count`` unpredictable serials, each signed; all or none land. Returns (serial, s)."""
        actor.require(Role.PRODUCER, Role.AUTHORITY)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SERIALS_PER_REQUEST:
            raise Invalid(f"count must be between 1 and {MAX_SERIALS_PER_REQUEST}", code="BAD_COUNT", field="count")
        # Locked: two requests at once both added their count to the same old serial_count (one
        # count was lost, and paged label sheets refused the codes past it), and a recall racing in
        # could still see serials issued after it.
        batch = self.owned_batch(actor, gtin, lot, lock=True)
        if batch.status != "active":
            raise Conflict("the batch is recalled: no new serials", code="BATCH_RECALLED")
        signer = self._signer(self.code_key(batch, lock=True))
        exp = yymmdd(batch.expiry_date)
        now = self.clock()
        serials = _random_serials(count)
        rows = []
        out = []
        for serial in serials:
            s = sign_code(signer, gtin=batch.gtin, lot=batch.lot, serial=serial, exp=exp)
            rows.append({"batch_id": batch.id, "serial": serial, "s": s, "created_at": now,
                         "scan_count": 0, "distinct_clients": 0})
            out.append((serial, s))
        try:
            self._insert_serials(rows)
        except IntegrityError:
            raise Conflict("a generated serial collided with an existing one; retry", code="SERIAL_COLLISION") from None
        batch.serial_count = (batch.serial_count or 0) + count
        audit(self.session, self.clock(), actor, "serials.issue", f"{batch.gtin}/{batch.lot}", count=count)
        self.session.flush()
        return out

    def register_serials(self, actor: Actor, gtin: str, lot: str, codes: list[Any]) -> list[tuple[str, str]]:
        """Register unit codes the producer signed with a key it keeps (``KEY_NOT_CUSTODIAL`` keys:
        the registry cannot sign for it), ``[{"serial", "s"}]``: each serial a GS1 serial new to the
        batch, each ``s`` its code signature (``{kid}.{signature}`` over the unit's code with the
        batch's expiry, as the registry's own) by an active key of the producer certified for the
        GTIN. Checked, then kept as issued serials are, so verification compares a code with the
        signature registered for its unit; all or none land. Returns (serial, s)."""
        actor.require(Role.PRODUCER, Role.AUTHORITY)
        if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_SERIALS_PER_REQUEST:
            raise Invalid(f"codes must list 1 to {MAX_SERIALS_PER_REQUEST} codes", code="BAD_COUNT", field="codes")
        batch = self.owned_batch(actor, gtin, lot, lock=True)
        if batch.status != "active":
            raise Conflict("the batch is recalled: no new serials", code="BATCH_RECALLED")
        exp = yymmdd(batch.expiry_date)
        keys: dict[str, bytes] = {}  # each signing key's raw public key, checked once per request
        now = self.clock()
        rows, out, seen = [], [], set()
        for index, code in enumerate(codes):
            field = f"codes.{index}"
            if not (isinstance(code, dict) and isinstance(code.get("serial"), str) and isinstance(code.get("s"), str)):
                raise Invalid("each code is {\"serial\", \"s\"}", code="BAD_CODE", field=field)
            try:
                serial, signature = check_serial(code["serial"]), code["s"]
            except Invalid as exc:  # named as the request has it, among up to 100,000 codes
                raise Invalid(exc.message, code=exc.code, field=f"{field}.serial") from None
            if serial in seen:
                raise Invalid(f"serial {serial} is listed twice", code="SERIAL_REPEATED", field=f"{field}.serial")
            seen.add(serial)
            try:
                kid, _ = split_code_signature(signature)
            except VerificationError:
                raise Invalid("s must be {kid}.{signature}", code="SIGNATURE_INVALID", field=f"{field}.s") from None
            if kid not in keys:
                key = self.session.get(ProducerKey, kid)
                if key is None or key.producer_id != batch.producer_id or not self._can_sign(key, batch.gtin):
                    raise Forbidden(f"code {serial} is not signed by an active key of this producer certified for "
                                    f"GTIN {batch.gtin}", code="KEY_UNKNOWN")
                keys[kid] = b64url_decode(key.public_key)
            try:
                verify_code(keys[kid], signature, gtin=batch.gtin, lot=batch.lot, serial=serial, exp=exp)
            except (VerificationError, MalformedEncoding):
                raise Invalid(f"the signature of code {serial} does not verify (it signs the unit's GTIN, lot, serial"
                              + (f" and expiry {exp}" if exp else "") + ")", code="SIGNATURE_INVALID",
                              field=f"{field}.s") from None
            rows.append({"batch_id": batch.id, "serial": serial, "s": signature, "created_at": now,
                         "scan_count": 0, "distinct_clients": 0})
            out.append((serial, signature))
        try:
            with self.session.begin_nested():
                self._insert_serials(rows)
        except IntegrityError:
            raise self._serials_exist(batch, [row["serial"] for row in rows]) from None
        batch.serial_count = (batch.serial_count or 0) + len(rows)
        audit(self.session, now, actor, "serials.issue", f"{batch.gtin}/{batch.lot}", count=len(rows),
              presigned=True)
        self.session.flush()
        return out

    def _serials_exist(self, batch: Batch, serials: list[str]) -> Conflict:
        """The refusal of codes some of which the batch already has: it names them (the first five)
        and the first one's place in the request, among up to 100,000 codes."""
        found: list[str] = []
        for start in range(0, len(serials), 1000):
            chunk = serials[start:start + 1000]
            found += self.session.execute(select(Serial.serial).where(
                Serial.batch_id == batch.id, Serial.serial.in_(chunk))).scalars().all()
            if len(found) >= 5:
                break
        position = {serial: index for index, serial in enumerate(serials)}
        found.sort(key=position.__getitem__)
        if not found:  # another request's, rolled back meanwhile: the batch has none of them now
            return Conflict("a serial was being registered for this batch at the same time: send it again",
                            code="SERIAL_EXISTS", field="codes")
        named = ", ".join(found[:5]) + (" and more" if len(found) > 5 else "")
        return Conflict(f"the batch already has serial{'s' if len(found) > 1 else ''} {named}", code="SERIAL_EXISTS",
                        field=f"codes.{position[found[0]]}.serial")

    def _insert_serials(self, rows: list[dict[str, Any]]) -> None:
        """Bulk insert inside the session's transaction: COPY on PostgreSQL, batched executemany elsewhere."""
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            columns = ("batch_id", "serial", "s", "created_at", "scan_count", "distinct_clients")
            raw = connection.connection.driver_connection  # psycopg 3, same transaction
            import psycopg

            try:
                with raw.cursor() as cursor:
                    with cursor.copy(f"COPY serials ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(tuple(row[c] for c in columns))
            except psycopg.IntegrityError:
                raise IntegrityError("COPY serials", None, None) from None  # type: ignore[arg-type]
            return
        for start in range(0, len(rows), 5000):
            self.session.execute(insert(Serial), rows[start:start + 5000])

    def serials(self, batch: Batch, *, serial: str | None = None, limit: int | None = None,
                offset: int = 0) -> Iterator[Serial]:
        query = select(Serial).where(Serial.batch_id == batch.id).order_by(Serial.id)
        if serial is not None:
            query = query.where(Serial.serial == serial)
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        yield from self.session.execute(query.execution_options(yield_per=2000)).scalars()

    def label_sheet(self, actor: Actor, gtin: str, lot: str, *, offset: int = 0,
                    limit: int | None = None) -> Iterator["LabelData"]:
        """The labels of one printable sheet: the batch's unit codes from ``offset``, at most
        ``MAX_LABELS_PER_SHEET`` (a larger batch is printed in parts: without a ``limit`` it is refused,
        with the parts to ask for), or the batch code when it has no serials."""
        from registry.labels import MAX_LABELS_PER_SHEET

        batch = self.owned_batch(actor, gtin, lot)
        if offset < 0 or (limit is not None and not 1 <= limit <= MAX_LABELS_PER_SHEET):
            raise Invalid(f"offset is at least 0 and limit from 1 to {MAX_LABELS_PER_SHEET:,}", code="BAD_RANGE",
                          field="limit")
        if limit is None and batch.serial_count - offset > MAX_LABELS_PER_SHEET:
            raise Invalid(f"this batch has {batch.serial_count:,} codes; a sheet holds at most "
                          f"{MAX_LABELS_PER_SHEET:,}: ask for it in parts with offset and limit",
                          code="TOO_MANY_LABELS", field="limit")
        if batch.serial_count and offset >= batch.serial_count:
            raise Invalid(f"offset {offset:,} is past the batch's {batch.serial_count:,} codes", code="BAD_RANGE",
                          field="offset")
        return self.labels(actor, gtin, lot, offset=offset, limit=limit)

    def labels(self, actor: Actor, gtin: str, lot: str, *, serial: str | None = None,
               include_serials: bool = True, offset: int = 0, limit: int | None = None) -> Iterator["LabelData"]:
        """Label contents for a batch: its unit codes (streamed, from ``offset``, at most ``limit``),
        or the batch code when it has none."""
        from registry.labels import LabelData

        batch = self.owned_batch(actor, gtin, lot)
        name = batch.product_name
        if serial is not None:
            row = next(self.serials(batch, serial=serial), None)
            if row is None:
                raise NotFound(f"no serial {serial} in batch {gtin} / {lot}", code="SERIAL_UNKNOWN")
            yield LabelData(url=self.serial_url(batch, row.serial, row.s), gtin=batch.gtin, lot=batch.lot,
                            serial=row.serial, expiry=batch.expiry_date, product_name=name)
            return
        if include_serials and batch.serial_count:
            for row in self.serials(batch, offset=offset, limit=limit):
                yield LabelData(url=self.serial_url(batch, row.serial, row.s), gtin=batch.gtin, lot=batch.lot,
                                serial=row.serial, expiry=batch.expiry_date, product_name=name)
            return
        yield LabelData(url=self.batch_url(batch, signed=True), gtin=batch.gtin, lot=batch.lot, serial=None,
                        expiry=batch.expiry_date, product_name=name)

    def recall(self, actor: Actor, gtin: str, lot: str, *, reason: str) -> Recall:
        actor.require(Role.PRODUCER, Role.AUTHORITY)
        reason = (reason or "").strip()
        if blank(reason):
            raise Invalid("a recall needs a reason", code="FIELD_REQUIRED", field="reason")
        if len(reason) > MAX_RECALL_REASON:  # it goes into the transparency log, for good
            raise Invalid(f"a recall's reason is at most {MAX_RECALL_REASON:,} characters", code="TOO_LONG",
                          field="reason")
        self.log().lock()  # then the batch, read afresh: two recalls at once had both been logged
        batch = self.owned_batch(actor, gtin, lot, lock=True)
        if batch.status == "recalled":
            raise Conflict("the batch is already recalled", code="BATCH_RECALLED")
        now = self.clock()
        event = sign({"t": "recall", "gtin": batch.gtin, "lot": batch.lot, "reason": reason, "at": rfc3339(now),
                      "by": actor.role.value if actor.role == Role.AUTHORITY else f"producer:{actor.producer_id}"},
                     self.authority)
        index, _ = self._append(event, "recall")
        batch.status = "recalled"
        recall = Recall(batch_id=batch.id, reason=reason, actor=actor.name or actor.role, record=event, at=now,
                        log_index=index)
        self.session.add(recall)
        audit(self.session, self.clock(), actor, "batch.recall", f"{batch.gtin}/{batch.lot}", reason=reason)
        self.session.flush()
        return recall

    # -- trust list ----------------------------------------------------------------------------
    def producers_with_keys(self) -> list[dict[str, Any]]:
        """Every producer with its keys and their status (the body of the trust list; unsigned)."""
        producers = []
        for producer in self.session.execute(select(Producer).order_by(Producer.id)).scalars():
            producers.append({
                "id": producer.id,
                "name": producer.name,
                "gs1_prefixes": producer.gs1_prefixes,
                "keys": [
                    {"kid": k.kid, "public_key": k.public_key, "status": k.status,
                     "gs1_prefixes": k.gs1_prefixes,
                     "not_before": rfc3339(k.not_before), "not_after": rfc3339(k.not_after),
                     "compromised_at": rfc3339(k.compromised_at) if k.compromised_at else None}
                    for k in producer.keys
                ],
            })
        return producers

    def recalled_batches(self) -> list[dict[str, Any]]:
        """Every recalled batch with its recall's reason and time (the trust list's ``recalls``)."""
        rows = self.session.execute(
            select(Batch.gtin, Batch.lot, Recall.reason, Recall.at).join(Recall, Recall.batch_id == Batch.id)
            .where(Batch.status == "recalled").order_by(Batch.gtin, Batch.lot, Recall.id))
        # one recall a batch, but a database from before recalls locked their batch may hold two: the latest
        latest = {(gtin, lot): {"gtin": gtin, "lot": lot, "reason": reason, "at": rfc3339(at)}
                  for gtin, lot, reason, at in rows}
        return list(latest.values())

    def trust_list(self) -> dict[str, Any]:
        """The signed trust list: the authority key, every producer key with its status, and every
        recalled batch (so that a verifier with no network knows the recalls made before it)."""
        authority = self.authority
        producers = self.producers_with_keys()
        body = {"t": "trust-list", "authority": {"kid": authority.kid, "public_key": b64url_encode(authority.public_raw)},
                "producers": producers, "recalls": self.recalled_batches(), "issued_at": rfc3339(self.clock())}
        checkpoint = self.log().latest_checkpoint()
        if checkpoint:
            body["log_size"] = checkpoint["size"]
        return sign(body, authority)


def _record_part(data: dict[str, Any], part: str, problems: list[Invalid]) -> dict[str, str]:
    """The record's ``product`` or ``facility`` as it is signed: its own fields alone (``RECORD_TEXT``),
    as text, the empty ones left out. Its name is required, and each text is at most its field's
    length (``TOO_LONG``: the record goes into the log for good and out with every verification);
    the problems go to ``problems``."""
    given = data.get(part) or {}
    texts = {name: record_text(given[name]) for name in RECORD_TEXT[part] if given.get(name) not in (None, "")}
    for name, limit in RECORD_TEXT[part].items():
        field = f"{part}.{name}"
        if name == "name" and blank(texts.get(name)):
            problems.append(Invalid(f"{field} is required", code="FIELD_REQUIRED", field=field))
        elif name in texts:
            collect(problems, lambda: check_text(texts[name], field=field, limit=limit))
    return texts


def _certification_problems(certifications: list[dict[str, Any]]) -> list[Invalid]:
    """Each certification's scheme and number: 1 to ``MAX_CERTIFICATION_TEXT`` characters, as the
    API's CertificationSchema (a scheme with no number had been signed and shown as "VietGAP ()").
    Each problem names its row and part (``certifications.0.id``)."""
    problems = []
    for index, certification in enumerate(certifications):
        for part in ("scheme", "id"):
            value = certification.get(part)
            text = "" if value is None else record_text(value)
            field = f"certifications.{index}.{part}"
            if blank(text):
                problems.append(Invalid(f"{field} is required", code="FIELD_REQUIRED", field=field))
            else:
                collect(problems, lambda: check_text(text, field=field, limit=MAX_CERTIFICATION_TEXT))
    return problems


def _fixed_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The GTIN, lot and expiry date a correction names, as a record holds them, where they can be
    read (no expiry date: None; GTIN or lot left out: the batch's own, so absent here), whether or
    not the rest of it keeps the record's rules: a change to them is objected to with the others."""
    fields: dict[str, Any] = {}
    for name, check in (("gtin", check_gtin), ("lot", check_lot)):
        if data.get(name):
            try:
                fields[name] = check(str(data[name]))
            except Invalid:
                pass
    try:
        expiry = parse_date(data.get("expiry_date"), "expiry_date")
    except Invalid:
        return fields
    fields["expiry_date"] = expiry.isoformat() if expiry else None
    return fields


def _random_serials(count: int) -> list[str]:
    seen: set[str] = set()
    alphabet = SERIAL_ALPHABET
    while len(seen) < count:
        raw = secrets.token_bytes(8 * (count - len(seen)))
        for i in range(0, len(raw), 8):
            n = int.from_bytes(raw[i:i + 8], "big") >> 4  # 60 bits
            chars = []
            for _ in range(SERIAL_LENGTH):
                chars.append(alphabet[n & 31])
                n >>= 5
            seen.add("".join(chars))
    return list(seen)[:count]


class TokenService:
    """API bearer tokens: shown once, stored as SHA-256 (they carry 256 random bits)."""

    PREFIX = "pov_"

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.clock = clock

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def create(self, *, role: Role | str, producer_id: str | None = None, label: str = "",
               expires_at: datetime | None = None) -> tuple[str, ApiToken]:
        role = Role(role)
        if role == Role.PRODUCER:
            if not producer_id:
                raise Invalid("a producer token must name its producer", code="FIELD_REQUIRED", field="producer_id")
            if self.session.get(Producer, producer_id) is None:
                raise NotFound(f"no producer {producer_id}", code="PRODUCER_UNKNOWN")
        elif producer_id:
            raise Invalid("only producer tokens are bound to a producer", code="BAD_TOKEN_SCOPE", field="producer_id")
        token = self.PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(token_hash=self.hash(token), role=role.value, producer_id=producer_id, label=label,
                       created_at=self.clock(), expires_at=expires_at)
        self.session.add(row)
        self.session.flush()
        return token, row

    def authenticate(self, token: str) -> Actor:
        row = self.session.execute(select(ApiToken).where(ApiToken.token_hash == self.hash(token))).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            raise Unauthorized("the bearer token is not valid", code="TOKEN_INVALID")
        if row.expires_at is not None and row.expires_at <= self.clock():
            raise Unauthorized("the bearer token has expired", code="TOKEN_EXPIRED")
        return Actor(role=Role(row.role), producer_id=row.producer_id, name=f"token:{row.id}")

