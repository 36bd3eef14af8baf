"""Schemas of the portal API: accounts, tokens, inspections, cases, exports, flagged serials, keys."""

from __future__ import annotations

from marshmallow import fields, validate

from registry.accounts import MAX_TOKEN_DAYS, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH
from registry.cases import STATUSES
from registry.exports import EPCIS_EVENTS
from registry.services import Role

from app.api.schemas import MAX_OFFSET, Strict, UtcDateTime

ROLES = [r.value for r in Role]


class Open(Strict):
    class Meta:
        ordered = True
        unknown = "include"


# -- accounts -------------------------------------------------------------------------------------
class UserInSchema(Strict):
    username = fields.String(required=True, validate=validate.Length(min=2, max=100))
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    producer_id = fields.String(metadata={"description": "producer staff only: the producer they work for"})
    display_name = fields.String(validate=validate.Length(max=200))


class UserSchema(Strict):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    role = fields.String()
    producer_id = fields.String(allow_none=True)
    active = fields.Boolean()
    locked_until = fields.String(allow_none=True)
    created_at = fields.String()
    last_login_at = fields.String(allow_none=True)


class UserListSchema(Strict):
    items = fields.List(fields.Nested(UserSchema))


# -- tokens ---------------------------------------------------------------------------------------
class TokenInSchema(Strict):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    producer_id = fields.String(metadata={"description": "producer tokens: the producer (a producer's own by default)"})
    label = fields.String(validate=validate.Length(max=100), metadata={"description": "who or what the token is for"})
    days = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_TOKEN_DAYS),
                          metadata={"description": "days until it expires (default 90); a token made by a token "
                                                   "expires no later than that token (see expires_at)"})


class TokenSchema(Strict):
    id = fields.Integer()
    role = fields.String()
    producer_id = fields.String(allow_none=True)
    label = fields.String()
    created_at = fields.String()
    expires_at = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(metadata={"description": "the bearer token: shown this once, stored only hashed"})


class TokenListSchema(Strict):
    items = fields.List(fields.Nested(TokenSchema))


# -- inspections ----------------------------------------------------------------------------------
class InspectionInSchema(Strict):
    place = fields.String(validate=validate.Length(max=300))
    lat = fields.Float(validate=validate.Range(-90, 90))
    lon = fields.Float(validate=validate.Range(-180, 180))


class CheckSchema(Strict):
    id = fields.Integer()
    at = fields.String()
    verdict = fields.String()
    offline_verdict = fields.String(allow_none=True)
    result = fields.Dict()
    photo_sha256 = fields.String(allow_none=True)
    media_type = fields.String(allow_none=True)
    offline = fields.Boolean()


class InspectionSchema(Strict):
    id = fields.Integer()
    inspector = fields.String()
    place = fields.String()
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)
    started_at = fields.String()
    closed_at = fields.String(allow_none=True)
    checks = fields.List(fields.Nested(CheckSchema))


class InspectionListArgsSchema(Strict):
    open = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class InspectionListSchema(Strict):
    items = fields.List(fields.Nested(InspectionSchema))


class CheckInSchema(Strict):
    """A JSON check: the server verifies ``code``; with ``offline`` the browser's ``result`` and
    ``checked_at`` are kept beside the server's own answer."""

    code = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    offline = fields.Boolean(load_default=False)
    result = fields.Dict(metadata={"description": "offline checks: the verification JSON the browser answered"})
    checked_at = UtcDateTime(metadata={"description": "offline checks: when the browser checked (RFC 3339)"})
    photo = fields.String(metadata={"description": "optional photo, base64 (the bytes decide its type)"})
    queue_id = fields.String(validate=validate.Length(min=1, max=32), metadata={
        "description": "offline checks: the client's own id for the check (1 to 32 letters, digits, - or _); the "
                       "same check sent again (a retry after a lost answer) is kept once and answered as kept"})


class CheckResultSchema(CheckSchema):
    pass


# -- cases ----------------------------------------------------------------------------------------
class CaseListArgsSchema(Strict):
    status = fields.String(validate=validate.OneOf(STATUSES))
    producer_id = fields.String()
    assigned_to = fields.String()
    query = fields.String(data_key="q", validate=validate.Length(max=100), metadata={
        "description": "cases whose number, seller, place, link, GTIN, lot or serial holds this (case ignored)"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class CaseSchema(Open):
    case_number = fields.String()
    status = fields.String()
    assigned_to = fields.String(allow_none=True)
    gtin = fields.String(allow_none=True)
    lot = fields.String(allow_none=True)
    serial = fields.String(allow_none=True)
    producer_id = fields.String(allow_none=True)
    verdict = fields.String(allow_none=True)


class CaseListSchema(Strict):
    items = fields.List(fields.Nested(CaseSchema))


class TransitionInSchema(Strict):
    to = fields.String(required=True, validate=validate.OneOf(STATUSES))
    text = fields.String(validate=validate.Length(max=10_000), metadata={
        "description": "why: required to move to `confirmed` or `dismissed` (422 `FIELD_REQUIRED` without it)"})
    from_ = fields.String(data_key="from", validate=validate.OneOf(STATUSES), metadata={
        "description": "the status the case had when the move was decided: once it has moved on, the move is "
                       "refused (409 `BAD_TRANSITION`) instead of undoing someone else's"})


class AssignInSchema(Strict):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "a portal account as `user:<username>`, which must be an active inspector's or the "
                       "authority's (422 `UNKNOWN_ASSIGNEE`), or any other name, such as a team with no "
                       "account (`Đội QLTT số 1`), taken as written"})
    text = fields.String(validate=validate.Length(max=10_000))


class NoteInSchema(Strict):
    text = fields.String(validate=validate.Length(max=10_000))


class NoteSchema(Strict):
    id = fields.Integer()
    author = fields.String()
    at = fields.String()
    text = fields.String()
    status_from = fields.String(allow_none=True)
    status_to = fields.String(allow_none=True)
    attachment = fields.Dict(allow_none=True)
    event = fields.Dict(allow_none=True, metadata={
        "description": "what the system did, apart from what a person wrote: `{\"kind\": \"assigned\", "
                       "\"detail\": assignee}` or `{\"kind\": \"published\", \"detail\": publication id}`"})


class NoteListSchema(Strict):
    items = fields.List(fields.Nested(NoteSchema))


class PublishCaseInSchema(Strict):
    name = fields.String(validate=validate.Length(max=200),
                         metadata={"description": "person or business; defaults to the report's seller"})
    tax_code = fields.String(validate=validate.Length(max=32))
    product = fields.String(validate=validate.Length(max=300))
    place = fields.String(validate=validate.Length(max=300))
    title = fields.String(validate=validate.Length(max=300))
    body = fields.String(validate=validate.Length(max=10_000))
    decision_ref = fields.String(validate=validate.Length(max=100))
    decided_on = fields.Date()


# -- exports, flagged serials, producers' batches and keys -----------------------------------------
class EpcisArgsSchema(Strict):
    since = UtcDateTime(metadata={"description": "events at or after this time (RFC 3339)"})
    until = UtcDateTime(metadata={"description": "events before this time (RFC 3339)"})
    limit = fields.Integer(load_default=10_000, validate=validate.Range(min=1, max=100_000))
    events = fields.String(load_default="all", validate=validate.OneOf(list(EPCIS_EVENTS)),
                           metadata={"description": "which events: all (the default), scans, recalls, registrations "
                                                    "(commissioning) or corrections"})
    nextPageToken = fields.String(validate=validate.Length(max=200),  # noqa: N815 (EPCIS 2.0's name)
                                  metadata={"description": "where the previous page ended (its GS1-Next-Page-Token)"})


class PageArgsSchema(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class BatchListArgsSchema(PageArgsSchema):
    query = fields.String(data_key="q", load_default="", validate=validate.Length(max=100), metadata={
        "description": "batches whose lot, GTIN or product name holds this (case ignored)"})


class FlaggedListSchema(Strict):
    items = fields.List(fields.Dict())


class FlagClearInSchema(Strict):
    gtin = fields.String(required=True, validate=validate.Length(min=1, max=14))
    lot = fields.String(required=True, validate=validate.Length(min=1, max=20))
    serial = fields.String(required=True, validate=validate.Length(min=1, max=20))
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                         metadata={"description": "what the inspector checked, kept in the audit log"})


class FlagClearedSchema(Strict):
    gtin = fields.String()
    lot = fields.String()
    serial = fields.String()
    cleared = fields.String(metadata={"description": "the reason code of the flag cleared"})
    flag_cleared_at = fields.String()
    scans = fields.Dict()
    cases = fields.List(fields.String(), metadata={"description": "the open report cases about this unit, each "
                                                                  "of which got the note (event flag_cleared)"})


class ItemListSchema(Strict):
    items = fields.List(fields.Dict())


class PublishedSchema(Open):
    """The publication made from a case (see ``/violators``)."""

    id = fields.Integer()
    kind = fields.String()
    record = fields.Dict()
    log_index = fields.Integer()


class ProducerKeySchema(Strict):
    kid = fields.String()
    public_key = fields.String()
    status = fields.String()
    custodial = fields.Boolean()
    gs1_prefixes = fields.List(fields.String())
    not_before = fields.String()
    not_after = fields.String()
    compromised_at = fields.String(allow_none=True)
    in_use = fields.Boolean()
    log_index = fields.Integer()
    certificate = fields.Dict()


class ProducerKeyListSchema(Strict):
    items = fields.List(fields.Nested(ProducerKeySchema))


__all__ = [n for n in dir() if n.endswith("Schema")]
