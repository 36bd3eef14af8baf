"""The shopper's report form (pre-filled code, up to three photos, values kept on every error), the
page that gives the case number and follow-up code, and the page where a shopper follows a report."""

from __future__ import annotations

from flask import redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError

from registry.errors import Invalid, NotFound
from registry.reports import CASE_NUMBER, ReportInput, ReportInvalid, TooManyReports

from app.api.report_routes import REPORT_BODY_LIMIT, photo_status
from app.extensions import config_limit, over_limit, rate_limit
from app.pages import bp
from app.pages.device import device_id
from app.pages.texts import FIELD_ERROR, FLOOD_MESSAGE, FOLLOWUP_MISSING, FOLLOWUP_UNKNOWN, PHOTO_ERROR, SESSION_EXPIRED
from app.services import db_session, report_service, scan_context
from app.text_input import NUL_CHARACTER

_FILED = "report_filed"  # the session's last filed report: its case number and follow-up code
FIELDS = ("code", "where_kind", "where_text", "seller", "link", "price", "bought_on", "contact", "description")


def _form(values: dict, *, errors: dict | None = None, notice: str | None = None, status: int = 200):
    messages = {field: FIELD_ERROR.get(code, FIELD_ERROR["FIELD_REQUIRED"]) for field, code in (errors or {}).items()}
    if "where_kind" in messages:  # a group of choices, never a field to fill in
        messages["where_kind"] = FIELD_ERROR["BAD_CHOICE"]
    return render_template("pages/report.html", values=values, errors=messages, notice=notice,
                           device_id=device_id()), status


@bp.route("/report", methods=["GET"])
def report_form():
    return _form({"code": (request.args.get("code") or "").strip()[:4096]})


@bp.url_value_preprocessor
def _report_body_limit(endpoint, _values) -> None:
    """Runs before CSRFProtect reads the form: allow three full-size photos on the report form, so an
    oversized photo gets a message beside the kept values instead of a bare 413 page."""
    if endpoint == "pages.report_submit":
        request.max_content_length = REPORT_BODY_LIMIT


@bp.route("/report", methods=["POST"])
def report_submit():
    values = {name: (request.form.get(name) or "").strip() for name in FIELDS}
    refused = over_limit(config_limit("REPORT_RATE_LIMIT"), scope="report")  # shared with POST /api/v1/reports
    if refused is not None:  # the form again, with what was typed: not a bare error page
        page, status = _form(values, notice=FLOOD_MESSAGE, status=429)
        return page, status, {"Retry-After": str(refused.retry_after)}
    photos = [f.read() for f in request.files.getlist("photo") if f and f.filename]  # no file chosen: no photo
    client = scan_context("report", request.form, device=device_id()).client
    try:
        filed = report_service().create(ReportInput.from_mapping(values, photos), client_hash=client)
    except TooManyReports as exc:
        page, status = _form(values, notice=FLOOD_MESSAGE, status=429)
        return page, status, {"Retry-After": str(exc.retry_after)}
    except ReportInvalid as exc:
        notice = PHOTO_ERROR if photos else None
        return _form(values, errors=exc.errors, notice=notice, status=photo_status(exc) or 422)
    db_session().commit()
    # The follow-up code is shown by the next page from this browser's session, not from its address:
    # an address ends up in histories, proxies' and servers' logs.
    session[_FILED] = {"case": filed.report.case_number, "code": filed.followup_code}
    return redirect(url_for("pages.report_sent", case=filed.report.case_number), code=303)


@bp.errorhandler(CSRFError)
def _session_expired(exc: CSRFError):
    """The report form sent without its session's token (the session expired, the browser was
    restarted): the form again with what was typed, a new token and a notice; nothing is saved.
    Other pages' forms get the error page (app.errors), in the page's language."""
    if request.endpoint != "pages.report_submit":
        from app.errors import handle_http_error

        return handle_http_error(exc)
    values = {name: (request.form.get(name) or "").strip() for name in FIELDS}
    return _form(values, notice=SESSION_EXPIRED, status=400)


@bp.errorhandler(Invalid)
def _refused_text(exc: Invalid):
    """A report form field holding a NUL (``app.text_input``, refused as the form is read): the
    form again with the rest of what was typed and the field marked; nothing is saved. Elsewhere
    on the pages, the error page (app.errors)."""
    if request.endpoint != "pages.report_submit" or exc.code != NUL_CHARACTER:
        from app.errors import handle_registry_error

        return handle_registry_error(exc)
    try:
        form = request.form
    except Invalid:  # the address's NUL came first, and a field holds one too: the form was parsed
        form = request.form  # and kept before it was refused, so it reads as sent now
    values = {name: (form.get(name) or "").replace("\x00", "").strip() for name in FIELDS}
    return _form(values, errors={exc.field: exc.code} if exc.field in FIELDS else None,
                 notice=None if exc.field in FIELDS else FIELD_ERROR[NUL_CHARACTER], status=422)


@bp.route("/report/sent")
def report_sent():
    case = request.args.get("case") or ""
    if not CASE_NUMBER.fullmatch(case):  # only what report_submit sends here
        return redirect(url_for("pages.report_form"), code=303)
    filed = session.get(_FILED) or {}
    code = filed.get("code") if filed.get("case") == case else None  # the browser that filed it, until its next
    return render_template("pages/report_sent.html", case=case, code=code)


@bp.route("/report/status", methods=["GET"])
def report_status_form():
    return render_template("pages/report_status.html", values={"case": (request.args.get("case") or "")[:32]},
                           status=None, error=None)


@bp.route("/report/status", methods=["POST"])
@rate_limit(config_limit("FOLLOWUP_RATE_LIMIT"), methods=["POST"], scope="report-followup")  # as the API's
def report_status():
    """Where a report stands, from its case number and follow-up code (a form posted, so that the
    code stays out of addresses and logs). Any mismatch gets one message, which says nothing of
    whether the case number exists."""
    values = {"case": (request.form.get("case") or "").strip()[:32], "code": (request.form.get("code") or "")[:64]}
    if not values["case"] or not values["code"].strip():  # not a mismatch: nothing to look up
        return render_template("pages/report_status.html", values=values, status=None, error=FOLLOWUP_MISSING), 422
    try:
        status = report_service().followup(values["case"], values["code"])
    except NotFound:
        db_session().rollback()
        return render_template("pages/report_status.html", values=values, status=None, error=FOLLOWUP_UNKNOWN), 404
    db_session().rollback()
    return render_template("pages/report_status.html", values=values, status=status, error=None)
