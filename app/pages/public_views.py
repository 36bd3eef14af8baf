"""Public lists published by the authority: consumer warnings and confirmed violators."""

from __future__ import annotations

from flask import render_template, request

from app.pages import bp
from app.services import publication_service


def _list(kind: str):
    query = (request.args.get("q") or "").strip()[:200]
    items = publication_service().list(kind, query=query, limit=100)
    return render_template("pages/publications.html", kind=kind, items=items, query=query)


@bp.route("/warnings")
def warnings():
    return _list("warning")


@bp.route("/violators")
def violators():
    return _list("violator")
