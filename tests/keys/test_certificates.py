from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from keys.certificates import certify_producer_key, gtin_covered, verify_certificate
from keys.errors import BadSignature, CertificateInvalid
from keys.signing import Signer

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


def _cert(authority, producer):
    return certify_producer_key(authority, producer_id="prd-1", public_raw=producer.public_raw,
                                gs1_prefixes=["893600001"], not_before=NOW, not_after=NOW + timedelta(days=30))


def test_certificate_verifies_and_returns_the_key():
    authority, producer = Signer.generate(), Signer.generate()
    cert = _cert(authority, producer)
    assert cert["t"] == "producer-key" and cert["kid"] == producer.kid
    assert cert["not_before"] == "2026-11-22T00:00:00Z"
    key = verify_certificate(cert, authority.private_key.public_key())
    assert Signer.from_private_key(producer.private_key).public_raw == producer.public_raw
    assert key is not None


def test_certificate_with_widened_prefixes_fails():
    authority, producer = Signer.generate(), Signer.generate()
    cert = _cert(authority, producer)
    cert["gs1_prefixes"] = ["8"]
    with pytest.raises(BadSignature):
        verify_certificate(cert, authority.private_key.public_key())


def test_certificate_with_swapped_public_key_fails():
    authority, producer, attacker = Signer.generate(), Signer.generate(), Signer.generate()
    cert = _cert(authority, producer)
    cert["public_key"] = _cert(authority, attacker)["public_key"]
    with pytest.raises(CertificateInvalid, match="kid does not match"):
        verify_certificate(cert, authority.private_key.public_key())


def test_certificate_by_another_authority_fails():
    cert = _cert(Signer.generate(), Signer.generate())
    with pytest.raises(BadSignature):
        verify_certificate(cert, Signer.generate().private_key.public_key())


def test_not_a_certificate():
    with pytest.raises(CertificateInvalid):
        verify_certificate({"t": "origin-record"}, Signer.generate().private_key.public_key())


@pytest.mark.parametrize("gtin,prefixes,covered", [
    ("08936000010010", ["893600001"], True),
    ("18936000010017", ["893600001"], True),   # indicator digit is ignored
    ("08936000020010", ["893600001"], False),
    ("08936000010010", ["89360000"], True),
    ("00893600001003", ["893600001"], False),  # the prefix must start the company part
])
def test_gtin_covered(gtin, prefixes, covered):
    assert gtin_covered(gtin, prefixes) is covered
