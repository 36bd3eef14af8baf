"""Checking an inspection's evidence file (``InspectionService.evidence``) away from the service:
what a court, a prosecutor or the inspected business is given, with the authority's public key.

The file is signed by the authority key, and so is the log checkpoint it carries (the registry as
it stood when the file was made). A file altered anywhere — a verdict, a time, a photo's hash —
fails; so does one signed by another key, whatever key it names."""

from __future__ import annotations

from collections import Counter
from typing import Any

from keys.errors import BadSignature
from keys.signing import public_key_from_raw, verify
from registry.inspections import EVIDENCE_TYPE

__all__ = ["EvidenceRefused", "check_evidence"]


class EvidenceRefused(Exception):
    code = "EVIDENCE_INVALID"


def check_evidence(document: Any, authority_public_raw: bytes) -> dict[str, Any]:
    """What the file attests, once its signature and its checkpoint's verify with the authority's
    key; ``EvidenceRefused`` saying why otherwise."""
    if not isinstance(document, dict) or document.get("t") != EVIDENCE_TYPE:
        raise EvidenceRefused(f"not an inspection evidence file (its t must be {EVIDENCE_TYPE!r})")
    authority = public_key_from_raw(authority_public_raw)
    try:
        verify(document, authority)
    except BadSignature as exc:
        raise EvidenceRefused(f"the file's signature does not verify with the authority's key: {exc}") from None
    checkpoint = document.get("checkpoint")
    if checkpoint is not None:
        try:
            verify(checkpoint, authority)
        except (BadSignature, AttributeError) as exc:
            raise EvidenceRefused(f"the log checkpoint in the file does not verify: {exc}") from None
    inspection = document.get("inspection") or {}
    checks = document.get("checks") or []
    late = [c.get("id") for c in checks if isinstance(c, dict) and c.get("received_after_close") is True]
    return {
        "inspection": inspection.get("id"), "inspector": inspection.get("inspector"),
        "place": inspection.get("place"), "started_at": inspection.get("started_at"),
        "closed_at": inspection.get("closed_at"), "issued_at": document.get("issued_at"),
        "checks": len(checks), "verdicts": dict(Counter(str(c.get("verdict")) for c in checks)),
        "photos": [c["photo_sha256"] for c in checks if c.get("photo_sha256")],
        # made offline before the close, received after it: a file issued at the close lacks them
        "received_after_close": late,
        "checkpoint": {"size": checkpoint.get("size"), "root": checkpoint.get("root"),
                       "timestamp": checkpoint.get("timestamp")} if isinstance(checkpoint, dict) else None,
    }

