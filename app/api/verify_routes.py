"""Verification: a decoded text, or a photo with every code in it."""

from __future__ import annotations

from flask import current_app, jsonify, request
from marshmallow import EXCLUDE, ValidationError, fields, validate

from verification.decoding import ImageRejected
from verification.services import verify_image

from app.api import bp
from app.api.schemas import Strict
from app.errors import ApiError, image_status, summary
from app.extensions import config_limit, rate_limit
from app.presenters import image_verification_json, verification_json
from app.services import scan_context, verification_reader, verifier


_CODE_MAX, _CLIENT_MAX = 4096, 128
_PLAIN_KEYS = {"code", "client_id"}


class ClientArgsSchema(Strict):
    client_id = fields.String(validate=validate.Length(max=_CLIENT_MAX),
                              metadata={"description": "a random id the client keeps; only its salted hash is stored"})
    lat = fields.Float(validate=validate.Range(-90, 90))
    lon = fields.Float(validate=validate.Range(-180, 180))


class VerifyArgsSchema(ClientArgsSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=_CODE_MAX),
                         metadata={"description": "the text a scanner or camera decoded"})


class ImageFormSchema(ClientArgsSchema):
    pass


class VerificationSchema(Strict):
    class Meta:
        unknown = "include"

    verdict = fields.String(validate=validate.OneOf(
        ["genuine", "counterfeit", "suspect", "recalled", "expired", "unknown", "unverifiable", "unreadable"]))
    reasons = fields.List(fields.Dict())
    code = fields.Dict(allow_none=True)
    product = fields.Dict(allow_none=True)
    producer = fields.Dict(allow_none=True)
    batch = fields.Dict(allow_none=True)
    scans = fields.Dict(allow_none=True)


class ImageVerificationSchema(Strict):
    verdict = fields.String(metadata={"description": "the most serious of the codes' verdicts; `unreadable` when the photo "
                                                     "holds none"})
    reasons = fields.List(fields.Dict(), metadata={"description": "why the photo as a whole has its verdict "
                                                                  "(`NO_CODE_FOUND`)"})
    codes = fields.List(fields.Nested(VerificationSchema), metadata={"description": "each code found, with its "
                                                                                    "own verdict"})


_VERIFY_ARGS = VerifyArgsSchema(unknown=EXCLUDE)


def _query_args() -> dict:
    """The query string through the schema instance built once at import: webargs builds a
    schema per request, a fifth of this hot endpoint's time (bench/http_load.py --profile).
    The common request (a code, perhaps a client id, both within their lengths) is let through
    without the schema; anything else, and every error message, is the schema's."""
    values = request.args.to_dict()
    code, client_id = values.get("code"), values.get("client_id")
    if (code and len(code) <= _CODE_MAX and (client_id is None or len(client_id) <= _CLIENT_MAX)
            and values.keys() <= _PLAIN_KEYS):
        return values
    try:
        return _VERIFY_ARGS.load(values)
    except ValidationError as exc:
        messages = {"query": exc.messages}
        raise ApiError(422, "VALIDATION_FAILED", "the request does not match the schema: " + summary(messages),
                       fields=messages) from None


@bp.route("/verify", methods=["GET"])
@rate_limit(config_limit("VERIFY_RATE_LIMIT"), scope="verify")  # shared with the pages' checks
@bp.doc(parameters=[{"in": "query", "schema": VerifyArgsSchema}])
@bp.response(200, VerificationSchema)
def verify_text():
    """Verdict for a code the client has already decoded."""
    args = _query_args()
    verification_reader()
    result = verifier().verify_text(args["code"], context=scan_context("api", args))
    return jsonify(verification_json(result))


@bp.route("/verify/image", methods=["POST"])
@rate_limit(config_limit("VERIFY_RATE_LIMIT"), scope="verify-image")
@bp.arguments(ImageFormSchema, location="form", content_type="multipart/form-data")
@bp.response(200, ImageVerificationSchema)
@bp.doc(requestBody={"content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "string", "format": "binary"}, "client_id": {"type": "string"},
                   "lat": {"type": "number"}, "lon": {"type": "number"}}}}}})
def verify_photo(form):
    """Every code found in a photo (max 10 MiB, 50 megapixels), each with its verdict."""
    upload = request.files.get("image")
    if upload is None:
        raise ApiError(400, "IMAGE_MISSING", "send the photo as the multipart form field 'image'")
    verification_reader()
    try:  # an empty file too: load_image says IMAGE_EMPTY (400)
        result = verify_image(verifier(), upload.read(), context=scan_context("image", form),
                              max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageRejected as exc:
        raise ApiError(image_status(exc), exc.code.value, exc.message) from None
    return jsonify(image_verification_json(result))

