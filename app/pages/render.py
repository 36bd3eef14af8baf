"""Rendering helpers shared by the page views."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template

from app.pages.device import device_id
from app.request_ids import error_reference
from verification.verdicts import VERDICT_ORDER, Verdict, most_serious

__all__ = ["render_error", "render_scan", "verdict_page", "decisive_code", "other_codes"]


def render_error(status: int, message: str) -> str:
    """The error page; a 5xx's gives the reference the log has it under (``app.request_ids``)."""
    from app.pages.texts import error_title

    return render_template("pages/error.html", status=status, title=error_title(status), message=message,
                           reference=error_reference(status) if status >= 500 else None)


def render_scan(*, error_code: str | None = None) -> str:
    from app.pages.texts import IMAGE_ERROR

    return render_template("pages/scan.html", error=IMAGE_ERROR.get(error_code or ""), device_id=device_id())


def verdict_page(result: dict[str, Any], code_text: str, *, shown: str | None = None, lang_next: str | None = None,
                 typed: bool = False, others: list[dict[str, Any]] | None = None):
    """``shown``: the token its language links carry (``app.pages.redisplay``); ``lang_next``: the
    page they lead back to, when not this request's own; ``typed``: the text was typed by hand;
    ``others``: a photo's other codes (``other_codes``)."""
    response = make_response(render_template("pages/verdict.html", result=result, code_text=code_text,
                                             shown_token=shown, lang_next=lang_next, typed=typed,
                                             others=others or []))
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    # Never from a cache without asking (the scan history changes with every check), and none but the
    # shopper's browser keeps it; but it may keep it, for Back: with no-store, Back to a photo's
    # verdict (a POST) had shown the browser's "Confirm form resubmission" page, and Back to a
    # code's page had checked it again.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def decisive_code(image_result: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """From a ``/verify/image`` answer (or the scan page's codes, which its script verified one by
    one), the code whose verdict is the most serious, and its text; an answer with no code becomes
    an ``unreadable`` verification with the answer's reasons."""
    codes = _codes(image_result)
    if codes:
        worst = most_serious([Verdict(c["verdict"]) for c in codes])
        code = next(c for c in codes if c["verdict"] == worst)
        return code, str(code.get("text") or "")
    return {"verdict": image_result.get("verdict") or "unreadable", "reasons": image_result.get("reasons") or [],
            "code": None, "product": None, "producer": None, "batch": None, "scans": None}, ""


def other_codes(image_result: dict[str, Any], decisive: dict[str, Any]) -> list[dict[str, Any]]:
    """The codes of the answer besides the decisive one, each text once, the most serious first: a
    recall beside a suspect code is news to the shopper too."""
    seen = {str(decisive.get("text") or "")}
    others = []
    for code in sorted(_codes(image_result), key=lambda c: VERDICT_ORDER.index(Verdict(c["verdict"]))):
        text = str(code.get("text") or "")
        if code is not decisive and text not in seen:
            seen.add(text)
            others.append(code)
    return others


def _codes(image_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's codes that carry a known verdict (the fragment's come from the browser)."""
    verdicts = {v.value for v in Verdict}
    return [c for c in image_result.get("codes") or [] if isinstance(c, dict) and c.get("verdict") in verdicts]
