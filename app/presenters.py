"""Turn domain results into the API's JSON shapes (DESIGN.md, "Shapes that clients rely on")."""

from __future__ import annotations

from typing import Any

from keys.encoding import rfc3339
from verification.services import ImageVerification
from verification.verdicts import Reason, ReasonCode, Verification

from app.i18n import both
from app.messages import KEY_NOT_IN_TRUST_LIST_TEXT, REASON_TEXT

__all__ = ["verification_json", "image_verification_json", "reason_json"]


def reason_json(reason: Reason, *, text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": reason.code.value, "message": both(text or REASON_TEXT[reason.code.value])}
    if reason.detail:
        body["detail"] = reason.detail
    return body


def verification_json(v: Verification) -> dict[str, Any]:
    code = v.code
    batch = v.batch
    # Offline, a signed code is UNSIGNED_CODE only when its key is not in the trust list: say that.
    key_not_listed = v.offline and code is not None and code.signature is not None
    body: dict[str, Any] = {
        "verdict": v.verdict.value,
        "reasons": [reason_json(r, text=KEY_NOT_IN_TRUST_LIST_TEXT if key_not_listed and r.code == "UNSIGNED_CODE"
                                else None) for r in v.reasons if not r.is_note],
        "notes": [reason_json(r) for r in v.reasons if r.is_note],
        "code": None if code is None else {
            "gtin": code.gtin, "lot": code.lot, "serial": code.serial,
            "expiry": code.expiry.isoformat() if code.expiry else None,
            "kind": code.kind, "signed": code.signature is not None,
        },
        "product": v.product,
        "producer": batch.producer if batch else None,
        "batch": None if batch is None else {
            # as the verdict judged it (registry.rules.shown_status), at the verifier's date: an
            # active batch past its registered expiry carries EXPIRED, and nothing else does
            "gtin": batch.gtin, "lot": batch.lot,
            "status": "expired" if batch.status == "active" and batch.expiry_date is not None and any(
                r.code == ReasonCode.EXPIRED for r in v.reasons) else batch.status,
            "production_date": batch.record.get("production_date"),
            "expiry_date": batch.record.get("expiry_date"),
            "facility": batch.record.get("facility"),
            "certifications": batch.record.get("certifications", []),
            "quantity": batch.record.get("quantity"),
            "recall_reason": batch.recall_reason,
            "recalled_at": rfc3339(batch.recalled_at) if batch.recalled_at else None,
            # a record corrected by its producer (Registry.correct_batch): which version, and when
            "version": batch.record.get("version", 1),
            "corrected_at": batch.record.get("issued_at") if "supersedes" in batch.record else None,
        },
        "scans": None if v.scans is None else {
            "count": v.scans.count,
            "first_seen": rfc3339(v.scans.first_seen) if v.scans.first_seen else None,
            # how many different clients (salted hashes) checked this unit; batch codes keep no such
            # count. A shopper reloading the page, or switching its language, stays one client.
            "clients": v.scans.distinct_clients if code is not None and code.serial is not None else None,
        },
        "offline": v.offline,
    }
    if v.hint:
        body["hint"] = v.hint
    return body


def image_verification_json(result: ImageVerification) -> dict[str, Any]:
    return {
        "verdict": result.verdict.value,
        "reasons": [reason_json(r) for r in result.reasons],
        "codes": [
            {"text": symbol.text, "symbology": symbol.symbology,
             "symbology_identifier": symbol.symbology_identifier, **verification_json(v)}
            for symbol, v in result.codes
        ],
    }
