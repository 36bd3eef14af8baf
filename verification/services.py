"""Verifying a photo: every code found in it, each with its verdict, and the most serious overall."""

from __future__ import annotations

from dataclasses import dataclass

from verification.decoding import DecodedSymbol, decode_image
from verification.verdicts import (
    Reason,
    ReasonCode,
    ScanContext,
    Verdict,
    Verification,
    Verifier,
    most_serious,
)

__all__ = ["ImageVerification", "verify_image"]


@dataclass(frozen=True)
class ImageVerification:
    verdict: Verdict
    codes: tuple[tuple[DecodedSymbol, Verification], ...]
    reasons: tuple[Reason, ...] = ()


def verify_image(verifier: Verifier, data: bytes, *, context: ScanContext = ScanContext(),
                 max_pixels: int = 50_000_000) -> ImageVerification:
    """Decode every code in ``data`` and verify each; raises ``ImageRejected`` for bad images."""
    symbols = decode_image(data, max_pixels=max_pixels)
    if not symbols:
        return ImageVerification(verdict=Verdict.UNREADABLE, codes=(),
                                 reasons=(Reason(ReasonCode.NO_CODE_FOUND, "no barcode or QR code was found"),))
    results = []
    for symbol in symbols:
        text = symbol.text
        if symbol.gs1 and symbol.symbology_identifier and not text.startswith("]"):
            text = symbol.symbology_identifier + text  # keep the GS1 marker for the parser
        results.append((symbol, verifier.verify_text(text, context=context)))
    return ImageVerification(verdict=most_serious([v.verdict for _, v in results]), codes=tuple(results))
