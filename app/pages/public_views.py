"""Public lists: the authority's consumer warnings and confirmed violators, and recalled batches."""

from __future__ import annotations

from flask import render_template, request

from app.pages import bp
from app.services import db_session, publication_service
from registry.recalls import recalled_batches


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


@bp.route("/recalls")
def recalls():
    """Batches their producer or the authority recalled: what not to use, newest first."""
    query = (request.args.get("q") or "").strip()[:200]
    items = recalled_batches(db_session(), query=query, limit=100)
    return render_template("pages/recalls.html", items=items, query=query)
