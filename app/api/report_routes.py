"""Shoppers' counterfeit reports: ``POST /api/v1/reports`` (multipart, up to three photos)."""

from __future__ import annotations

import functools

from flask import jsonify, request
from marshmallow import fields, validate

from keys.encoding import rfc3339
from registry.reports import (FOLLOWUP_STATUS, WHERE_KINDS, PhotoTooLarge, ReportInput, ReportInvalid, ReportService,
                              TooManyReports)

from app.api import bp
from app.api.schemas import Strict, UtcDateTime
from app.errors import ApiError, error_response, image_status
from app.extensions import config_limit, rate_limit
from app.services import db_session, report_service, scan_context

__all__ = ["create_report", "report_status", "photo_status", "allow_report_body", "REPORT_BODY_LIMIT"]

MiB = 1024 * 1024
#: Three photos of up to 10 MiB each (the verification limit, per photo) and the text fields.
REPORT_BODY_LIMIT = 31 * MiB


def photo_status(exc: ReportInvalid) -> int | None:
    """413 for a photo file too large, 415 for a file that is not an image, 400 for an empty one (as
    POST /verify/image answers it), 422 for the rest."""
    if exc.photo_error is None:
        return None
    if isinstance(exc.photo_error, PhotoTooLarge):
        return 413
    return image_status(exc.photo_error)


def allow_report_body(view):
    """Raise the body limit for this view before anything parses the form (three photos)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        request.max_content_length = REPORT_BODY_LIMIT
        return view(*args, **kwargs)

    return wrapper


class ReportFormSchema(Strict):
    code = fields.String(validate=validate.Length(max=4096),
                         metadata={"description": "the code as read (a Digital Link URL, element string or GTIN)"})
    where_kind = fields.String(required=True, validate=validate.OneOf(WHERE_KINDS))
    where_text = fields.String(validate=validate.Length(max=1000),
                               metadata={"description": "shop or market address, platform, page or channel name"})
    seller = fields.String(validate=validate.Length(max=200))
    link = fields.String(validate=validate.Length(max=2000))
    price = fields.String(validate=validate.Length(max=32))
    bought_on = fields.Date(metadata={"description": "YYYY-MM-DD"})
    contact = fields.String(validate=validate.Length(max=200), metadata={"description": "optional phone or e-mail"})
    description = fields.String(validate=validate.Length(max=5000))
    client_id = fields.String(validate=validate.Length(max=128),
                              metadata={"description": "a random id the client keeps; only its salted hash is stored"})


class ReportCreatedSchema(Strict):
    case_number = fields.String(metadata={"description": "e.g. VN-2026-000123"})
    status = fields.String()
    verdict = fields.String(allow_none=True)
    gtin = fields.String(allow_none=True)
    lot = fields.String(allow_none=True)
    serial = fields.String(allow_none=True)
    photos = fields.List(fields.Dict())
    created_at = UtcDateTime()
    followup_code = fields.String(metadata={"description": "given once: with the case number, it shows the shopper "
                                                           "where the report stands (POST /reports/status)"})


_PHOTO_FORM = {"type": "object", "required": ["where_kind"], "properties": {
    "photo": {"type": "array", "maxItems": 3, "items": {"type": "string", "format": "binary"}},
    **{name: {"type": "string"} for name in ("code", "where_kind", "where_text", "seller", "link", "price",
                                             "bought_on", "contact", "description", "client_id")}}}


@bp.route("/reports", methods=["POST"])
@allow_report_body
@rate_limit(config_limit("REPORT_RATE_LIMIT"), scope="report")  # shared with the report form
@bp.arguments(ReportFormSchema, location="form")
@bp.response(201, ReportCreatedSchema)
@bp.doc(requestBody={"content": {"multipart/form-data": {"schema": _PHOTO_FORM}}})
def create_report(form):
    """A shopper's counterfeit report with up to 3 photos (10 MiB, 50 megapixels each); answers a case number."""
    photos = [f.read() for f in request.files.getlist("photo") if f]
    client = scan_context("report", form).client
    try:
        filed = report_service().create(ReportInput.from_mapping(form, photos), client_hash=client)
    except TooManyReports as exc:
        response = error_response(429, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except ReportInvalid as exc:
        status = photo_status(exc)
        if status is not None:
            raise ApiError(status, exc.code, exc.details.get("photo", exc.message), fields=exc.errors) from None
        raise ApiError(422, "VALIDATION_FAILED", exc.message, fields=exc.errors) from None
    db_session().commit()
    body = ReportService.view(filed.report)
    return jsonify({k: body[k] for k in ("case_number", "status", "verdict", "gtin", "lot", "serial", "photos")}
                   | {"created_at": rfc3339(body["created_at"]), "followup_code": filed.followup_code}), 201


class FollowupInSchema(Strict):
    case_number = fields.String(required=True, validate=validate.Length(min=1, max=32),
                                metadata={"description": "e.g. VN-2026-000123"})
    followup_code = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                  metadata={"description": "given with the case number when the report was filed "
                                                           "(spaces, hyphens and case do not matter)"})


class FollowupSchema(Strict):
    case_number = fields.String()
    status = fields.String(validate=validate.OneOf(sorted(set(FOLLOWUP_STATUS.values()))))
    received_at = fields.String()
    updated_at = fields.String(metadata={"description": "when the status last changed (or the report came)"})
    published = fields.Boolean(metadata={"description": "the case is among the published confirmed violators"})


@bp.route("/reports/status", methods=["POST"])
@rate_limit(config_limit("FOLLOWUP_RATE_LIMIT"), scope="report-followup")  # shared with the follow-up page
@bp.arguments(FollowupInSchema)
@bp.response(200, FollowupSchema)
def report_status(data):
    """Where a report stands, for the shopper holding its case number and follow-up code (a POST, so
    that the code is in no address and no access log). A wrong code and an unknown case number
    answer the same 404 ``REPORT_UNKNOWN``."""
    status = report_service().followup(data["case_number"], data["followup_code"])
    db_session().rollback()
    return jsonify(status)
