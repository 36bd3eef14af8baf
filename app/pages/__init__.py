"""Server-rendered pages: scan page, verdict views, report form, public lists, language switch."""

from urllib.parse import urlsplit

from flask import Blueprint

bp = Blueprint("pages", __name__, template_folder="../templates")

from app.pages import public_views, report_views, views  # noqa: E402,F401


@bp.app_context_processor
def _page_globals():
    from flask_babel import get_locale

    from app.messages import OTHER_HOST_SITE, REASON_TEXT, VERDICT_ADVICE, VERDICT_TITLE
    from app.pages.texts import FOLLOWUP_STATUS_TEXT, WHERE_KIND_LABEL

    return {"current_lang": lambda: str(get_locale() or "vi"), "language_next": _language_next,
            "VERDICT_TITLE": VERDICT_TITLE, "VERDICT_ADVICE": VERDICT_ADVICE, "verdict_words": _verdict_words,
            "REASON_TEXT": REASON_TEXT, "OTHER_HOST_SITE": OTHER_HOST_SITE, "WHERE_KIND_LABEL": WHERE_KIND_LABEL,
            "FOLLOWUP_STATUS_TEXT": FOLLOWUP_STATUS_TEXT}


def _verdict_words(result: dict, typed: bool = False) -> tuple[str, str]:
    """A verdict view's heading and advice (catalogue ids): an ``unreadable`` verdict for a code
    that was read (a payment QR, a bad check digit) says so, rather than "no code read, come
    closer"; for a typed text, what to type instead."""
    from app.messages import (NOT_A_PRODUCT_CODE_ADVICE, NOT_A_PRODUCT_CODE_TITLE, TYPED_UNREADABLE_ADVICE,
                              UNSIGNED_CODE_ADVICE, VERDICT_ADVICE, VERDICT_TITLE)

    verdict = result.get("verdict")
    reasons = {r.get("code") for r in result.get("reasons") or [] if isinstance(r, dict)}
    if verdict == "unreadable" and (typed or (reasons and "NO_CODE_FOUND" not in reasons)):
        return NOT_A_PRODUCT_CODE_TITLE, TYPED_UNREADABLE_ADVICE if typed else NOT_A_PRODUCT_CODE_ADVICE
    if verdict == "unverifiable" and "UNSIGNED_CODE" in reasons:
        return VERDICT_TITLE[verdict], UNSIGNED_CODE_ADVICE
    return VERDICT_TITLE[verdict], VERDICT_ADVICE[verdict]


def _language_next() -> str:
    """Where a page's language links lead back to: the page itself, or for the answer to a form
    (a POST: a form with a mistake marked) the page the form was on, from the Referer — a link to
    the POST's own address had answered 405, and a page that cannot be loaded again is home."""
    from flask import request, url_for

    from app.security import local_target, request_target

    if request.method in ("GET", "HEAD"):
        return request_target()
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host:
        back = local_target(referrer.path + ("?" + referrer.query if referrer.query else ""))
        if back is not None:
            return back
    return url_for("portal.home") if request.path.startswith("/portal") else url_for("pages.scan")


@bp.app_template_filter("local_date")
def _local_date(value, format: str = "long") -> str:
    from app.i18n import local_date

    return local_date(value, format)


@bp.app_template_filter("number")
def _number(value) -> str:
    """A count as the page's language writes it (100.000 in Vietnamese, 100,000 in English)."""
    from flask_babel import format_decimal

    return "" if value is None else format_decimal(value)


@bp.app_template_filter("in_its_language")
def _in_its_language(value):
    """Typed text (a product's, a producer's, a place's name) marked with its language when that is
    not the page's: ``<span lang="vi">`` on an English page (``app.i18n.written_in``); escaped
    either way."""
    from flask_babel import get_locale
    from markupsafe import Markup

    from app.i18n import written_in

    text = "" if value is None else str(value)
    lang = written_in(text)
    if lang is None or lang == str(get_locale() or "vi"):
        return text
    return Markup('<span lang="{}">{}</span>').format(lang, text)


@bp.app_template_filter("country_name")
def _country_name(value) -> str:
    from app.i18n import country_name

    return country_name(value)
