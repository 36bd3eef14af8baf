"""Shoppers' reports worked as cases: the list by status, a case with its report and photos, notes
with attachments, assignment, status changes, and publishing a confirmed case as a violator.

Views are thin: they call ``registry.cases.CaseService`` (and ``PublicationService`` to publish)
with the session's actor; domain errors become the portal's error pages (``app.portal.errors``),
invalid form input comes back on the case page with the message beside the form.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Response, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from registry.cases import OPEN_STATUSES, STATUSES, TRANSITIONS, AttachmentRejected
from registry.errors import Conflict, Invalid
from registry.services import Role

from app.i18n import N_
from app.portal import bp
from app.portal.auth import current_actor, login_required
from app.portal.errors import ERROR_TEXT
from app.portal.paging import page_number
from app.services import case_service, db_session, inspection_service, publication_service

__all__ = ["STATUS_LABEL"]

WORKERS = (Role.INSPECTOR, Role.AUTHORITY)
PAGE = 50

STATUS_LABEL = {
    "new": N_("New"),
    "assigned": N_("Assigned"),
    "investigating": N_("Investigating"),
    "confirmed": N_("Confirmed counterfeit"),
    "dismissed": N_("Dismissed"),
}
#: The button that moves a case to each status.
MOVE_LABEL = {
    "assigned": N_("Mark assigned"),
    "investigating": N_("Start investigating"),
    "confirmed": N_("Confirm counterfeit"),
    "dismissed": N_("Dismiss"),
}
FORM_ERROR = {
    "FIELD_REQUIRED": N_("Please fill this in."),
    "TOO_LONG": N_("This is too long."),
    "ATTACHMENT_TOO_LARGE": N_("The attachment is too large (at most 10 MiB)."),
    "ATTACHMENT_TYPE": N_("Attach a photo, a PDF or a text file."),
    "ATTACHMENT_EMPTY": N_("The attachment is empty."),
    "BAD_DATE": N_("Enter a valid date (year-month-day)."),
    "UNKNOWN_ASSIGNEE": N_("No active inspector or authority account has this username."),
    "BAD_TRANSITION": N_("This case was moved on meanwhile, perhaps by someone else: this is where it stands now. "
                         "Decide again if you still need to."),
}


@bp.route("/cases")
@login_required(*WORKERS)
def cases():
    """Cases newest first, one status at a time (all open ones by default), or the ones assigned to me."""
    actor = current_actor()
    service = case_service()
    status = request.args.get("status") or None
    if status not in (None, "open", *STATUSES):
        status = None
    mine = request.args.get("mine") == "1"
    page = page_number(request.args.get("page"))
    query = (request.args.get("q") or "").strip()[:100]
    filters: dict[str, Any] = {"assigned_to": actor.name} if mine else {}
    if query:  # a case number, a seller, a shop's place, a GTIN...: in every status
        found = service.list(actor, query=query, limit=PAGE, offset=(page - 1) * PAGE, **filters)
        if len(found) == 1 and found[0].case_number.lower() == query.lower() and page == 1:
            return redirect(url_for("portal.case", case_number=found[0].case_number), code=303)
        status = "all"
    elif status == "open" or status is None:
        found = [c for s in OPEN_STATUSES
                 for c in service.list(actor, status=s, limit=PAGE * page, **filters)]
        found.sort(key=lambda c: (c.created_at, c.id), reverse=True)
        found = found[(page - 1) * PAGE: page * PAGE]
    else:
        found = service.list(actor, status=status, limit=PAGE, offset=(page - 1) * PAGE, **filters)
    counts = service.counts(actor)
    return render_template("portal/inspector/cases.html", cases=[service.view(actor, c) for c in found],
                           counts=counts, status=status or "open", mine=mine, page=page, labels=STATUS_LABEL,
                           has_more=len(found) == PAGE, query=query)


def _case_page(case_number: str, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
               status: int = 200):
    actor = current_actor()
    service = case_service()
    case = service.get(actor, case_number)
    view = service.view(actor, case)
    notes = [service.note_view(n) for n in service.notes(actor, case_number)]
    published = service.published(case)
    moves = sorted(TRANSITIONS.get(case.status, ()), key=STATUSES.index)
    if not case.assigned_to:
        moves = [m for m in moves if m != "assigned"]
    if published:  # on the public list: not reopened or dismissed until withdrawn (CASE_PUBLISHED)
        moves = []
    unit = (inspection_service().unit_state(actor, case.gtin, case.lot, case.serial)
            if case.gtin and case.lot and case.serial else None)
    return render_template(
        "portal/inspector/case.html", case=view, notes=notes, moves=moves, move_labels=MOVE_LABEL,
        labels=STATUS_LABEL, published=published, unit=unit,
        may_publish=actor.role == Role.AUTHORITY, errors=errors or {}, values=values or {},
        me=actor.name), status


@bp.route("/cases/<case_number>")
@login_required(*WORKERS)
def case(case_number: str):
    return _case_page(case_number)


def _invalid(case_number: str, exc: Invalid | Conflict, form: str, *, field: str | None = None,
             status: int | None = None):
    """The case page again with the form's values and each problem beside its field (all of a
    form's, ``InvalidFields``: the publish form's tax code had been refused with no word shown)."""
    db_session().rollback()
    problems = getattr(exc, "problems", None) or [exc]
    errors = {f"{form}.{field or p.field or 'text'}": FORM_ERROR.get(p.code) or ERROR_TEXT.get(p.code) or p.message
              for p in reversed(problems)}  # the first problem of a field wins
    return _case_page(case_number, errors=errors, values=dict(request.form),
                      status=status or getattr(exc, "status", 422))


def _back(case_number: str, message: str):
    db_session().commit()
    flash(message, "ok")
    return redirect(url_for("portal.case", case_number=case_number), code=303)


@bp.route("/cases/<case_number>/notes", methods=["POST"])
@login_required(*WORKERS)
def case_note(case_number: str):
    upload = request.files.get("attachment")
    data = upload.read() if upload is not None and upload.filename else None
    try:
        case_service().add_note(current_actor(), case_number, text=request.form.get("text", ""), attachment=data,
                                attachment_name=upload.filename if data is not None else None)
    except (Invalid, AttachmentRejected) as exc:
        return _invalid(case_number, exc, "note")
    return _back(case_number, _("Note added."))


@bp.route("/cases/<case_number>/assign", methods=["POST"])
@login_required(*WORKERS)
def case_assign(case_number: str):
    actor = current_actor()
    typed = (request.form.get("assignee") or "").strip().removeprefix("user:")
    assignee = f"user:{typed}" if typed else actor.name  # the form names a portal account
    try:
        case_service().assign(actor, case_number, assignee=assignee, text=request.form.get("text", ""))
    except Invalid as exc:
        return _invalid(case_number, exc, "assign")
    return _back(case_number, _("Case assigned to %(who)s.", who=assignee.removeprefix("user:")))


@bp.route("/cases/<case_number>/transition", methods=["POST"])
@login_required(*WORKERS)
def case_transition(case_number: str):
    to = request.form.get("to", "")
    try:
        case_service().transition(current_actor(), case_number, to=to, text=request.form.get("text", ""),
                                  expected=request.form.get("from") or None)
    except Invalid as exc:
        return _invalid(case_number, exc, "move")
    except Conflict as exc:  # moved on meanwhile: the page as it stands now, with the text typed
        return _invalid(case_number, exc, "move", field="to", status=409)
    return _back(case_number, _("Case is now: %(status)s.", status=_(STATUS_LABEL.get(to, to))))


@bp.route("/cases/<case_number>/publish", methods=["POST"])
@login_required(Role.AUTHORITY)
def case_publish(case_number: str):
    """Publish a confirmed case as a violator (the authority): signed and appended to the log."""
    actor = current_actor()
    fields = {k: (request.form.get(k) or "").strip() or None
              for k in ("name", "tax_code", "product", "place", "decision_ref", "decided_on")}
    publications = publication_service(signing=True)
    try:
        case_service().publish(actor, case_number, lambda **f: publications.publish(actor, **f), **fields)
    except Invalid as exc:
        return _invalid(case_number, exc, "publish")
    return _back(case_number, _("Published as a confirmed violator."))


@bp.route("/cases/<case_number>/photos/<sha256>")
@login_required(*WORKERS, Role.PRODUCER)  # a producer: of reports about its own products (CaseService.photo)
def case_photo(case_number: str, sha256: str):
    data, media_type = case_service().photo(current_actor(), case_number, sha256)
    response = Response(data, mimetype=media_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/cases/<case_number>/notes/<int:note_id>/attachment")
@login_required(*WORKERS)
def case_attachment(case_number: str, note_id: int):
    data, media_type, name = case_service().attachment(current_actor(), case_number, note_id)
    # Flask writes the name as RFC 6266 does: an ASCII fallback, and the name itself (filename*):
    # "Biên bản kiểm tra.txt" had been saved as "Bi_n b_n ki_m tra.txt"
    response = send_file(io.BytesIO(data), mimetype=media_type, as_attachment=True, download_name=name,
                         etag=False, last_modified=None, conditional=False)
    response.headers["Cache-Control"] = "private"
    return response
