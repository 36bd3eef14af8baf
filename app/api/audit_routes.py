"""The audit trail, read by the authority: who did what to which thing, newest first."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from marshmallow import fields, validate

from registry.audit import ACTIONS, MAX_FILTER_LENGTH, MAX_PAGE_SIZE, AuditQuery
from registry.services import Role

from app.api import bp
from app.api.schemas import Strict, UtcDateTime
from app.auth import current_actor, require_roles
from app.services import audit_trail, db_session

__all__ = ["audit_events"]

BEARER = [{"bearerAuth": []}]


class AuditArgsSchema(Strict):
    actor = fields.String(validate=validate.Length(max=MAX_FILTER_LENGTH),
                          metadata={"description": "who acted, exactly as the events name them (`user:alice`, "
                                                   "`token:12`, `system`)"})
    action = fields.String(validate=validate.OneOf(ACTIONS), metadata={"description": "what was done"})
    target = fields.String(validate=validate.Length(max=MAX_FILTER_LENGTH),
                           metadata={"description": "what it was done to, exactly (`GTIN/lot`, `user:alice`, a case "
                                                    "number...)"})
    since = UtcDateTime(metadata={"description": "events at or after this time (RFC 3339)"})
    until = UtcDateTime(metadata={"description": "events before this time (RFC 3339)"})
    before = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1),
                            metadata={"description": "only events older than this one: the previous page's "
                                                     "`next_before`"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class AuditEventSchema(Strict):
    id = fields.Integer()
    at = fields.String()
    actor = fields.String()
    actor_label = fields.String(allow_none=True, metadata={"description": "a token actor's label"})
    action = fields.String()
    target = fields.String()
    detail = fields.Dict()


class AuditPageSchema(Strict):
    items = fields.List(fields.Nested(AuditEventSchema))
    next_before = fields.Integer(allow_none=True)


@bp.route("/audit-events", methods=["GET"])
@require_roles(Role.AUTHORITY)
@bp.doc(security=BEARER)
@bp.arguments(AuditArgsSchema, location="query")
@bp.response(200, AuditPageSchema)
def audit_events(args):
    """The audit trail (authority), newest first, a page of ``limit`` events at a time. While older
    events remain, ``next_before`` (and a ``Link: <...>; rel="next"`` header) gives the next page:
    paging by position, so events written meanwhile neither shift nor repeat one."""
    query = AuditQuery.of(args)
    page = audit_trail().search(current_actor(), query, limit=args["limit"], before=args.get("before"))
    db_session().rollback()
    response = jsonify({"items": page.events, "next_before": page.next_before})
    if page.next_before is not None:
        following = {k: v for k, v in request.args.items() if k != "before"} | {"before": page.next_before}
        next_url = current_app.config["BASE_URL"] + url_for("api.audit_events", **following)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response
