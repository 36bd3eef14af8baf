"""Thin page views: parse the request, call one service, render."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import current_app, jsonify, make_response, redirect, render_template, request, url_for

from app.i18n import LANG_COOKIE, LANGUAGES
from app.pages import bp
from app.presenters import verification_json
from app.services import db_session, scan_context, verifier


@bp.route("/")
def scan():
    return render_template("pages/scan.html")


@bp.route("/lang/<lang>")
def switch_language(lang: str):
    target = request.args.get("next") or url_for("pages.scan")
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/"):
        target = url_for("pages.scan")  # never an open redirect
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)
    return response


def _digital_link_text() -> str:
    """The URI as printed: keep the raw percent-encoding (a lot may hold an encoded '/')."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    return request.host_url.rstrip("/") + raw


def _linkset(result: dict, text: str) -> dict:
    anchor = text.split("?", 1)[0]
    page = request.url
    links: dict = {"anchor": anchor,
                   "https://gs1.org/voc/defaultLink": [{"href": page, "title": "Verification",
                                                        "type": "text/html", "hreflang": ["vi", "en"]}],
                   "https://gs1.org/voc/pip": [{"href": page, "title": "Product information page",
                                                "type": "text/html"}]}
    if result.get("batch"):
        batch = result["batch"]
        links["https://gs1.org/voc/traceability"] = [{
            "href": url_for("api.get_batch", gtin=batch["gtin"], lot=batch["lot"], _external=True),
            "title": "Signed origin record", "type": "application/json"}]
    return {"linkset": [links]}


@bp.route("/01/<path:rest>")
def digital_link(rest: str):
    text = _digital_link_text()
    result = verifier().verify_text(text, context=scan_context("link", request.args))
    db_session().commit()
    body = verification_json(result)
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/linkset+json"])
    if best == "application/linkset+json":
        response = make_response(jsonify(_linkset(body, text)))
        response.mimetype = "application/linkset+json"
        return response
    if best == "application/json":
        return jsonify(body)
    response = make_response(render_template("pages/verdict.html", result=body, code_text=text))
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    return response
