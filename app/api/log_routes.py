"""The transparency log: checkpoints, inclusion and consistency proofs."""

from __future__ import annotations

from flask import jsonify

from registry.errors import NotFound

from app.api import bp
from app.api.schemas import (
    ConsistencyArgsSchema,
    ConsistencySchema,
    InclusionArgsSchema,
    InclusionSchema,
    SignedSchema,
)
from app.services import registry


def _latest_size() -> int:
    checkpoint = registry().log().latest_checkpoint()
    if checkpoint is None:
        raise NotFound("the log is empty: no checkpoint yet", code="LOG_EMPTY")
    return int(checkpoint["size"])


@bp.route("/log/checkpoint", methods=["GET"])
@bp.response(200, SignedSchema)
def checkpoint():
    """The latest signed checkpoint ``{"t":"checkpoint","size","root","timestamp"}``."""
    cp = registry().log().latest_checkpoint()
    if cp is None:
        raise NotFound("the log is empty: no checkpoint yet", code="LOG_EMPTY")
    return jsonify(cp)


@bp.route("/log/inclusion", methods=["GET"])
@bp.arguments(InclusionArgsSchema, location="query")
@bp.response(200, InclusionSchema)
def inclusion(args):
    """Inclusion proof of entry ``index`` in the tree of ``size`` (RFC 9162 2.1.3)."""
    size = args.get("size") or _latest_size()
    return jsonify(registry().log().inclusion(args["index"], size))


@bp.route("/log/consistency", methods=["GET"])
@bp.arguments(ConsistencyArgsSchema, location="query")
@bp.response(200, ConsistencySchema)
def consistency(args):
    """Consistency proof between the trees of sizes ``first`` and ``second`` (RFC 9162 2.1.4)."""
    second = args.get("second") or _latest_size()
    return jsonify(registry().log().consistency(args["first"], second))
