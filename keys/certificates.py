"""Producer-key certificates: the authority's signature over a producer key and its GS1 prefixes;
and producer admissions: its signature over who a producer is (the name and country verification
shows shoppers, and the GS1 company prefixes the producer's keys may be certified for)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.encoding import MalformedEncoding, b64url_decode, b64url_encode, kid_for, rfc3339
from keys.errors import CertificateInvalid
from keys.signing import Signer, public_key_from_raw, sign, verify

__all__ = ["certify_producer_key", "verify_certificate", "gtin_covered", "admit_producer"]


def certify_producer_key(
    authority: Signer,
    *,
    producer_id: str,
    public_raw: bytes,
    gs1_prefixes: list[str],
    not_before: datetime,
    not_after: datetime,
) -> dict[str, Any]:
    cert = {
        "t": "producer-key",
        "producer_id": producer_id,
        "kid": kid_for(public_raw),
        "public_key": b64url_encode(public_raw),
        "gs1_prefixes": list(gs1_prefixes),
        "not_before": rfc3339(not_before),
        "not_after": rfc3339(not_after),
    }
    return sign(cert, authority)


def admit_producer(
    authority: Signer,
    *,
    producer_id: str,
    name: str,
    tax_code: str,
    country: str,
    gs1_prefixes: list[str],
    admitted_at: datetime,
    logged_late: datetime | None = None,
) -> dict[str, Any]:
    """The signed admission of a producer. ``logged_late``: when a producer admitted before
    admissions were logged was logged, from what its row held then."""
    entry = {
        "t": "producer",
        "id": producer_id,
        "name": name,
        "tax_code": tax_code,
        "country": country,
        "gs1_prefixes": list(gs1_prefixes),
        "at": rfc3339(admitted_at),
    }
    if logged_late is not None:
        entry["logged_late"] = rfc3339(logged_late)
    return sign(entry, authority)


def verify_certificate(cert: dict[str, Any], authority_key: Ed25519PublicKey) -> Ed25519PublicKey:
    """Check a producer-key certificate; return the certified public key."""
    if cert.get("t") != "producer-key":
        raise CertificateInvalid("not a producer-key certificate")
    try:
        raw = b64url_decode(cert["public_key"])
        key = public_key_from_raw(raw)
    except (KeyError, MalformedEncoding) as exc:
        raise CertificateInvalid(f"certificate public key unreadable: {exc}") from None
    if kid_for(raw) != cert.get("kid"):
        raise CertificateInvalid("certificate kid does not match its public key")
    verify(cert, authority_key)
    return key


def gtin_covered(gtin14: str, prefixes: list[str]) -> bool:
    """True when the GTIN's company part (without the indicator digit) starts with a prefix."""
    company = gtin14[1:]
    return any(company.startswith(p) for p in prefixes)
