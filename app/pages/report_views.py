"""The shopper's report form: pre-filled code, up to three photos, values kept on every error."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from registry.reports import CASE_NUMBER, ReportInput, ReportInvalid, TooManyReports

from app.api.report_routes import REPORT_BODY_LIMIT, photo_status
from app.extensions import config_limit, rate_limit
from app.pages import bp
from app.pages.texts import FIELD_ERROR, FLOOD_MESSAGE, PHOTO_ERROR, SESSION_EXPIRED
from app.services import db_session, report_service, scan_context

FIELDS = ("code", "where_kind", "where_text", "seller", "link", "price", "bought_on", "contact", "description")


def _form(values: dict, *, errors: dict | None = None, notice: str | None = None, status: int = 200):
    messages = {field: FIELD_ERROR.get(code, FIELD_ERROR["FIELD_REQUIRED"]) for field, code in (errors or {}).items()}
    if "where_kind" in messages:  # a group of choices, never a field to fill in
        messages["where_kind"] = FIELD_ERROR["BAD_CHOICE"]
    return render_template("pages/report.html", values=values, errors=messages, notice=notice), status


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
@rate_limit(config_limit("REPORT_RATE_LIMIT"), methods=["POST"], scope="report")  # shared with POST /api/v1/reports
def report_submit():
    values = {name: (request.form.get(name) or "").strip() for name in FIELDS}
    photos = [f.read() for f in request.files.getlist("photo") if f and f.filename]
    photos = [p for p in photos if p]
    client = scan_context("report", request.form).client
    try:
        report = report_service().create(ReportInput.from_mapping(values, photos), client_hash=client)
    except TooManyReports:
        return _form(values, notice=FLOOD_MESSAGE, status=429)
    except ReportInvalid as exc:
        notice = PHOTO_ERROR if photos else None
        return _form(values, errors=exc.errors, notice=notice, status=photo_status(exc) or 422)
    db_session().commit()
    return redirect(url_for("pages.report_sent", case=report.case_number), code=303)


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


@bp.route("/report/sent")
def report_sent():
    case = request.args.get("case") or ""
    if not CASE_NUMBER.fullmatch(case):  # only what report_submit sends here
        return redirect(url_for("pages.report_form"), code=303)
    return render_template("pages/report_sent.html", case=case)
