"""The portals' API: accounts, tokens, inspections and evidence, cases, exports, flagged serials, keys.

Views are thin: authenticate and check the role (``require_roles``), parse, call one service,
commit, serialise. The owning producer (or inspector) is checked by the services.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, current_app, jsonify, request, url_for
from marshmallow import ValidationError

from keys.encoding import rfc3339
from registry.cases import AttachmentRejected
from registry.keys_admin import producer_keys, rotate_key
from registry.services import Role
from verification.decoding import ImageRejected
from verification.services import verify_image

from app.api import bp
from app.api.portal_schemas import (
    AssignInSchema,
    BatchListArgsSchema,
    CaseListArgsSchema,
    CaseListSchema,
    CaseSchema,
    CheckInSchema,
    CheckResultSchema,
    EpcisArgsSchema,
    FlagClearInSchema, FlagClearedSchema, FlaggedListSchema,
    InspectionInSchema,
    InspectionListArgsSchema,
    InspectionListSchema,
    InspectionSchema,
    ItemListSchema,
    NoteInSchema,
    NoteListSchema,
    NoteSchema,
    PageArgsSchema,
    ProducerKeyListSchema,
    ProducerKeySchema,
    PublishCaseInSchema,
    PublishedSchema,
    TokenCreatedSchema,
    TokenInSchema,
    TokenListSchema,
    TokenSchema,
    TransitionInSchema,
    UserInSchema,
    UserListSchema,
    UserSchema,
)
from app.api.schemas import RotateInSchema, SignedSchema
from app.auth import current_actor, require_roles
from app.errors import ApiError, image_status
from app.presenters import image_verification_json, verification_json
from app.responses import listing_page, spooled
from app.services import (
    account_service,
    case_service,
    db_session,
    export_service,
    inspection_service,
    recheck_offline,
    registry,
    scan_context,
    token_admin,
    verifier,
)

__all__ = ["inspection_service", "case_service", "export_service", "account_service"]

BEARER = [{"bearerAuth": []}]
ANY_ROLE = tuple(Role)
WORKERS = (Role.INSPECTOR, Role.AUTHORITY)


def _upload_error(exc: AttachmentRejected) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def _created(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


# -- accounts (authority) -------------------------------------------------------------------------
@bp.route("/users", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(UserInSchema)
@bp.response(201, UserSchema)
def create_user(data):
    """Create a portal account (authority): a role, and the producer for producer staff."""
    service = account_service()
    user = service.create_user(current_actor(), **data)
    db_session().commit()
    return _created(service.view(user))


@bp.route("/users", methods=["GET"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.response(200, UserListSchema)
def list_users():
    """Every portal account (authority)."""
    service = account_service()
    return jsonify({"items": [service.view(u) for u in service.list(current_actor())]})


@bp.route("/users/<username>/unlock", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.response(200, UserSchema)
def unlock_user(username):
    """Lift a lock-out after repeated failed logins (authority)."""
    service = account_service()
    user = service.unlock(current_actor(), username)
    db_session().commit()
    return jsonify(service.view(user))


@bp.route("/users/<username>/deactivate", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.response(200, UserSchema)
def deactivate_user(username):
    """Deactivate an account: it can no longer log in (authority)."""
    service = account_service()
    user = service.deactivate(current_actor(), username)
    db_session().commit()
    return jsonify(service.view(user))


# -- API tokens -------------------------------------------------------------------------------------
@bp.route("/tokens", methods=["GET"])
@require_roles(Role.AUTHORITY, Role.PRODUCER)
@bp.doc(security=BEARER)
@bp.response(200, TokenListSchema)
def list_tokens():
    """Tokens (never the secrets): all for the authority, a producer's own for producer staff."""
    admin = token_admin()
    return jsonify({"items": [admin.view(t) for t in admin.list(current_actor())]})


@bp.route("/tokens", methods=["POST"])
@require_roles(Role.AUTHORITY, Role.PRODUCER)
@bp.doc(security=BEARER)
@bp.arguments(TokenInSchema)
@bp.response(201, TokenCreatedSchema)
def create_token(data):
    """Create a bearer token with an expiry; the token is in this answer only, then stored hashed."""
    admin = token_admin()
    plain, row = admin.create(current_actor(), **data)
    db_session().commit()
    return _created({**admin.view(row), "token": plain})


@bp.route("/tokens/<int:token_id>", methods=["DELETE"])
@require_roles(Role.AUTHORITY, Role.PRODUCER)
@bp.doc(security=BEARER)
@bp.response(200, TokenSchema)
def revoke_token(token_id):
    """Revoke a token (the authority any; producer staff their producer's)."""
    admin = token_admin()
    row = admin.revoke(current_actor(), token_id)
    db_session().commit()
    return jsonify(admin.view(row))


# -- inspections ----------------------------------------------------------------------------------
@bp.route("/inspections", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(InspectionInSchema)
@bp.response(201, InspectionSchema)
def open_inspection(data):
    """Open an on-site inspection: a place and, if known, its coordinates."""
    service = inspection_service()
    inspection = service.open(current_actor(), **data)
    db_session().commit()
    return _created(service.view(inspection, checks=True))


@bp.route("/inspections", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(InspectionListArgsSchema, location="query")
@bp.response(200, InspectionListSchema)
def list_inspections(args):
    """An inspector's own inspections (the authority: everyone's, each naming its ``inspector``), newest first."""
    service = inspection_service()
    return listing_page(lambda n: service.list(current_actor(), open_only=args["open"], limit=n, offset=args["offset"]),
                        args, service.view)


@bp.route("/inspections/<int:inspection_id>", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.response(200, InspectionSchema)
def get_inspection(inspection_id):
    """One inspection with its checks."""
    service = inspection_service()
    return jsonify(service.view(service.get(current_actor(), inspection_id), checks=True))


def _check_input() -> tuple[dict[str, Any], bytes | None]:
    """The check's fields and photo, from a multipart form or a JSON body."""
    if request.mimetype == "multipart/form-data":
        raw: dict[str, Any] = {k: v for k, v in request.form.items()}
        upload = request.files.get("image") or request.files.get("photo")
        photo = upload.read() if upload else None
        if "result" in raw:
            try:
                raw["result"] = current_app.json.loads(raw["result"])  # strict JSON, as for a JSON body
            except ValueError:
                raise ApiError(422, "VALIDATION_FAILED", "result must be the verification JSON") from None
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_JSON", "send the check as a JSON object or a multipart form")
        raw, photo = dict(body), None
    try:
        data = CheckInSchema(partial=("code",)).load(raw)
    except ValidationError as exc:
        raise ApiError(422, "VALIDATION_FAILED", "the request does not match the schema",
                       fields=exc.normalized_messages()) from None
    if data.get("photo") is not None:
        if photo is not None:
            raise ApiError(422, "VALIDATION_FAILED", "send the photo once: as a file or as base64")
        try:
            photo = base64.b64decode(data.pop("photo"), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "VALIDATION_FAILED", "photo must be base64") from None
    if photo is not None and not photo:
        raise ApiError(400, "IMAGE_EMPTY", "the uploaded file is empty")
    return data, photo


@bp.route("/inspections/<int:inspection_id>/checks", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER, requestBody={"content": {
    "application/json": {"schema": CheckInSchema},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}, "code": {"type": "string"},
        "offline": {"type": "boolean"}, "result": {"type": "string", "description": "JSON"},
        "checked_at": {"type": "string", "format": "date-time"}, "queue_id": {"type": "string"}}}}}})
@bp.response(201, CheckResultSchema)
def add_check(inspection_id):
    """Check a code on site: a photo (every code in it is verified), a decoded ``code``, or a check the
    browser made offline (``offline``, ``result``, ``checked_at``), which is verified again here.
    Only whoever opened the inspection adds to it (403 ``NOT_YOUR_INSPECTION``, the authority included)."""
    actor = current_actor()
    service = inspection_service()
    inspection = service.get(actor, inspection_id, write=True)  # refused before anything is verified
    data, photo = _check_input()
    context_values = {"client_id": actor.name, "lat": inspection.lat, "lon": inspection.lon}
    try:
        if data.get("offline"):
            if "result" not in data or "checked_at" not in data or not data.get("code"):
                raise ApiError(422, "VALIDATION_FAILED", "an offline check needs code, result and checked_at")
            check = service.add_check(actor, inspection_id, result=data["result"], photo=photo, offline=True,
                                      code=data["code"], at=data["checked_at"], recheck=recheck_offline,
                                      client_id=data.get("queue_id"))
        elif photo is not None and not data.get("code"):
            try:
                answer = verify_image(verifier(), photo, context=scan_context("inspection", context_values),
                                      max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
            except ImageRejected as exc:
                raise ApiError(image_status(exc), exc.code.value, exc.message) from None
            check = service.add_check(actor, inspection_id, result=image_verification_json(answer), photo=photo)
        elif data.get("code"):
            answer = verifier().verify_text(data["code"], context=scan_context("inspection", context_values))
            check = service.add_check(actor, inspection_id, result=verification_json(answer), photo=photo)
        else:
            raise ApiError(422, "VALIDATION_FAILED", "send a photo (image) or a decoded code")
    except AttachmentRejected as exc:
        raise _upload_error(exc) from None
    db_session().commit()
    return _created(service.check_view(check))


@bp.route("/inspections/<int:inspection_id>/close", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.response(200, InspectionSchema)
def close_inspection(inspection_id):
    """Close an inspection: no more live checks (offline checks made before closing still sync).
    Only whoever opened it closes it (403 ``NOT_YOUR_INSPECTION``, the authority included)."""
    service = inspection_service()
    inspection = service.close(current_actor(), inspection_id)
    db_session().commit()
    return jsonify(service.view(inspection, checks=True))


@bp.route("/inspections/<int:inspection_id>/evidence", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.response(200, SignedSchema)
def inspection_evidence(inspection_id):
    """The signed evidence file: the inspection, its checks and verdicts, and the log checkpoint
    relied on, signed by the authority key (check it with the trust list's authority key)."""
    body = inspection_service(signing=True).evidence(current_actor(), inspection_id)
    db_session().commit()  # the export is audited
    response = jsonify(body)
    response.headers["Content-Disposition"] = f'attachment; filename="inspection-{inspection_id}-evidence.json"'
    return response


@bp.route("/inspections/<int:inspection_id>/checks/<int:check_id>/photo", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER, responses={200: {"description": "the photo", "content": {"image/*": {}}}})
def check_photo(inspection_id, check_id):
    """A check's photo, as stored (its SHA-256 is in the evidence file)."""
    data, media_type = inspection_service().photo(current_actor(), inspection_id, check_id)
    return Response(data, mimetype=media_type, headers={"X-Content-Type-Options": "nosniff"})


# -- flagged serials ------------------------------------------------------------------------------
@bp.route("/flagged-serials", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, FlaggedListSchema)
def flagged_serials(args):
    """Serials flagged as likely clones, with their scan summary and latest scans (no client data)."""
    return listing_page(lambda n: inspection_service().flagged_serials(current_actor(), limit=n,
                                                                       offset=args["offset"]), args)


@bp.route("/flagged-serials/clear", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(FlagClearInSchema)
@bp.response(200, FlagClearedSchema)
def clear_flag(data):
    """Clear a serial's clone flag after looking into it, saying what was checked (kept in the audit
    log). Clone detection counts again from now: the clients and networks seen before no longer count."""
    cleared = inspection_service().clear_flag(current_actor(), data["gtin"], data["lot"], data["serial"],
                                              note=data["note"])
    db_session().commit()
    return jsonify(cleared)


# -- cases ----------------------------------------------------------------------------------------
@bp.route("/cases", methods=["GET"])
@require_roles(*ANY_ROLE)
@bp.doc(security=BEARER)
@bp.arguments(CaseListArgsSchema, location="query")
@bp.response(200, CaseListSchema)
def list_cases(args):
    """Shoppers' reports as cases. Inspectors and the authority: all; a producer: those about its own
    products; a partner agency: confirmed cases."""
    actor = current_actor()
    service = case_service()
    return listing_page(lambda n: service.list(actor, **(args | {"limit": n})), args, lambda c: service.view(actor, c))


@bp.route("/cases/<case_number>", methods=["GET"])
@require_roles(*ANY_ROLE)
@bp.doc(security=BEARER)
@bp.response(200, CaseSchema)
def get_case(case_number):
    """One case, as the caller may read it."""
    actor = current_actor()
    service = case_service()
    return jsonify(service.view(actor, service.get(actor, case_number)))


@bp.route("/cases/<case_number>/photos/<sha256>", methods=["GET"])
@require_roles(*ANY_ROLE)
@bp.doc(security=BEARER, responses={200: {"description": "the photo", "content": {"image/*": {}}}})
def case_photo(case_number, sha256):
    """A photo the shopper sent with the report."""
    data, media_type = case_service().photo(current_actor(), case_number, sha256)
    return Response(data, mimetype=media_type, headers={"X-Content-Type-Options": "nosniff"})


@bp.route("/cases/<case_number>/notes", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.response(200, NoteListSchema)
def list_notes(case_number):
    """The case's notes and status changes, oldest first (inspectors and the authority)."""
    service = case_service()
    return jsonify({"items": [service.note_view(n) for n in service.notes(current_actor(), case_number)]})


@bp.route("/cases/<case_number>/notes", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER, requestBody={"content": {
    "application/json": {"schema": NoteInSchema},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "text": {"type": "string"}, "attachment": {"type": "string", "format": "binary"}}}}}})
@bp.response(201, NoteSchema)
def add_note(case_number):
    """A note on a case, with an optional attachment (a photo, PDF or text; judged by its bytes)."""
    attachment = name = None
    if request.mimetype == "multipart/form-data":
        text = request.form.get("text", "")
        upload = request.files.get("attachment")
        if upload is not None:
            attachment, name = upload.read(), upload.filename
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_JSON", "send the note as a JSON object or a multipart form")
        try:
            text = NoteInSchema().load(body).get("text", "")
        except ValidationError as exc:
            raise ApiError(422, "VALIDATION_FAILED", "the request does not match the schema",
                           fields=exc.normalized_messages()) from None
    service = case_service()
    try:
        note = service.add_note(current_actor(), case_number, text=text, attachment=attachment,
                                attachment_name=name)
    except AttachmentRejected as exc:
        raise _upload_error(exc) from None
    db_session().commit()
    return _created(service.note_view(note))


@bp.route("/cases/<case_number>/notes/<int:note_id>/attachment", methods=["GET"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER, responses={200: {"description": "the attachment"}})
def note_attachment(case_number, note_id):
    """A note's attachment (served as a download, with its sniffed type)."""
    data, media_type, name = case_service().attachment(current_actor(), case_number, note_id)
    safe = name.encode("ascii", "replace").decode().replace('"', "")
    return Response(data, mimetype=media_type, headers={"Content-Disposition": f'attachment; filename="{safe}"',
                                                        "X-Content-Type-Options": "nosniff"})


@bp.route("/cases/<case_number>/assign", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(AssignInSchema)
@bp.response(200, CaseSchema)
def assign_case(data, case_number):
    """Assign (or reassign) a case; a new case becomes ``assigned``."""
    actor = current_actor()
    service = case_service()
    case = service.assign(actor, case_number, **data)
    db_session().commit()
    return jsonify(service.view(actor, case))


@bp.route("/cases/<case_number>/transition", methods=["POST"])
@require_roles(*WORKERS)
@bp.doc(security=BEARER)
@bp.arguments(TransitionInSchema)
@bp.response(200, CaseSchema)
def transition_case(data, case_number):
    """Move a case: new→assigned→investigating→confirmed|dismissed (any→dismissed; dismissed→investigating
    reopens). Confirming or dismissing needs a ``text``."""
    actor = current_actor()
    service = case_service()
    case = service.transition(actor, case_number, to=data["to"], text=data.get("text", ""), expected=data.get("from_"))
    db_session().commit()
    return jsonify(service.view(actor, case))


@bp.route("/cases/<case_number>/publish", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(PublishCaseInSchema)
@bp.response(201, PublishedSchema)
def publish_case(data, case_number):
    """Publish a confirmed case as a violator: signed by the authority and appended to the log."""
    from registry.publications import PublicationService

    actor = current_actor()
    publications = PublicationService(db_session(), authority=registry().authority)
    item = case_service().publish(actor, case_number, lambda **fields: publications.publish(actor, **fields),
                                  **data)
    db_session().commit()
    return _created(publications.view(item))


# -- exports (read-only; partner agencies included) ------------------------------------------------
@bp.route("/exports/<any(batches, recalls, cases, violators):name>.csv", methods=["GET"])
@require_roles(Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER)
@bp.doc(security=BEARER, responses={200: {"description": "CSV, one header line then one line per item",
                                          "content": {"text/csv": {}}}})
def export_csv(name):
    """Batches, recalls, confirmed cases or violators in force, as CSV (streamed)."""
    lines = export_service().csv(current_actor(), name)
    return spooled(lines, mimetype="text/csv", filename=f"{name}.csv")


@bp.route("/exports/epcis", methods=["GET"])
@require_roles(Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER)
@bp.doc(security=BEARER, responses={200: {"description": "an EPCIS 2.0 JSON-LD EPCISDocument of ObjectEvents",
                                          "content": {"application/ld+json": {}}}})
@bp.arguments(EpcisArgsSchema, location="query")
def export_epcis(args):
    """Registrations, corrections, scans and recalls as GS1 EPCIS 2.0 ObjectEvents (JSON-LD), oldest
    first, ``limit`` a page. When more follow, the response has ``Link: <...>; rel="next"`` and ``GS1-Next-Page-Token``:
    ask again with ``nextPageToken`` (the other parameters unchanged)."""
    chunks, page = export_service().epcis_stream(current_actor(), since=args.get("since"), until=args.get("until"),
                                                 limit=args["limit"], events=args["events"],
                                                 page_token=args.get("nextPageToken"))
    response = spooled(chunks, mimetype="application/ld+json")  # the page is read by now
    if page.next_token:
        query = {k: v for k, v in request.args.items() if k != "nextPageToken"} | {"nextPageToken": page.next_token}
        next_url = current_app.config["BASE_URL"] + url_for("api.export_epcis", **query)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
        response.headers["GS1-Next-Page-Token"] = page.next_token
    return response


# -- producers' batches and keys ------------------------------------------------------------------
@bp.route("/producers/<producer_id>/batches", methods=["GET"])
@require_roles(*ANY_ROLE)
@bp.doc(security=BEARER)
@bp.arguments(BatchListArgsSchema, location="query")
@bp.response(200, ItemListSchema)
def producer_batches(args, producer_id):
    """A producer's batches with status and scan counts (its own staff, the authority, inspectors, partners);
    ``q`` finds them by lot, GTIN or product name."""
    return listing_page(lambda n: export_service().producer_batches(current_actor(), producer_id, limit=n,
                                                                    offset=args["offset"], query=args["query"]), args)


@bp.route("/batches/<gtin>/<path:lot>/serials", methods=["GET"])
@require_roles(Role.PRODUCER, Role.AUTHORITY, Role.INSPECTOR)
@bp.doc(security=BEARER)
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, ItemListSchema)
def batch_serials(args, gtin, lot):
    """A batch's serials with their scan summaries (its producer, the authority, inspectors)."""
    return listing_page(lambda n: export_service().batch_serials(current_actor(), gtin, lot, limit=n,
                                                                 offset=args["offset"]), args)


@bp.route("/producers/<producer_id>/keys", methods=["GET"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.response(200, ProducerKeyListSchema)
def list_producer_keys(producer_id):
    """The producer's keys, newest first, and which one signs new codes (``in_use``)."""
    return jsonify({"items": producer_keys(registry(), current_actor(), producer_id)})


@bp.route("/producers/<producer_id>/keys/rotate", methods=["POST"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(RotateInSchema)
@bp.response(201, ProducerKeySchema)
def rotate_producer_key(data, producer_id):
    """Certify a new custodial key for the producer; codes already printed keep verifying."""
    key = rotate_key(registry(), current_actor(), producer_id, gs1_prefixes=data.get("gs1_prefixes"))
    db_session().commit()
    return _created({"kid": key.kid, "public_key": key.public_key, "status": key.status, "custodial": key.custodial,
                     "gs1_prefixes": key.gs1_prefixes, "not_before": rfc3339(key.not_before),
                     "not_after": rfc3339(key.not_after), "compromised_at": None, "in_use": True,
                     "log_index": key.log_index, "certificate": key.certificate})
