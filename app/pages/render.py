"""Rendering helpers shared by the page views."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template

from app.pages.device import device_id
from app.request_ids import error_reference

__all__ = ["render_error", "render_scan", "verdict_page", "decisive_code"]


def render_error(status: int, message: str) -> str:
    """The error page; a 5xx's gives the reference the log has it under (``app.request_ids``)."""
    return render_template("pages/error.html", status=status, message=message,
                           reference=error_reference(status) if status >= 500 else None)


def render_scan(*, error_code: str | None = None) -> str:
    from app.pages.texts import IMAGE_ERROR

    return render_template("pages/scan.html", error=IMAGE_ERROR.get(error_code or ""), device_id=device_id())


def verdict_page(result: dict[str, Any], code_text: str, *, shown: str | None = None, lang_next: str | None = None,
                 typed: bool = False):
    """``shown``: the token its language links carry (``app.pages.redisplay``); ``lang_next``: the
    page they lead back to, when not this request's own; ``typed``: the text was typed by hand."""
    response = make_response(render_template("pages/verdict.html", result=result, code_text=code_text,
                                             shown_token=shown, lang_next=lang_next, typed=typed))
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-store"  # scan history changes with every check
    return response


def decisive_code(image_result: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """From a ``/verify/image`` answer, the code that decides its overall verdict and its text; an
    answer with no code becomes an ``unreadable`` verification with the answer's reasons."""
    codes = image_result.get("codes") or []
    for code in codes:
        if isinstance(code, dict) and code.get("verdict") == image_result.get("verdict"):
            return code, str(code.get("text") or "")
    if codes and isinstance(codes[0], dict):
        return codes[0], str(codes[0].get("text") or "")
    return {"verdict": image_result.get("verdict") or "unreadable", "reasons": image_result.get("reasons") or [],
            "code": None, "product": None, "producer": None, "batch": None, "scans": None}, ""
