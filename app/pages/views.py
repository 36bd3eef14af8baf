"""Thin page views: parse the request, call one service, render."""

from __future__ import annotations

from flask import abort, current_app, jsonify, make_response, redirect, render_template, request, url_for

from verification.decoding import ImageRejected
from verification.parsing import typed_code
from verification.services import verify_image
from verification.verdicts import Verdict

from app.errors import image_status
from app.extensions import config_limit, rate_limit
from app.i18n import LANG_COOKIE, LANGUAGES
from app.pages import bp, redisplay
from app.pages.device import device_id
from app.pages.render import decisive_code, other_codes, render_scan, verdict_page
from app.presenters import image_verification_json, verification_json
from app.security import local_target, request_target
from app.services import scan_context, verification_reader, verifier
from app.text_input import judges_its_own_address


@bp.route("/")
def scan():
    return render_scan()


@bp.route("/lang/<lang>")
@judges_its_own_address  # a next it cannot use (a NUL, a control character) leads home
def switch_language(lang: str):
    target = local_target(request.args.get("next")) or url_for("pages.scan")
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)
        # the same verdict in another language, when the page's own link says so: not a new check
        redisplay.mark(response, target, request.args.get("shown"))
    return response


def _digital_link_text() -> str:
    """The URI as printed: keep the raw percent-encoding (a lot may hold an encoded '/')."""
    return request.host_url.rstrip("/") + request_target()


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
@rate_limit(config_limit("VERIFY_RATE_LIMIT"), scope="verify")  # with the API's
def digital_link(rest: str):
    text = _digital_link_text()
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/linkset+json"])
    verification_reader()
    # not a new check: its language switched, or a resolver reads the links (not a shopper)
    checker = verifier(recording=not redisplay.shown_again() and best != "application/linkset+json")
    result = checker.verify_text(text, context=scan_context("link", request.args, device=device_id()))
    body = verification_json(result)
    if best == "application/linkset+json":
        response = make_response(jsonify(_linkset(body, text)))
        response.mimetype = "application/linkset+json"
    elif best == "application/json":
        response = jsonify(body)
    else:
        return verdict_page(body, text, shown=redisplay.link_token())
    # data, as the API answers it: never cached (the counts change with every check), one address
    # with three forms (Vary), readable by a page elsewhere (no cookie gives it more)
    response.headers.update({"Vary": "Accept", "Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"})
    return response


@bp.route("/check", methods=["GET"])
@rate_limit(config_limit("VERIFY_RATE_LIMIT"), scope="verify")  # with the API's
def check_text():
    """A code typed by hand (works without JavaScript)."""
    text = typed_code((request.args.get("code") or "")[:4096])
    if not text:
        return redirect(url_for("pages.scan"))
    verification_reader()
    checker = verifier(recording=not redisplay.shown_again())
    result = checker.verify_text(text, context=scan_context("web", request.args, device=device_id()))
    return verdict_page(verification_json(result), text, shown=redisplay.link_token(), typed=True)


@bp.route("/check", methods=["POST"])
@rate_limit(config_limit("VERIFY_RATE_LIMIT"), scope="verify-image")  # with the API's
def check_photo():
    """The photo form of the scan page (works without JavaScript): the server renders the verdict."""
    upload = request.files.get("image")
    data = upload.read() if upload is not None else b""
    if not data:
        return render_scan(error_code="IMAGE_MISSING"), 400
    verification_reader()
    try:
        result = verify_image(verifier(), data, context=scan_context("image", request.form, device=device_id()),
                              max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageRejected as exc:
        return render_scan(error_code=exc.code.value), image_status(exc)
    answer = image_verification_json(result)
    body, text = decisive_code(answer)
    # a POST cannot be loaded again: the language links lead to this code's /check?code= page
    page = url_for("pages.check_text", code=text) if text else url_for("pages.scan")
    return verdict_page(body, text, shown=redisplay.link_token(page) if text else None, lang_next=page,
                        others=other_codes(answer, body))


@bp.route("/fragment/verdict", methods=["POST"])
def verdict_fragment():
    """The verdict view alone, for the scan page's script: it posts the verification JSON it got
    from the API (``{"result": ..., "text": ...}``, CSRF header) so the markup lives in one template
    and the scan is recorded once. Only this browser's own data is rendered back to it."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), dict):
        abort(400)
    result, others = payload["result"], []
    if "codes" in result:  # a photo's answer, or the codes the phone read: the decisive one, then the others
        answer = result
        result, text = decisive_code(answer)
        others = other_codes(answer, result)
    else:
        text = str(payload.get("text") or "")[:4096]
    if result.get("verdict") not in {v.value for v in Verdict}:
        abort(400)
    response = make_response(render_template("pages/_verdict.html", result=result, code_text=text, others=others))
    response.headers["Cache-Control"] = "no-store"
    if text:  # where the page's language links now lead: this code's /check page, the same check again
        page = url_for("pages.check_text", code=text)
        response.headers["X-Language-Next"] = page
        response.headers["X-Language-Shown"] = redisplay.link_token(page)
    return response
