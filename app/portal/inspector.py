"""The inspector portal: on-site inspections (checks by photo, camera or typed code, and checks made
offline in the browser), the signed evidence file, and the serials flagged as likely clones.

Views are thin: they call ``registry.inspections.InspectionService`` with the session's actor. The
check route answers JSON to the page's script (``Accept: application/json``) and works as a plain
form post without it (one check per photo, then back to the inspection page). The service worker
that keeps the page working offline is served here so that its scope is ``/portal/inspector/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import (Response, current_app, flash, jsonify, redirect, render_template, request,
                   send_file, url_for)
from flask_babel import format_decimal, gettext as _

from keys.encoding import MalformedEncoding, b64url_encode, parse_rfc3339
from registry.cases import AttachmentRejected
from registry.errors import Conflict, Invalid, NotFound
from registry.inspections import InspectionService
from registry.services import Role
from verification.decoding import ImageRejected
from verification.services import verify_image

from app.errors import ApiError, image_status
from app.i18n import N_
from app.messages import CHANNEL_LABEL
from app.pages.render import decisive_code
from app.portal import bp
from app.portal.auth import current_actor, login_required
from app.portal.cases import FORM_ERROR, STATUS_LABEL
from app.portal.errors import error_text
from app.portal.paging import page_number
from app.presenters import image_verification_json, verification_json
from app.services import db_session, inspection_service, recheck_offline, registry, scan_context, verifier

__all__ = ["check_display", "CHECK_ERROR"]

WORKERS = (Role.INSPECTOR, Role.AUTHORITY)
MAX_PHOTOS_PER_POST = 20
SERVICE_WORKER = Path(__file__).resolve().parents[2] / "static" / "js" / "sw.js"

#: What the page says when a check cannot be kept (domain and upload error codes).
CHECK_ERROR = {
    "INSPECTION_CLOSED": N_("This inspection is closed: open a new one to check more goods."),
    "PHOTO_TOO_LARGE": N_("This photo is too large (at most 10 MiB)."),
    "PAYLOAD_TOO_LARGE": N_("This photo is too large (at most 10 MiB)."),
    "NOT_AN_IMAGE": N_("This file is not a photo."),
    "UNSUPPORTED_MEDIA_TYPE": N_("This file is not a photo."),
    "IMAGE_UNDECODABLE": N_("This photo could not be opened."),
    "IMAGE_EMPTY": N_("This photo is an empty file."),
    "IMAGE_TOO_LARGE": N_("This photo has too many pixels."),
    "NOTHING_TO_CHECK": N_("Choose a photo or type a code."),
    "BAD_DATE": N_("This offline check is dated before the inspection began, or in the future: it was not kept."),
    "TOO_MANY_CHECKS": N_("This inspection is full: open another one."),
    "BAD_RESULT": N_("This offline check could not be read: it was not kept."),
    "FIELD_REQUIRED": N_("This offline check is incomplete: it was not kept."),
}


# -- presenting a check --------------------------------------------------------------------------
def check_display(view: dict[str, Any]) -> dict[str, Any]:
    """What the page shows for a check (``InspectionService.check_view``): its verdict, the decisive
    code's reasons and notes (codes; the page holds their texts), the code and the text read, and
    whether it reached the registry after the inspection's close (made offline before it: it is in
    the evidence, which says so).
    Used by the template and by the JSON answer, so the page's script renders the same thing."""
    result = view.get("result") or {}
    if view.get("offline"):
        result = result.get("server") or result.get("offline") or {}
    text = ""
    if "codes" in result:  # a photo: every code in it was checked; show the one that decides
        result, text = decisive_code(result)
    code = result.get("code") or {}
    return {
        "facts": _check_facts(result),
        "id": view.get("id"), "at": view.get("at"), "verdict": view.get("verdict"),
        "offline": bool(view.get("offline")), "offline_verdict": view.get("offline_verdict"),
        "reasons": [r.get("code") for r in result.get("reasons") or [] if isinstance(r, dict)],
        "notes": [r.get("code") for r in result.get("notes") or [] if isinstance(r, dict)],
        "code": {k: code.get(k) for k in ("gtin", "lot", "serial", "expiry")},
        "product": (result.get("product") or {}).get("name"),
        "text": text or result.get("text") or "",
        "photo": bool(view.get("photo_sha256")),
        "late": bool(view.get("received_after_close")),
    }


def _check_facts(result: dict[str, Any]) -> list[str]:
    """What the shopper's page says beside the verdict, in a line each, in the page's language:
    whose goods, until when, when and why they were recalled, how often this unit was checked
    (the list had shown the reasons' codes alone)."""
    from flask_babel import ngettext

    from app.i18n import local_date

    batch, scans = result.get("batch") or {}, result.get("scans") or {}
    facts = []
    producer = (result.get("producer") or {}).get("name")
    if producer:
        facts.append(_("Producer: %(name)s", name=producer))
    if batch.get("expiry_date"):
        facts.append(_("Expiry date: %(date)s", date=local_date(batch["expiry_date"])))
    if batch.get("recalled_at"):
        facts.append(_("Recalled on %(date)s.", date=local_date(batch["recalled_at"])))
    if batch.get("recall_reason"):
        facts.append(_("Reason given for the recall:") + f" “{batch['recall_reason']}”")
    count = scans.get("count")
    if isinstance(count, int) and count > 0:
        facts.append(ngettext("Checked once so far (this check included).",
                              "Checked %(count)s times so far (this check included).", count,
                              count=format_decimal(count)))
    return facts


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _problem(code: str, message: str, status: int):
    """An error for the page's script (JSON) or, without script, a flash and back to the page."""
    said = _(CHECK_ERROR[code]) if code in CHECK_ERROR else message
    if _wants_json():
        response = jsonify({"error": {"code": code, "message": said}})
        response.status_code = status
        return response
    flash(said, "error")
    return None


def _page_texts() -> dict[str, Any]:
    from app.messages import KEY_NOT_IN_TRUST_LIST_TEXT, REASON_TEXT, VERDICT_TITLE
    from flask_babel import gettext

    return {"verdict": {k: gettext(v) for k, v in VERDICT_TITLE.items()},
            "reason": {**{k: gettext(v) for k, v in REASON_TEXT.items()},
                       "KEY_NOT_IN_TRUST_LIST": gettext(KEY_NOT_IN_TRUST_LIST_TEXT)},
            "error": {k: gettext(v) for k, v in CHECK_ERROR.items()}}


# -- inspections -----------------------------------------------------------------------------------
@bp.route("/inspector/")
@login_required(*WORKERS)
def inspector_home():
    """The user's own inspections, open ones first (the authority's too: the list names no one; it
    reads another's by its address, and the API lists everyone's with their inspector), and the form
    to start one."""
    return _home_page(page_number(request.args.get("page")), errors={}, values={})


INSPECTIONS_PER_PAGE = 50


def _home_page(page: int, *, errors: dict[str, str], values: dict[str, str]) -> str:
    """The home page: a page of the user's inspections, the form, and what its script needs to send
    the inspections started offline (the check texts of the inspection page)."""
    return render_template("portal/inspector/home.html", **_my_inspections(page), errors=errors, values=values,
                           texts=_page_texts())


def _my_inspections(page: int) -> dict[str, Any]:
    """A page of the user's own inspections, newest first, the open ones of the page first (it had
    shown the latest 100, and no way to older ones)."""
    service = inspection_service()
    found = service.list(current_actor(), own=True, limit=INSPECTIONS_PER_PAGE + 1,
                         offset=(page - 1) * INSPECTIONS_PER_PAGE)
    items = [service.view(i) for i in found[:INSPECTIONS_PER_PAGE]]
    items.sort(key=lambda i: i["closed_at"] is not None)
    return {"inspections": items, "page": page, "more": len(found) > INSPECTIONS_PER_PAGE}


@bp.route("/inspector/inspections", methods=["POST"])
@login_required(*WORKERS)
def inspector_open():
    """Start an inspection: a place and, if the phone gave them, coordinates. The page's script
    sends one the phone started offline as JSON ``{"offline": true, "id", "place", "lat", "lon",
    "started_at", "by"}`` once the network is back: answered ``{"id", "url", "check_url"}``, the same
    inspection however often it is sent (``id``), and only to whom the phone was logged in as when
    it was started (``by``; anyone else: 409 ``OTHER_INSPECTOR``)."""
    if request.is_json:
        return _open_started_offline()
    values = {k: (request.form.get(k) or "").strip() for k in ("place", "lat", "lon")}
    lat, lon = _position(values["lat"], values["lon"])
    service = inspection_service()
    try:
        inspection = service.open(current_actor(), place=values["place"], lat=lat, lon=lon)
    except Invalid:  # the place: the position is checked above
        db_session().rollback()
        return _home_page(1, values={**values, "lat": "", "lon": ""},
                          errors={"place": N_("The place has at most 300 characters.")}), 422
    db_session().commit()
    if (values["lat"] or values["lon"]) and lat is None:
        flash(_("The position from the phone was not valid; it was left out."), "error")
    return redirect(url_for("portal.inspection", inspection_id=inspection.id), code=303)


def _open_started_offline():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("offline"):
        raise ApiError(400, "MALFORMED_JSON", "send an inspection started offline as a JSON object")
    try:
        try:
            started_at = parse_rfc3339(str(body.get("started_at") or ""))
        except MalformedEncoding:
            raise Invalid("started_at must be an RFC 3339 time", code="BAD_DATE", field="started_at") from None
        lat, lon = _position(str(body.get("lat") or ""), str(body.get("lon") or ""))
        client_id, started_by = body.get("id"), body.get("by")
        inspection = inspection_service().open(current_actor(), place=str(body.get("place") or ""), lat=lat, lon=lon,
                                               started_at=started_at,
                                               client_id=str(client_id) if client_id is not None else None,
                                               started_by=str(started_by) if started_by is not None else None)
    except Invalid as exc:
        db_session().rollback()
        raise ApiError(422, exc.code, exc.message, field=exc.field) from None
    except Conflict as exc:
        db_session().rollback()
        raise ApiError(409, exc.code, exc.message) from None
    db_session().commit()
    response = jsonify({"id": inspection.id, "url": url_for("portal.inspection", inspection_id=inspection.id),
                        "check_url": url_for("portal.inspection_check", inspection_id=inspection.id)})
    response.status_code = 201
    return response


@bp.route("/inspector/offline")
@login_required(*WORKERS)
def inspection_started_offline():
    """The page of an inspection started on the phone with no network, before it is sent: kept by
    the service worker, and drawn by the page's script from what the phone keeps (its id after
    ``#``). Once the network is back the script sends the inspection, then its checks, and goes to
    the inspection's own page."""
    authority_key = b64url_encode(registry().authority.public_raw)
    response = Response(render_template(
        "portal/inspector/inspection.html", inspection={"id": None, "place": "", "started_at": None,
                                                        "closed_at": None, "lat": None, "lon": None},
        checks=[], mine=True, local=True, texts=_page_texts(), authority_key=authority_key,
        max_photos=MAX_PHOTOS_PER_POST))
    response.headers["Cache-Control"] = "no-cache, private"
    return response


def _position(lat: str, lon: str) -> tuple[float, float] | tuple[None, None]:
    """The phone's coordinates when they are a position on Earth, else none: a bad position (one of
    the two, NaN, 91°) is left out and the inspection starts without it. It had stopped the start,
    saying it was left out, and kept the bad value in the form's hidden fields for the next try."""
    try:
        pair = float(lat), float(lon)
    except ValueError:
        return None, None
    if -90 <= pair[0] <= 90 and -180 <= pair[1] <= 180:  # NaN is neither
        return pair
    return None, None


@bp.route("/inspector/inspections/<int:inspection_id>")
@login_required(*WORKERS)
def inspection(inspection_id: int):
    """The on-site page: scan, photograph or type codes; the checks so far; close; evidence."""
    service = inspection_service()
    actor = current_actor()
    inspection = service.get(actor, inspection_id)
    view = service.view(inspection, checks=True)
    checks = [check_display(c) for c in view.pop("checks")]
    authority_key = b64url_encode(registry().authority.public_raw)
    response = Response(render_template(
        "portal/inspector/inspection.html", inspection=view, checks=list(reversed(checks)),
        mine=inspection.inspector == service.opener(actor),  # else the authority reading: no forms
        texts=_page_texts(), authority_key=authority_key, max_photos=MAX_PHOTOS_PER_POST))
    response.headers["Cache-Control"] = "no-cache, private"
    return response


def _add_photo_check(service: InspectionService, inspection_id: int, photo: bytes, context_values: dict,
                     *, frame: bool):
    try:
        answer = verify_image(verifier(), photo, context=scan_context("inspection", context_values),
                              max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageRejected as exc:
        raise AttachmentRejected(exc.message, code=exc.code.value, status=image_status(exc))
    result = image_verification_json(answer)
    if frame and not result["codes"]:
        return None  # a camera frame without a code is not a check
    return service.add_check(current_actor(), inspection_id, result=result, photo=None if frame else photo)


@bp.route("/inspector/inspections/<int:inspection_id>/checks", methods=["POST"])
@login_required(*WORKERS)
def inspection_check(inspection_id: int):
    """Keep one or more checks: photos (``image``, several allowed), a camera ``frame`` (kept only
    when it holds a code; the frame itself is not stored), a typed or decoded ``code``, or a check
    the browser made offline (JSON ``{"offline": true, "id", "code", "result", "checked_at"}``), which
    is verified again here (kept once per ``id``). Answers ``{"checks": [...]}`` as JSON, or goes back to the page.
    Only whoever opened the inspection adds to it: anyone else is refused before anything is verified."""
    actor = current_actor()
    service = inspection_service()
    inspection = service.get(actor, inspection_id, write=True)
    context_values = {"client_id": actor.name, "lat": inspection.lat, "lon": inspection.lon}
    back = redirect(url_for("portal.inspection", inspection_id=inspection_id), code=303)
    body = request.get_json(silent=True) if request.is_json else None
    if request.is_json and not isinstance(body, dict):  # not JSON, or a string, a list, a number: as the API
        raise ApiError(400, "MALFORMED_JSON", "send the check as a JSON object or a form")
    kept = []
    try:
        if body is not None and body.get("offline"):
            try:
                at = parse_rfc3339(str(body.get("checked_at") or ""))
            except MalformedEncoding:
                raise Invalid("checked_at must be an RFC 3339 time", code="BAD_DATE", field="checked_at") from None
            if not isinstance(body.get("result"), dict):
                raise Invalid("result must be the offline verification JSON", code="BAD_RESULT", field="result")
            client_id = body.get("id")
            kept.append(service.add_check(actor, inspection_id, result=body["result"], offline=True,
                                          code=str(body.get("code") or "")[:4096], at=at, recheck=recheck_offline,
                                          client_id=str(client_id) if client_id is not None else None))
        else:
            code = (body.get("code") if body is not None else request.form.get("code")) or ""
            code = str(code).strip()[:4096]
            # a file field left empty sends a part with no name: no photo; a chosen file that is empty is refused
            photos = [f.read() for f in request.files.getlist("image") if f.filename][:MAX_PHOTOS_PER_POST]
            frame = request.files.get("frame")
            if frame is not None:
                check = _add_photo_check(service, inspection_id, frame.read(), context_values, frame=True)
                kept.extend([check] if check is not None else [])
            elif photos:
                for photo in photos:
                    kept.append(_add_photo_check(service, inspection_id, photo, context_values, frame=False))
            elif code:
                answer = verifier().verify_text(code, context=scan_context("inspection", context_values))
                kept.append(service.add_check(actor, inspection_id, result=verification_json(answer)))
            else:
                problem = _problem("NOTHING_TO_CHECK", "send a photo or a code", 422)
                return problem or back
    except AttachmentRejected as exc:
        db_session().rollback()
        return _problem(exc.code, exc.message, exc.status) or back
    except (Conflict, Invalid) as exc:  # closed, full, too old, unreadable: said to the page's script
        db_session().rollback()
        return _problem(exc.code, exc.message, 409 if isinstance(exc, Conflict) else 422) or back
    db_session().commit()
    shown = [check_display(InspectionService.check_view(c)) for c in kept]
    if _wants_json():
        response = jsonify({"checks": shown})
        response.status_code = 201 if kept else 200
        return response
    if shown:
        flash(_("Checks kept: %(count)d.", count=len(shown)) if len(shown) > 1 else _("Check kept."), "ok")
    return back


@bp.route("/inspector/inspections/<int:inspection_id>/close", methods=["POST"])
@login_required(*WORKERS)
def inspection_close(inspection_id: int):
    inspection_service().close(current_actor(), inspection_id)
    db_session().commit()
    flash(_("The inspection is closed. Download its signed evidence file below."), "ok")
    return redirect(url_for("portal.inspection", inspection_id=inspection_id), code=303)


@bp.route("/inspector/inspections/<int:inspection_id>/evidence.json")
@login_required(*WORKERS)
def inspection_evidence(inspection_id: int):
    """The signed evidence file (the authority key signs; check it with the trust list)."""
    body = inspection_service(signing=True).evidence(current_actor(), inspection_id)
    db_session().commit()  # the export is audited
    data = json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8")
    response = Response(data, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="inspection-{inspection_id}-evidence.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/inspector/inspections/<int:inspection_id>/checks/<int:check_id>/photo")
@login_required(*WORKERS)
def inspection_photo(inspection_id: int, check_id: int):
    data, media_type = inspection_service().photo(current_actor(), inspection_id, check_id)
    response = Response(data, mimetype=media_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/inspector/sw.js")
def inspector_service_worker():
    """The service worker, served under /portal/inspector/ so that this is its scope."""
    response = send_file(SERVICE_WORKER, mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


# -- flagged serials -------------------------------------------------------------------------------
@bp.route("/inspector/flagged")
@login_required(*WORKERS)
def flagged():
    """Serials flagged as clone suspicions, with their latest scans."""
    return _flagged_page(page_number(request.args.get("page")))


def _flagged_page(page: int, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                  status: int = 200):
    """``errors``: a serial's clearance form -> the message msgid for its note."""
    items = inspection_service().flagged_serials(current_actor(), limit=50, offset=(page - 1) * 50)
    return render_template("portal/inspector/flagged.html", items=items, page=page, errors=errors or {},
                           values=values or {}, case_status=STATUS_LABEL, channel_label=CHANNEL_LABEL), status


@bp.route("/inspector/flagged/clear", methods=["POST"])
@login_required(*WORKERS)
def flagged_clear():
    """Clear a serial's flag after looking into it: what was checked goes to the audit log, and
    clone detection counts again from now (``InspectionService.clear_flag``)."""
    form = request.form
    serial = form.get("serial", "")
    try:
        cleared = inspection_service().clear_flag(current_actor(), form.get("gtin", ""), form.get("lot", ""), serial,
                                                  note=form.get("note", ""))
    except Invalid as exc:
        db_session().rollback()
        return _flagged_page(page_number(form.get("page")), errors={serial: FORM_ERROR.get(exc.code) or exc.message},
                             values=dict(form), status=422)
    except Conflict:  # another inspector cleared it meanwhile
        db_session().rollback()
        flash(_("Serial %(serial)s is no longer flagged: its flag was cleared meanwhile.", serial=serial), "error")
        return redirect(url_for("portal.flagged"), code=303)
    except NotFound as exc:  # a form whose unit is not the list's (an edited page): said on the list, not a bare 404
        db_session().rollback()
        flash(_(error_text(exc)) if error_text(exc) else exc.message, "error")
        return redirect(url_for("portal.flagged"), code=303)
    db_session().commit()
    flash(_("Flag cleared for serial %(serial)s. Clone detection counts again from now.", serial=serial), "ok")
    if cleared["cases"]:
        flash(_("Your note was added to the open cases about this unit: %(cases)s.",
                cases=", ".join(cleared["cases"])), "ok")
    return redirect(url_for("portal.flagged"), code=303)


@bp.app_template_filter("inspector_time")
def _inspector_time(value: str | None) -> str:
    """An RFC 3339 time as the date and time in Vietnam, for lists: ``22/11/2026 13:46`` on
    Vietnamese pages, ``22 Nov 2026 13:46`` on English ones (where 08/12 reads as 12 August)."""
    from flask_babel import format_datetime, get_locale

    from app.i18n import VIETNAM_TIME

    try:
        moment = parse_rfc3339(value) if value else None
    except MalformedEncoding:
        return value or ""
    if moment is None:
        return ""
    # The patterns inspector.js writes for the checks it adds (localTime): "short" gave 11/23/26,
    # 1:08 PM in English.
    english = (locale := get_locale()) is not None and locale.language == "en"
    return format_datetime(moment.astimezone(VIETNAM_TIME).replace(tzinfo=None),
                           format="d MMM yyyy HH:mm" if english else "dd/MM/yyyy HH:mm")
