"""Producers, keys, batches, serials, recalls, labels."""

from __future__ import annotations

import tempfile

from flask import Response, jsonify, send_file

from keys.encoding import rfc3339
from registry.services import Role

from app.api import bp
from app.api.schemas import (
    BatchCreatedSchema,
    BatchInSchema,
    BatchSchema,
    CorrectedSchema,
    CorrectionInSchema,
    KeyInSchema,
    KeySchema,
    LabelArgsSchema,
    ProducerInSchema,
    ProducerSchema,
    RecallInSchema,
    RecallSchema,
    RevokeInSchema,
    RevokedSchema,
    SerialsInSchema,
    SerialsSchema,
    SignedSchema,
)
from app.auth import current_actor, require_roles
from app.services import db_session, registry

BEARER = [{"bearerAuth": []}]


@bp.route("/producers", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(ProducerInSchema)
@bp.response(201, ProducerSchema)
def admit_producer(data):
    """Admit a producer with the GS1 company prefixes it owns (authority)."""
    producer = registry().admit_producer(current_actor(), **data)
    db_session().commit()
    return producer


@bp.route("/producers/<producer_id>/keys", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(KeyInSchema)
@bp.response(201, KeySchema)
def certify_key(data, producer_id):
    """Certify a producer key: a new custodial key (``{}``) or the producer's own ``public_key``."""
    key = registry().certify_key(current_actor(), producer_id, **data)
    db_session().commit()
    return key


@bp.route("/keys/<kid>/revoke", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(RevokeInSchema)
@bp.response(200, RevokedSchema)
def revoke_key(data, kid):
    """Revoke a producer key, with the time it was compromised."""
    key = registry().revoke_key(current_actor(), kid, compromised_at=data.get("compromised_at"))
    db_session().commit()
    return {"kid": key.kid, "status": key.status, "compromised_at": rfc3339(key.compromised_at),
            "revoked_at": rfc3339(key.revoked_at)}


@bp.route("/batches", methods=["POST"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(BatchInSchema)
@bp.response(201, BatchCreatedSchema)
def register_batch(data):
    """Register a batch: origin record in; signed record, log index and QR URL out."""
    reg = registry()
    return _committed_record(reg, reg.register_batch(current_actor(), data))


def _committed_record(reg, batch) -> dict:
    """A batch's just-signed record, committed: the record, its QR URL, its log index and the
    checkpoint that covers it (the answer of a registration and of a correction)."""
    checkpoint = reg.log().latest_checkpoint()
    url = reg.batch_url(batch)
    db_session().commit()
    return {"record": batch.record, "url": url, "log": {"index": batch.log_index, "checkpoint": checkpoint}}


@bp.route("/batches/<gtin>/<path:lot>", methods=["GET"])
@bp.response(200, BatchSchema)
def get_batch(gtin, lot):
    """The signed origin record, its status and its inclusion proof against the latest checkpoint."""
    reg = registry()
    return reg.batch_view(reg.batch(gtin, lot))


@bp.route("/batches/<gtin>/<path:lot>/corrections", methods=["POST"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(CorrectionInSchema)
@bp.response(201, CorrectedSchema)
def correct_batch(data, gtin, lot):
    """Correct a batch's origin record: a new version, signed and logged, naming the one it replaces.
    GTIN, lot and expiry date cannot change (printed codes carry them); the old version is kept."""
    reg = registry()
    answer = _committed_record(reg, reg.correct_batch(current_actor(), gtin, lot, data, reason=data.get("reason")))
    return {**answer, "version": answer["record"]["version"]}


@bp.route("/batches/<gtin>/<path:lot>/serials", methods=["POST"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(SerialsInSchema)
@bp.response(201, SerialsSchema)
def issue_serials(data, gtin, lot):
    """Issue up to 100,000 unit serials, each with its signed Digital Link URL (all or none); or
    register up to 100,000 unit codes the producer signed with a key it keeps (``codes``)."""
    reg = registry()
    if "codes" in data:
        issued = reg.register_serials(current_actor(), gtin, lot, data["codes"])
    else:
        issued = reg.issue_serials(current_actor(), gtin, lot, data["count"])
    batch = reg.batch(gtin, lot)
    db_session().commit()
    body = {"serials": [{"serial": serial, "url": reg.serial_url(batch, serial, s)} for serial, s in issued]}
    response: Response = jsonify(body)
    response.status_code = 201
    return response


@bp.route("/batches/<gtin>/<path:lot>/recall", methods=["POST"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(RecallInSchema)
@bp.response(200, RecallSchema)
def recall_batch(data, gtin, lot):
    """Recall a batch, with a reason (its producer or the authority)."""
    reg = registry()
    recall = reg.recall(current_actor(), gtin, lot, reason=data["reason"])
    db_session().commit()
    return {"gtin": recall.record["gtin"], "lot": lot, "status": "recalled", "record": recall.record,
            "log": {"index": recall.log_index, "checkpoint": reg.log().latest_checkpoint()}}


@bp.route("/trust-list", methods=["GET"])
@bp.response(200, SignedSchema)
def trust_list():
    """The signed trust list: the authority key, every producer key with its status, all revocations,
    and every recalled batch (``recalls``: gtin, lot, reason, at)."""
    body = registry().trust_list()
    db_session().rollback()
    response = jsonify(body)
    # kept by whoever verifies offline (the inspectors' service worker keeps it for their phones:
    # no-store, the API's default, had stopped that), asked for afresh whenever there is a network
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/batches/<gtin>/<path:lot>/codes.csv", methods=["GET"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER, responses={200: {"description": "CSV: gtin, lot, serial, expiry, url (the signed code)",
                                          "content": {"text/csv": {}}}})
def batch_codes(gtin, lot):
    """Every code of the batch with its signed URL, one a line in issue order (the batch code when it
    has no serials): for printing on the producer's own label printer."""
    from registry.labels import codes_csv

    from app.responses import spooled

    items = registry().labels(current_actor(), gtin, lot)
    return spooled(codes_csv(items), mimetype="text/csv", filename=f"codes-{gtin}-{lot.replace('/', '_')}.csv")


@bp.route("/batches/<gtin>/<path:lot>/labels", methods=["GET"])
@require_roles(Role.PRODUCER, Role.AUTHORITY)
@bp.doc(security=BEARER, responses={200: {"description": "a PDF sheet, or one label as PNG or SVG",
                                          "content": {"application/pdf": {}, "image/png": {}, "image/svg+xml": {}}}})
@bp.arguments(LabelArgsSchema, location="query")
def labels(args, gtin, lot):
    """Printable labels: a PDF sheet of every code of the batch (at most 10,000 a sheet: a larger batch
    in parts, with ``offset`` and ``limit``), or one code as PNG/SVG."""
    from registry.labels import LABEL_STOCKS, render_png, render_svg, write_pdf_sheet

    from app.errors import ApiError

    fmt, serial = args["format"], args.get("serial")
    stock = args.get("stock") or "a4-24"
    if stock not in LABEL_STOCKS:
        raise ApiError(422, "BAD_STOCK", f"unknown label stock {stock!r}; known: {', '.join(LABEL_STOCKS)}")
    if fmt == "pdf" and serial is None:
        items = registry().label_sheet(current_actor(), gtin, lot, offset=args["offset"], limit=args.get("limit"))
    else:
        items = registry().labels(current_actor(), gtin, lot, serial=serial)
    if fmt == "pdf":
        spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
        write_pdf_sheet(items, spool, stock=stock)
        spool.seek(0)
        return send_file(spool, mimetype="application/pdf", as_attachment=True,
                         download_name=f"labels-{gtin}-{lot.replace('/', '_')}.pdf")
    first = next(items)
    if serial is None and next(items, None) is not None:
        raise ApiError(422, "SERIAL_REQUIRED", "this batch has serials: name one with serial= for a PNG or SVG label")
    if fmt == "png":
        return Response(render_png(first), mimetype="image/png")
    return Response(render_svg(first), mimetype="image/svg+xml")
