"""Consumer warnings and confirmed violators: public lists; publishing and withdrawing (authority)."""

from __future__ import annotations

from flask import jsonify
from marshmallow import fields, validate

from registry.publications import KINDS
from registry.services import Role

from app.api import bp
from app.api.schemas import MAX_OFFSET, Strict
from app.auth import current_actor, require_roles
from app.responses import listing_page
from app.services import db_session, publication_service

__all__ = ["list_warnings", "list_violators", "publish", "withdraw"]

BEARER = [{"bearerAuth": []}]


class ListArgsSchema(Strict):
    q = fields.String(validate=validate.Length(max=200),
                      metadata={"description": "search by product, name, tax code or place (accents optional)"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class PublicationSchema(Strict):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    name = fields.String()
    tax_code = fields.String()
    product = fields.String()
    place = fields.String()
    decision_ref = fields.String()
    decided_on = fields.String(allow_none=True)
    published_at = fields.String()
    withdrawn_at = fields.String(allow_none=True)
    record = fields.Dict(metadata={"description": "the signed publication object, as logged"})
    log_index = fields.Integer()


class PublicationListSchema(Strict):
    items = fields.List(fields.Nested(PublicationSchema))


class PublicationInSchema(Strict):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    body = fields.String(validate=validate.Length(max=10_000))
    name = fields.String(validate=validate.Length(max=200), metadata={"description": "person or business (violators)"})
    tax_code = fields.String(validate=validate.Length(max=32))
    product = fields.String(validate=validate.Length(max=300))
    place = fields.String(validate=validate.Length(max=300))
    decision_ref = fields.String(validate=validate.Length(max=100),
                                 metadata={"description": "the decision's reference number"})
    decided_on = fields.Date()


class WithdrawInSchema(Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


def _list(kind: str, args: dict):
    service = publication_service()
    return listing_page(lambda n: service.list(kind, query=args.get("q", ""), limit=n, offset=args["offset"]), args,
                        service.view)


@bp.route("/warnings", methods=["GET"])
@bp.arguments(ListArgsSchema, location="query")
@bp.response(200, PublicationListSchema)
def list_warnings(args):
    """Consumer warnings in force, newest first."""
    return _list("warning", args)


@bp.route("/violators", methods=["GET"])
@bp.arguments(ListArgsSchema, location="query")
@bp.response(200, PublicationListSchema)
def list_violators(args):
    """Confirmed violators in force, newest first."""
    return _list("violator", args)


@bp.route("/publications", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(PublicationInSchema)
@bp.response(201, PublicationSchema)
def publish(data):
    """Publish a warning or a violator: signed by the authority and appended to the transparency log."""
    service = publication_service(signing=True)
    item = service.publish(current_actor(), **data)
    db_session().commit()
    return jsonify(service.view(item)), 201


@bp.route("/publications/<int:publication_id>/withdraw", methods=["POST"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(WithdrawInSchema)
@bp.response(200, PublicationSchema)
def withdraw(data, publication_id):
    """Withdraw a publication: it stays stored and logged, and leaves the public lists."""
    service = publication_service(signing=True)
    item = service.withdraw(current_actor(), publication_id, reason=data["reason"])
    db_session().commit()
    return jsonify(service.view(item))
