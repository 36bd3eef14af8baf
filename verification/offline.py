"""Offline verification from a signed trust list: signatures, key status, prefixes, expiry, and
the recalls made before the list was issued.

What it cannot know is said in the result: recalls and key revocations since the list was issued,
and clones. A key the list does not name may be newer than the list (a new producer, a key
rotation): a code it signed is ``unverifiable`` offline, never ``counterfeit``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keys.encoding import MalformedEncoding, b64url_decode, kid_for, parse_rfc3339
from keys.errors import CertificateInvalid, VerificationError
from keys.signing import public_key_from_raw, verify
from verification.verdicts import BatchInfo, KeyInfo, SerialInfo

__all__ = ["TrustListLookup", "TrustListError"]


class TrustListError(CertificateInvalid):
    """The trust list is malformed or its signature does not verify."""

    code = "TRUST_LIST_INVALID"


class TrustListLookup:
    """``verification.verdicts.Lookup`` over a trust list: knows keys and which batches were recalled,
    not the batches themselves."""

    def __init__(self, keys: dict[str, KeyInfo], *, issued_at: datetime, authority_kid: str,
                 recalls: dict[tuple[str, str], str] | None = None) -> None:
        self._keys = keys
        self._recalls = recalls or {}
        self.issued_at = issued_at
        self.authority_kid = authority_kid

    @classmethod
    def from_document(cls, doc: Any, *, pinned_authority_key: str | None = None) -> "TrustListLookup":
        """Check the list's signature (against a pinned authority key when given) and load its keys."""
        try:
            if not isinstance(doc, dict) or doc.get("t") != "trust-list":
                raise TrustListError("not a trust list")
            # a pinned key, even an empty one, is the only key trusted: never the document's own
            authority_b64 = pinned_authority_key if pinned_authority_key is not None else doc["authority"]["public_key"]
            authority_raw = b64url_decode(authority_b64)
            if kid_for(authority_raw) != doc["authority"]["kid"] and pinned_authority_key is None:
                raise TrustListError("the trust list's authority kid does not match its key")
            verify(doc, public_key_from_raw(authority_raw))
            keys: dict[str, KeyInfo] = {}
            for producer in doc["producers"]:
                for k in producer["keys"]:
                    raw = b64url_decode(k["public_key"])
                    if kid_for(raw) != k["kid"]:
                        raise TrustListError(f"key {k['kid']} does not match its public key")
                    keys[k["kid"]] = KeyInfo(
                        kid=k["kid"], public_key=public_key_from_raw(raw), producer_id=producer["id"],
                        gs1_prefixes=tuple(k.get("gs1_prefixes") or producer["gs1_prefixes"]), status=k["status"],
                        compromised_at=parse_rfc3339(k["compromised_at"]) if k.get("compromised_at") else None)
            recalls: dict[tuple[str, str], str] = {}
            for recall in doc.get("recalls", []):  # lists issued before recalls were carried have none
                gtin, lot, reason = recall["gtin"], recall["lot"], recall["reason"]
                if not all(isinstance(value, str) for value in (gtin, lot, reason)):
                    raise TrustListError("a recall in the trust list is not {gtin, lot, reason}")
                recalls[(gtin, lot)] = reason
            return cls(keys, issued_at=parse_rfc3339(doc["issued_at"]), authority_kid=doc["authority"]["kid"],
                       recalls=recalls)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as exc:  # MalformedEncoding too
            raise TrustListError(f"the trust list is malformed: {type(exc).__name__}: {exc}") from None
        except VerificationError as exc:
            if isinstance(exc, TrustListError):
                raise
            raise TrustListError(f"the trust list's signature does not verify: {exc}") from None

    def key(self, kid: str) -> KeyInfo | None:
        return self._keys.get(kid)

    def batch(self, gtin: str, lot: str) -> BatchInfo | None:
        return None

    def recall_reason(self, gtin: str, lot: str) -> str | None:
        return self._recalls.get((gtin, lot))

    def product(self, gtin: str) -> dict[str, Any] | None:
        return None

    def serial(self, batch: BatchInfo, serial: str) -> SerialInfo | None:
        return None
