"""Registry services over a real database: rules, signatures, the log, tokens."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from keys.encoding import b64url_decode, b64url_encode, utcnow
from keys.signing import Signer, public_key_from_raw, sign, verify, verify_code
from registry.accounts import TokenAdmin
from registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from registry.models import AuditEvent, LogEntry, Producer, ProducerKey, Serial
from registry.services import (
    MAX_SERIALS_PER_REQUEST,
    SERIAL_ALPHABET,
    SERIAL_LENGTH,
    SYSTEM,
    Actor,
    Role,
    TokenService,
)
from tests.conftest import GTIN, append_only_lifted, batch_data

PRODUCER = lambda world: Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")  # noqa: E731


def test_register_batch_signs_an_origin_record(registry, world, session):
    batch = registry.register_batch(PRODUCER(world), batch_data())
    record = batch.record
    assert record["t"] == "origin-record" and record["gtin"] == GTIN and record["kid"] == world.kid
    key = registry.key(world.kid)
    verify(record, public_key_from_raw(b64url_decode(key.public_key)))
    assert registry.log().entry(batch.log_index) == record
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "batch.register")).first()


@pytest.mark.parametrize("change,code", [
    ({"gtin": "08936000010012"}, "BAD_CHECK_DIGIT"),
    ({"gtin": "0893600001001"}, "BAD_CHECK_DIGIT"),
    ({"gtin": "12345"}, "BAD_GTIN"),
    ({"lot": "L" * 21}, "BAD_LOT"),
    ({"lot": "LOT~1"}, "BAD_LOT"),
    ({"lot": "LÔ1"}, "BAD_LOT"),
    ({"production_date": "2026-13-01"}, "BAD_DATE"),
    ({"production_date": (date.today() + timedelta(days=5)).isoformat()}, "DATE_IN_FUTURE"),
    ({"expiry_date": (date.today() - timedelta(days=20)).isoformat()}, "BAD_DATE"),
    ({"quantity": 0}, "BAD_QUANTITY"),
    ({"facility": {"name": "F", "gln": "8936000010004"}}, "BAD_CHECK_DIGIT"),
    ({"lot": "."}, "LOT_UNPRINTABLE"),  # /10/. and /10/.. are resolved away by every browser
    ({"lot": ".."}, "LOT_UNPRINTABLE"),
    ({"expiry_date": "9999-12-31"}, "DATE_OUT_OF_RANGE"),  # its code's 991231 reads as 1999
    ({"expiry_date": date(date.today().year + 51, 1, 1).isoformat()}, "DATE_OUT_OF_RANGE"),
    ({"certifications": [{"scheme": "VietGAP", "id": f"VG-{i}"} for i in range(21)]}, "TOO_MANY_CERTIFICATIONS"),
    ({"certifications": [{"scheme": "VietGAP", "id": ""}]}, "FIELD_REQUIRED"),  # signed as "VietGAP ()"
    ({"certifications": [{"scheme": " ", "id": "VG-1"}]}, "FIELD_REQUIRED"),
    ({"certifications": [{"scheme": "VietGAP"}]}, "FIELD_REQUIRED"),
    ({"certifications": [{"scheme": "VietGAP", "id": None}]}, "FIELD_REQUIRED"),  # not the text "None"
    ({"certifications": [{"scheme": "VietGAP", "id": "V" * 101}]}, "TOO_LONG"),  # the API's limit
])
def test_register_batch_refuses_bad_fields(registry, world, change, code):
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), batch_data(**change))
    assert err.value.code == code
    assert err.value.message


def test_register_batch_names_every_bad_field_at_once(registry, world):
    """A form with several mistakes is answered with all of them, each with its field."""
    from registry.errors import InvalidFields

    with pytest.raises(InvalidFields) as err:
        registry.register_batch(PRODUCER(world), batch_data(gtin="12345", lot="LOT~1", quantity=0,
                                                            product={"name": " "},
                                                            production_date="2026-13-01"))
    fields = {problem.field: problem.code for problem in err.value.problems}
    assert fields == {"gtin": "BAD_GTIN", "lot": "BAD_LOT", "product.name": "FIELD_REQUIRED",
                      "production_date": "BAD_DATE", "quantity": "BAD_QUANTITY"}
    assert (err.value.field, err.value.code) == ("gtin", "BAD_GTIN")  # read as one error, the first


def test_gtin_outside_the_certified_prefix_is_forbidden(registry, world):
    with pytest.raises(Forbidden) as err:
        registry.register_batch(PRODUCER(world), batch_data(gtin="08937000010017"))
    assert err.value.code == "PREFIX_NOT_LICENSED"


def test_duplicate_batch_conflicts_and_log_does_not_grow(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    session.commit()
    size = registry.log().size()
    with pytest.raises(Conflict):
        registry.register_batch(PRODUCER(world), batch_data())
    session.rollback()
    assert registry.log().size() == size


def test_serials_are_unpredictable_signed_and_unique(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    issued = registry.issue_serials(PRODUCER(world), GTIN, "LOT-1", 500)
    session.commit()
    serials = [s for s, _ in issued]
    assert len(set(serials)) == 500
    assert all(len(s) == SERIAL_LENGTH and set(s) <= set(SERIAL_ALPHABET) for s in serials)
    key = public_key_from_raw(b64url_decode(registry.key(world.kid).public_key))
    exp = (date.today() + timedelta(days=365)).strftime("%y%m%d")
    for serial, s in issued[:50]:
        verify_code(key, s, gtin=GTIN, lot="LOT-1", serial=serial, exp=exp)
    assert session.scalar(select(func.count()).select_from(Serial)) == 500
    # 60 random bits per serial: guessing any of 100,000 serials succeeds with p = 1e5 / 2**60
    assert 100_000 / len(SERIAL_ALPHABET) ** SERIAL_LENGTH < 1e-12


def test_serial_count_limits(registry, world):
    registry.register_batch(PRODUCER(world), batch_data())
    for bad in (0, -1, MAX_SERIALS_PER_REQUEST + 1):
        with pytest.raises(Invalid):
            registry.issue_serials(PRODUCER(world), GTIN, "LOT-1", bad)


def test_another_producer_cannot_touch_the_batch(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0399999999", gs1_prefixes=["893700001"],
                                    country="VN")
    intruder = Actor(role=Role.PRODUCER, producer_id=other.id)
    with pytest.raises(Forbidden):
        registry.issue_serials(intruder, GTIN, "LOT-1", 1)
    with pytest.raises(Forbidden):
        registry.recall(intruder, GTIN, "LOT-1", reason="sabotage")


def test_roles_are_checked_in_the_services(registry, world):
    inspector = Actor(role=Role.INSPECTOR)
    with pytest.raises(Forbidden):
        registry.register_batch(inspector, batch_data())
    with pytest.raises(Forbidden):
        registry.admit_producer(inspector, name="x", tax_code="1", gs1_prefixes=["8936"], country="VN")
    with pytest.raises(Forbidden):
        registry.revoke_key(Actor(role=Role.PRODUCER, producer_id=world.producer_id), world.kid, compromised_at=None)


def test_recall_is_logged_and_blocks_new_serials(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    recall = registry.recall(PRODUCER(world), GTIN, "LOT-1", reason="contaminated")
    assert registry.log().entry(recall.log_index)["t"] == "recall"
    assert registry.batch(GTIN, "LOT-1").status == "recalled"
    with pytest.raises(Conflict):
        registry.issue_serials(PRODUCER(world), GTIN, "LOT-1", 1)
    with pytest.raises(Conflict):
        registry.recall(PRODUCER(world), GTIN, "LOT-1", reason="again")


def test_revocation_is_logged_and_listed(registry, world):
    compromised = utcnow() - timedelta(days=2)
    key = registry.revoke_key(SYSTEM, world.kid, compromised_at=compromised)
    assert key.status == "revoked"
    entries = [registry.log().entry(i) for i in range(registry.log().size())]
    assert [e["t"] for e in entries][-1] == "key-revocation"
    trust = registry.trust_list()
    listed = trust["producers"][0]["keys"][0]
    assert listed["status"] == "revoked" and listed["compromised_at"]
    with pytest.raises(Conflict):
        registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    with pytest.raises(NotFound):
        registry.revoke_key(SYSTEM, "AAAAAAAA", compromised_at=None)


def test_new_batches_need_an_active_key(registry, world):
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    with pytest.raises(Conflict) as err:
        registry.register_batch(PRODUCER(world), batch_data())
    assert err.value.code == "NO_ACTIVE_KEY"


def test_presigned_record_from_a_producer_held_key(registry, world, session):
    own = Signer.generate()
    from keys.encoding import b64url_encode, rfc3339

    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    assert not registry.keystore.has(own.kid)  # the service never sees that private key
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "Tea"}, "facility": {"name": "Farm"},
              "production_date": date.today().isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    batch = registry.register_batch(PRODUCER(world), {"record": sign(record, own)})
    assert batch.kid == own.kid and batch.record["sig"]["kid"] == own.kid
    tampered = sign({**record, "lot": "OWN-2"}, own)
    tampered["product"] = {"name": "Fake tea"}
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), {"record": tampered})
    assert err.value.code == "SIGNATURE_INVALID"
    with pytest.raises(Conflict) as err:  # the service cannot sign serials for a key it does not hold
        registry.issue_serials(PRODUCER(world), GTIN, "OWN-1", 1)
    assert err.value.code == "KEY_NOT_CUSTODIAL"


def test_presigned_record_by_an_uncertified_key_is_refused(registry, world):
    rogue = Signer.generate()
    record = sign({"t": "origin-record", "gtin": GTIN, "lot": "X", "kid": rogue.kid,
                   "producer_id": world.producer_id, "product": {"name": "x"}, "facility": {"name": "y"},
                   "production_date": date.today().isoformat(), "issued_at": "2026-01-01T00:00:00Z"}, rogue)
    with pytest.raises(Forbidden):
        registry.register_batch(PRODUCER(world), {"record": record})


def test_producer_admission_rules(registry):
    with pytest.raises(Invalid):
        registry.admit_producer(SYSTEM, name="", tax_code="0311111111", gs1_prefixes=["8936"], country="VN")
    with pytest.raises(Invalid) as err:
        registry.admit_producer(SYSTEM, name="x", tax_code="0311111111", gs1_prefixes=["89"], country="VN")
    assert err.value.code == "BAD_PREFIX"
    with pytest.raises(Invalid) as err:
        registry.admit_producer(SYSTEM, name="x", tax_code="0311111111", gs1_prefixes=["8936"], country="Vietnam")
    assert err.value.code == "BAD_COUNTRY"
    registry.admit_producer(SYSTEM, name="x", tax_code="0311111111", gs1_prefixes=["8936"], country="vn")
    with pytest.raises(Conflict):
        registry.admit_producer(SYSTEM, name="y", tax_code="0311111111", gs1_prefixes=["8937"], country="VN")


@pytest.mark.parametrize("tax_code", ["abc", "1", "031234567", "03123456739", "0312345673-01", "0312345673-0001",
                                      "0312345673 001", "0312345673001", "O312345678", "０３１２３４５６７８",
                                      "0312345678", "0312345678-001", "0100233480", "0312345673-000", "0300000000"])
def test_a_tax_code_that_is_no_vietnamese_tax_code_is_refused(registry, session, tax_code):
    """Mã số thuế: 10 digits, or 10 digits, a hyphen and 3 for a branch ("abc" had been admitted);
    the 10th digit checks the first nine (a mistyped digit had been admitted); no sequence (digits
    3 to 9) or branch is all zeros."""
    with pytest.raises(Invalid) as err:
        registry.admit_producer(SYSTEM, name="x", tax_code=tax_code, gs1_prefixes=["8936"], country="VN")
    assert (err.value.code, err.value.field) == ("BAD_TAX_CODE", "tax_code")
    if tax_code in ("0312345678", "0312345678-001", "0100233480"):
        assert "check digit" in str(err.value)
    assert session.query(Producer).count() == 0


def test_a_tax_code_of_ten_digits_or_a_branchs_thirteen_is_admitted(registry):
    head = registry.admit_producer(SYSTEM, name="x", tax_code=" 0312345673 ", gs1_prefixes=["8936"], country="VN")
    branch = registry.admit_producer(SYSTEM, name="x", tax_code="0312345673-001", gs1_prefixes=["8937"], country="VN")
    assert (head.tax_code, branch.tax_code) == ("0312345673", "0312345673-001")
    # Published examples (python-stdnum's, from the tax authority's lookups) pass the check digit.
    for n, code in enumerate(("0100233488", "0314409058-002", "0312687878-001")):
        registry.admit_producer(SYSTEM, name="x", tax_code=code, gs1_prefixes=[f"894{n}"], country="VN")


def test_a_foreign_producer_has_its_own_countrys_tax_number(registry, session):
    """The mã số thuế rule is Vietnam's: a supplier abroad is admitted with its own number, and
    still not with anything at all."""
    german = registry.admit_producer(SYSTEM, name="Kaffee GmbH", tax_code="DE123456789", gs1_prefixes=["4000"],
                                     country="de")
    assert (german.tax_code, german.country) == ("DE123456789", "DE")
    for bad in ("abc!", "<script>", "-", "x" * 40):
        with pytest.raises(Invalid) as err:
            registry.admit_producer(SYSTEM, name="y", tax_code=bad, gs1_prefixes=["4001"], country="DE")
        assert err.value.code == "BAD_TAX_CODE", bad
    with pytest.raises(Invalid) as err:
        registry.admit_producer(SYSTEM, name="y", tax_code="DE123456789", gs1_prefixes=["8939"], country="VN")
    assert err.value.code == "BAD_TAX_CODE"


def test_a_key_certified_for_no_prefix_is_refused_and_none_given_means_all(registry, session, world):
    """An explicit empty list (every box unticked) had certified the key for all the producer's prefixes."""
    keys = session.query(ProducerKey).count()
    with pytest.raises(Invalid) as err:
        registry.certify_key(SYSTEM, world.producer_id, gs1_prefixes=[])
    assert (err.value.code, err.value.field) == ("PREFIX_REQUIRED", "gs1_prefixes")
    assert session.query(ProducerKey).count() == keys
    assert registry.certify_key(SYSTEM, world.producer_id, gs1_prefixes=None).gs1_prefixes == ["893600001"]


def test_a_key_cannot_be_revoked_from_a_time_to_come(registry, session, world):
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.revoke_key(SYSTEM, world.kid, compromised_at=utcnow() + timedelta(hours=1))
    assert (err.value.code, err.value.field) == ("DATE_IN_FUTURE", "compromised_at")
    assert registry.key(world.kid).status == "active" and registry.log().size() == size


def test_a_certification_names_its_row_and_part(registry, world):
    """Each incomplete certification is marked as ``certifications.N.scheme`` or ``.id``, with the
    record's other problems, so a form and an import preview can say which."""
    from registry.errors import InvalidFields

    with pytest.raises(InvalidFields) as err:
        registry.register_batch(PRODUCER(world), batch_data(
            quantity=0, certifications=[{"scheme": "VietGAP", "id": "VG-1"}, {"scheme": "OCOP", "id": ""},
                                        {"scheme": "", "id": "H-9"}]))
    fields = {problem.field: problem.code for problem in err.value.problems}
    assert fields == {"quantity": "BAD_QUANTITY", "certifications.1.id": "FIELD_REQUIRED",
                      "certifications.2.scheme": "FIELD_REQUIRED"}


def test_a_correction_keeps_the_certifications_rule(registry, world):
    registry.register_batch(PRODUCER(world), batch_data())
    with pytest.raises(Invalid) as err:
        registry.correct_batch(PRODUCER(world), GTIN, "LOT-1",
                               batch_data(certifications=[{"scheme": "VietGAP", "id": ""}]), reason="số")
    assert (err.value.code, err.value.field) == ("FIELD_REQUIRED", "certifications.0.id")


@pytest.mark.parametrize("prefixes", [["89361"], ["893612"], ["8940", "8936123"], ["8940", "8936"]])
def test_a_gs1_prefix_belongs_to_one_producer(registry, session, prefixes):
    """Equal to, inside or around another producer's prefix: refused, or the second producer could
    sign codes for the first one's GTINs and they would verify as genuine."""
    registry.admit_producer(SYSTEM, name="x", tax_code="0311111111", gs1_prefixes=["89361"], country="VN")
    with pytest.raises(Conflict) as refused:
        registry.admit_producer(SYSTEM, name="y", tax_code="0322222222", gs1_prefixes=prefixes, country="VN")
    assert (refused.value.code, refused.value.field) == ("PREFIX_TAKEN", "gs1_prefixes")
    assert registry.admit_producer(SYSTEM, name="z", tax_code="0333333333", gs1_prefixes=["89362", "8935"],
                                   country="VN")


def test_tokens_are_hashed_scoped_and_expire(session, world):
    service = TokenService(session)
    token, row = service.create(role=Role.INSPECTOR, label="t")
    assert token not in row.token_hash and row.token_hash == TokenService.hash(token)
    assert service.authenticate(token).role == Role.INSPECTOR
    with pytest.raises(Unauthorized):
        service.authenticate(token + "x")
    expired, _ = service.create(role=Role.PARTNER, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(Unauthorized) as err:
        service.authenticate(expired)
    assert err.value.code == "TOKEN_EXPIRED"
    TokenAdmin(session).revoke(SYSTEM, row.id)
    with pytest.raises(Unauthorized):
        service.authenticate(token)
    with pytest.raises(Invalid):
        service.create(role=Role.PRODUCER)
    with pytest.raises(Invalid):
        service.create(role=Role.INSPECTOR, producer_id=world.producer_id)


def test_log_verify_all_detects_tampering(registry, world, session):
    registry.register_batch(PRODUCER(world), batch_data())
    session.commit()
    check = registry.log().verify_all(registry.authority.public_raw)
    assert check.ok and check.size == 3 and check.root_matches and check.signature_valid  # admission, key, batch
    entry = session.get(LogEntry, 2)
    assert entry.kind == "origin-record"
    with append_only_lifted(session):  # the triggers stop anyone but the schema's owner (test_append_only.py)
        entry.data = entry.data.replace("LOT-1", "LOT-9")
        session.flush()
    check = registry.log().verify_all(registry.authority.public_raw)
    assert not check.ok and any("leaf hash" in p for p in check.problems)


def test_a_trust_list_is_checked_against_the_pinned_key_even_an_empty_one(registry, world):
    """A list signed by another authority with its own key inside: refused under any pin, "" included
    (an empty pin once fell back to the document's own key); accepted only unpinned or rightly pinned."""
    from verification.offline import TrustListError, TrustListLookup

    genuine = registry.trust_list()
    assert TrustListLookup.from_document(genuine, pinned_authority_key=genuine["authority"]["public_key"])
    impostor = Signer.generate()
    forged = {k: v for k, v in genuine.items() if k != "sig"}
    forged["authority"] = {"kid": impostor.kid, "public_key": b64url_encode(impostor.public_raw)}
    forged = sign(forged, impostor)
    assert TrustListLookup.from_document(forged)  # unpinned: self-consistent, so it loads
    for pin in ("", genuine["authority"]["public_key"]):
        with pytest.raises(TrustListError):
            TrustListLookup.from_document(forged, pinned_authority_key=pin)
    for shape in ({**genuine, "producers": "x"}, {**genuine, "issued_at": 12}):
        with pytest.raises(TrustListError):
            TrustListLookup.from_document(shape)


@pytest.mark.parametrize("field, value", [("product", "x"), ("facility", ["x"]), ("certifications", "abc"),
                                          ("certifications", ["abc"])])
def test_a_batch_of_the_wrong_shape_is_invalid_not_a_crash(registry, world, field, value):
    with pytest.raises(Invalid) as refused:
        registry.register_batch(PRODUCER(world), {**batch_data(), field: value})
    assert refused.value.field == field and refused.value.code == "BAD_RECORD"


def test_a_recall_reason_has_the_apis_limit(registry, world):
    registry.register_batch(PRODUCER(world), batch_data())
    with pytest.raises(Invalid) as refused:
        registry.recall(PRODUCER(world), GTIN, "LOT-1", reason="x" * 1001)
    assert refused.value.code == "TOO_LONG"
    assert registry.recall(PRODUCER(world), GTIN, "LOT-1", reason="x" * 1000)


def _verdict(session, url: str) -> str:
    from registry.lookup import RegistryLookup
    from registry.scans import ScanHistory, ScanWriter
    from verification.verdicts import Verifier

    verifier = Verifier(lookup=RegistryLookup(session), scans=ScanHistory(session, ScanWriter()))
    return verifier.verify_text(url).verdict.value


def test_codes_are_signed_by_a_key_that_can_sign_them_now(registry, session):
    """Serials and batch-code labels are signed by the batch's key while it is active and licensed
    for the GTIN, else by the producer's newest key that is: a revoked key had gone on signing the
    batch code on labels (suspect, KEY_REVOKED), and a newer key for another prefix had signed
    serials that verified as counterfeit (PREFIX_NOT_LICENSED). Registration picks the key that
    covers the GTIN, not merely the newest."""
    two_lines = registry.admit_producer(SYSTEM, name="Hai dòng", tax_code="0311111111",
                                        gs1_prefixes=["893600003", "893600004"], country="VN")
    actor = Actor(role=Role.PRODUCER, producer_id=two_lines.id, name="p")
    first = registry.certify_key(SYSTEM, two_lines.id)  # both prefixes
    registry.register_batch(actor, batch_data(gtin="08936000030018", lot="X1"))
    registry.register_batch(actor, batch_data(gtin="08936000040017", lot="Y1"))
    registry.register_batch(actor, batch_data(gtin="08936000040017", lot="Y2"))
    second = registry.certify_key(SYSTEM, two_lines.id, gs1_prefixes=["893600004"])
    registry.revoke_key(SYSTEM, first.kid, compromised_at=None)
    session.commit()

    # X1's prefix has no active key now: its serials and its label are refused, not signed by another.
    for make in (lambda: registry.issue_serials(actor, "08936000030018", "X1", 1),
                 lambda: next(registry.labels(actor, "08936000030018", "X1"))):
        with pytest.raises(Forbidden) as err:
            make()
        assert err.value.code == "PREFIX_NOT_LICENSED"
    x1 = registry.batch("08936000030018", "X1")
    assert "s=" not in registry.batch_view(x1)["url"]  # the public view still answers, unsigned
    # Y1 and Y2 were registered with the revoked key: their new codes are signed by the second.
    (serial, s), = registry.issue_serials(actor, "08936000040017", "Y1", 1)
    assert s.startswith(f"{second.kid}.")
    label = next(registry.labels(actor, "08936000040017", "Y1", serial=serial))
    batch_label = next(registry.labels(actor, "08936000040017", "Y2"))
    assert f"s={second.kid}." in batch_label.url
    session.commit()
    assert _verdict(session, label.url) == "genuine"
    assert _verdict(session, batch_label.url) == "genuine"

    # The newest key covers only the other prefix: a new batch of this one is signed by the second.
    registry.certify_key(SYSTEM, two_lines.id, gs1_prefixes=["893600003"])
    y3 = registry.register_batch(actor, batch_data(gtin="08936000040024", lot="Y3"))
    assert y3.kid == second.kid
    registry.revoke_key(SYSTEM, second.kid, compromised_at=None)
    with pytest.raises(Forbidden) as err:
        registry.register_batch(actor, batch_data(gtin="08936000040024", lot="Y4"))
    assert err.value.code == "PREFIX_NOT_LICENSED"


@pytest.mark.parametrize("change", [
    {"expiry_date": "2027W456"},  # an ISO week date: logged as sent, read as 2027-11-13
    {"version": 7},  # a correction's field on a registration: a made-up version history
    {"status": "genuine"},
    {"verified_by_authority": True},
    {"product": {"name": {"vi": "Trà"}}},  # an object: answered 500
    {"product": {"name": "Trà", "story": "x" * 100_000}},  # no product's field: logged, of any length
    {"facility": {"name": "Farm", "notes": "y"}},
    {"certifications": [{"scheme": "VietGAP", "id": "VG-1", "note": "extra"}]},
    {"issued_at": "2031-01-01T00:00:00Z"},  # signed "in 2031", logged for good
    {"issued_at": "2020-01-01T00:00:00Z"},  # before its key was certified
])
def test_a_presigned_record_is_what_the_registry_would_sign_field_for_field(registry, world, session, change):
    from keys.encoding import rfc3339

    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "Trà"}, "facility": {"name": "Farm"},
              "production_date": date.today().isoformat(), "expiry_date": (date.today() + timedelta(days=300)).isoformat(),
              "certifications": [{"scheme": "VietGAP", "id": "VG-1"}], "issued_at": rfc3339(utcnow())}
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), {"record": sign({**record, **change}, own)})
    assert err.value.code == "BAD_RECORD" and err.value.field == next(iter(change))
    assert registry.log().size() == size
    assert registry.register_batch(PRODUCER(world), {"record": sign(record, own)}).lot == "OWN-1"


#: Each free text of an origin record and its longest, as the API's schemas have always said (its
#: OpenAPI document): nothing the API took is refused now.
RECORD_TEXT_LIMITS = {"product.name": 200, "product.brand": 200, "product.category": 200, "facility.name": 200,
                      "facility.address": 500, "certifications.0.scheme": 100, "certifications.0.id": 100}


def _with_text(field: str, text: str, **extra) -> dict:
    """``batch_data`` with ``text`` in ``field`` (``product.name``, ``certifications.0.id``)."""
    data = batch_data(**extra)
    part, *path = field.split(".")
    if part == "certifications":
        data["certifications"][int(path[0])][path[1]] = text
    else:
        data[part][path[0]] = text
    return data


@pytest.mark.parametrize("field,limit", RECORD_TEXT_LIMITS.items())
def test_every_text_of_an_origin_record_is_held_to_the_apis_length(registry, world, session, field, limit):
    """The API's schema had held these lengths, the registry none: the portal's form signed a
    400,000-character product name into the log for good (a record of 500 KB, sent with every
    verification of its codes). The registry refuses a text one character too long, however it
    comes, and signs one of exactly the length."""
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), _with_text(field, "x" * (limit + 1)))
    assert (err.value.code, err.value.field) == ("TOO_LONG", field)
    assert registry.log().size() == size
    batch = registry.register_batch(PRODUCER(world), _with_text(field, "x" * limit, lot="AT-LIMIT"))
    part, *path = field.split(".")
    signed = batch.record[part][int(path[0])][path[1]] if part == "certifications" else batch.record[part][path[0]]
    assert signed == "x" * limit


def test_an_enormous_product_name_is_refused_with_every_other_text_too_long(registry, world, session):
    """X6: a product name of 400,000 characters, with every other text over its length, each named
    at once (the form marks them all), in a message that does not repeat the text."""
    data = batch_data(lot="X6", product={"name": "A" * 400_000, "brand": "b" * 201, "category": "c" * 201},
                      facility={"name": "F" * 201, "address": "a" * 501, "country": "VN"},
                      certifications=[{"scheme": "s" * 101, "id": "i" * 101}])
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), data)
    assert [(p.code, p.field) for p in err.value.problems] == [("TOO_LONG", field) for field in RECORD_TEXT_LIMITS]
    assert err.value.message == "product.name is at most 200 characters, got 400,000"
    assert all(len(p.message) < 100 for p in err.value.problems)
    session.rollback()
    assert registry.log().size() == size
    with pytest.raises(NotFound):
        registry.batch(GTIN, "X6")


def test_a_record_signed_by_the_producers_own_key_is_held_to_the_same_lengths(registry, world, session):
    """The API's schema never saw inside a pre-signed record: its product name had no length at all."""
    from keys.encoding import rfc3339

    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "T" * 201}, "facility": {"name": "Farm", "address": "a" * 501},
              "production_date": date.today().isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), {"record": sign(record, own)})
    assert [(p.code, p.field) for p in err.value.problems] == [("TOO_LONG", "product.name"),
                                                               ("TOO_LONG", "facility.address")]
    assert registry.log().size() == size
    record.update(product={"name": "T" * 200}, facility={"name": "Farm", "address": "a" * 500})
    assert registry.register_batch(PRODUCER(world), {"record": sign(record, own)}).product_name == "T" * 200


@pytest.mark.parametrize("field, text, character", [
    ("product.name", "Trà\u0007 sen", "U+0007"),  # a BEL pasted with the name
    ("product.name", "Trà \u202enes", "U+202E"),  # shows as another name on every phone
    ("facility.address", "Đà Lạt\nLâm Đồng", "U+000A"),
    ("certifications.0.id", "VG\u2066-1", "U+2066"),
    ("product.name", "Cà phê\u200b hạt xay", "U+200B"),  # a zero-width space: the name then matches no search
    ("product.brand", "\ufeffHighland", "U+FEFF"),
])
def test_a_records_text_holds_no_control_character(registry, world, session, field, text, character):
    """The record is signed into the log for good and shown on every verification: a control
    character or a bidirectional override in it is refused, naming the field and the character."""
    part, name = field.rsplit(".", 1)
    data = batch_data()
    if part == "certifications.0":
        data["certifications"][0][name] = text
    else:
        data[part] = {**data[part], name: text}
    size = registry.log().size()
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), data)
    assert (err.value.code, err.value.field) == ("BAD_CHARACTER", field)  # the one problem
    assert character in err.value.message and registry.log().size() == size


def test_a_records_text_may_hold_the_joiners_emoji_need(registry, world, session):
    name = "Trà sen \U0001F469\u200D\U0001F33E"  # a woman farmer: two emoji joined by U+200D
    assert registry.register_batch(PRODUCER(world), batch_data(lot="ZWJ-1", product={"name": name})).product_name == name


def test_a_records_text_is_signed_in_one_unicode_form(registry, world, session):
    """"Trà" typed with the accent composed (Vietnamese keyboards) or as "a" and a combining grave
    (macOS may send it so) is one name, signed composed (NFC); a pre-signed record is held to that."""
    from keys.encoding import rfc3339

    decomposed = "Tra\u0300 sen Ta\u0302y Ho\u0302\u0300"
    batch = registry.register_batch(PRODUCER(world), batch_data(lot="NFC-1", product={"name": decomposed}))
    assert batch.record["product"]["name"] == "Trà sen Tây Hồ" == batch.product_name
    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": decomposed}, "facility": {"name": "Farm"},
              "production_date": date.today().isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    with pytest.raises(Invalid) as err:
        registry.register_batch(PRODUCER(world), {"record": sign(record, own)})
    assert err.value.code == "BAD_RECORD" and err.value.field == "product" and "Trà sen Tây Hồ" in err.value.message
