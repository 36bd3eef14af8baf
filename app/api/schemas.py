"""API request and response schemas: the one source for validation and the OpenAPI document."""

from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from keys.encoding import rfc3339
from registry.labels import MAX_LABELS_PER_SHEET
from registry.rules import MAX_ADDRESS_LENGTH, MAX_CERTIFICATION_TEXT, MAX_NAME_LENGTH, MAX_QUANTITY
from registry.services import MAX_CORRECTION_REASON, MAX_RECALL_REASON

__all__ = [n for n in dir() if n.endswith("Schema")]

#: The largest ``offset`` a listing takes: far past any list, and within the database's integers.
MAX_OFFSET = 10**9


class UtcDateTime(fields.AwareDateTime):
    """An RFC 3339 time with its zone, given to the registry in UTC: one that UTC cannot hold
    (``0001-01-01T00:00:00+14:00``) is a validation error, not an overflow deep inside."""

    def _serialize(self, value, attr, obj, **kwargs):  # noqa: ANN001, ANN202 (marshmallow's signature)
        """Out as the design's wire format: RFC 3339 UTC with ``Z`` (not ``+00:00``)."""
        return None if value is None else rfc3339(value)

    def _deserialize(self, value, attr, data, **kwargs):  # noqa: ANN001, ANN202 (marshmallow's signature)
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("the time is outside the years 1 to 9999 in UTC") from None


class Strict(Schema):
    class Meta:
        ordered = True


class ProducerInSchema(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    tax_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    gs1_prefixes = fields.List(fields.String(validate=validate.Regexp(r"^\d{4,12}$")), required=True,
                               validate=validate.Length(min=1, max=50))
    country = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{2}$"))


class ProducerSchema(Strict):
    id = fields.String()
    name = fields.String()
    tax_code = fields.String()
    gs1_prefixes = fields.List(fields.String())
    country = fields.String()
    created_at = UtcDateTime()


class KeyInSchema(Strict):
    public_key = fields.String(metadata={"description": "raw 32-byte Ed25519 public key, base64url; "
                                                        "omit to have the service make and keep the key"})
    gs1_prefixes = fields.List(fields.String(), metadata={"description": "omit for all of the producer's; "
                                                                         "an empty list is refused"})
    not_after = UtcDateTime()


class RotateInSchema(Strict):
    gs1_prefixes = fields.List(fields.String(), metadata={
        "description": "the new key's GS1 company prefixes, among the producer's; omit for those of its newest "
                       "active key (all the producer's when it has none); an empty list is refused"})


class CertificateSchema(Strict):
    class Meta:
        unknown = "include"


class KeySchema(Strict):
    kid = fields.String()
    public_key = fields.String()
    custodial = fields.Boolean()
    status = fields.String()
    certificate = fields.Dict(metadata={"description": "the signed producer-key object"})
    log_index = fields.Integer()


class RevokeInSchema(Strict):
    compromised_at = UtcDateTime(metadata={"description": "RFC 3339; defaults to now"})


class RevokedSchema(Strict):
    kid = fields.String()
    status = fields.String()
    compromised_at = fields.String()
    revoked_at = fields.String()


# The lengths of an origin record's text are the registry's (registry.rules), which holds every way in to them.
class ProductSchema(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))
    brand = fields.String(validate=validate.Length(max=MAX_NAME_LENGTH))
    category = fields.String(validate=validate.Length(max=MAX_NAME_LENGTH))


class FacilitySchema(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))
    address = fields.String(validate=validate.Length(max=MAX_ADDRESS_LENGTH))
    gln = fields.String()
    country = fields.String()


class CertificationSchema(Strict):
    scheme = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CERTIFICATION_TEXT))
    id = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CERTIFICATION_TEXT))


class BatchInSchema(Strict):
    gtin = fields.String()
    lot = fields.String()
    product = fields.Nested(ProductSchema)
    facility = fields.Nested(FacilitySchema)
    production_date = fields.String(metadata={"description": "YYYY-MM-DD"})
    expiry_date = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    quantity = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY))
    certifications = fields.List(fields.Nested(CertificationSchema))
    record = fields.Dict(metadata={"description": "a complete origin record signed by the producer's own key; "
                                                  "when given, the other fields are taken from it"})
    producer_id = fields.String(metadata={"description": "authority only: the producer the batch is for"})

    @validates_schema
    def _record_or_fields(self, data, **_kwargs):
        if "record" in data:
            return
        missing = [f for f in ("gtin", "lot", "product", "facility", "production_date") if f not in data]
        if missing:
            raise ValidationError({f: ["Missing data for required field."] for f in missing})


class CorrectionInSchema(BatchInSchema):
    """The whole corrected record (GTIN and lot may be left out; they and the expiry date cannot
    change) with the ``reason``, or a ``record`` signed by the producer's own key that carries its
    ``version``, ``supersedes`` and ``reason``."""

    class Meta:
        exclude = ("producer_id",)

    reason = fields.String(validate=validate.Length(min=1, max=MAX_CORRECTION_REASON),
                           metadata={"description": "why the record is corrected; logged with it, for good"})

    @validates_schema
    def _record_or_fields(self, data, **_kwargs):
        if "record" in data:
            if "reason" in data:
                raise ValidationError({"reason": ["A signed record carries its own reason."]})
            return
        missing = [f for f in ("product", "facility", "production_date", "reason") if f not in data]
        if missing:
            raise ValidationError({f: ["Missing data for required field."] for f in missing})


class LogRefSchema(Strict):
    index = fields.Integer()
    size = fields.Integer()
    path = fields.List(fields.String())
    checkpoint = fields.Dict()


class BatchCreatedSchema(Strict):
    record = fields.Dict()
    url = fields.String()
    log = fields.Nested(LogRefSchema)


class BatchVersionSchema(Strict):
    version = fields.Integer()
    record = fields.Dict()
    log = fields.Nested(LogRefSchema)
    superseded_at = fields.String()


class BatchSchema(Strict):
    record = fields.Dict()
    status = fields.String(validate=validate.OneOf(["active", "recalled", "expired"]),
                           metadata={"description": "as shoppers' verdicts call the batch: `expired` is an active "
                                                    "batch past its expiry date in Vietnam"})
    producer = fields.Dict()
    serial_count = fields.Integer()
    url = fields.String()
    log = fields.Nested(LogRefSchema)
    version = fields.Integer(metadata={"description": "1, or the number of the correction the record is"})
    versions = fields.List(fields.Nested(BatchVersionSchema),
                           metadata={"description": "the records corrections replaced, oldest first"})


class CorrectedSchema(Strict):
    record = fields.Dict()
    version = fields.Integer()
    url = fields.String()
    log = fields.Nested(LogRefSchema)


class PresignedCodeSchema(Strict):
    serial = fields.String(required=True, validate=validate.Length(min=1, max=20))
    s = fields.String(required=True, validate=validate.Length(min=1, max=200),
                      metadata={"description": "`{kid}.{signature}`: the unit's code signed by the producer's own key"})


class SerialsInSchema(Strict):
    count = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000),
                           metadata={"description": "serials for the registry to make and sign (a custodial key)"})
    codes = fields.List(fields.Nested(PresignedCodeSchema), validate=validate.Length(min=1, max=100_000),
                        metadata={"description": "unit codes the producer signed with a key it keeps: each checked "
                                                 "against that key, then registered as issued"})

    @validates_schema
    def _count_or_codes(self, data, **_kwargs):
        if ("count" in data) == ("codes" in data):
            raise ValidationError("give either count (the registry signs) or codes (signed by the producer's own key)",
                                  field_name="count")


class SerialSchema(Strict):
    serial = fields.String()
    url = fields.String()


class SerialsSchema(Strict):
    serials = fields.List(fields.Nested(SerialSchema))


class RecallInSchema(Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_RECALL_REASON))


class RecallSchema(Strict):
    gtin = fields.String()
    lot = fields.String()
    status = fields.String()
    record = fields.Dict()
    log = fields.Nested(LogRefSchema)


class InclusionArgsSchema(Strict):
    index = fields.Integer(required=True, validate=validate.Range(min=0))
    size = fields.Integer(validate=validate.Range(min=1), metadata={"description": "defaults to the latest checkpoint"})


class InclusionSchema(Strict):
    index = fields.Integer()
    size = fields.Integer()
    leaf = fields.Dict()
    path = fields.List(fields.String())


class ConsistencyArgsSchema(Strict):
    first = fields.Integer(required=True, validate=validate.Range(min=1))
    second = fields.Integer(validate=validate.Range(min=1), metadata={"description": "defaults to the latest checkpoint"})


class ConsistencySchema(Strict):
    first = fields.Integer()
    second = fields.Integer()
    path = fields.List(fields.String())


class SignedSchema(Strict):
    """A signed object; its members depend on ``t``."""

    class Meta:
        unknown = "include"

    t = fields.String()
    sig = fields.Dict()


class LabelArgsSchema(Strict):
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "png", "svg"]))
    serial = fields.String()
    stock = fields.String()
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET),
                            metadata={"description": "PDF: the first serial of this part (in issue order)"})
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LABELS_PER_SHEET),
                           metadata={"description": f"PDF: labels in this part, at most {MAX_LABELS_PER_SHEET:,}; "
                                                    "needed when the batch has more"})


__all__ = [n for n in dir() if n.endswith("Schema")] + ["MAX_OFFSET"]
