"""``python -m app audit``: the audit trail on the command line, for the operator of the registry."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app

from registry.audit import AuditQuery, AuditTrail
from registry.errors import RegistryError
from registry.services import SYSTEM

from app.cli import _fail, _options

__all__ = ["register_audit_cli"]


def register_audit_cli(app: Flask) -> None:
    @app.cli.command("audit")
    @click.option("--actor", default=None, help="who acted, exactly (user:alice, token:12, system)")
    @click.option("--action", default=None, help="what was done (batch.recall, user.login...)")
    @click.option("--target", default=None, help="what it was done to, exactly (GTIN/lot, user:alice...)")
    @click.option("--since", default=None, help="events at or after this RFC 3339 time")
    @click.option("--until", default=None, help="events before this RFC 3339 time")
    @click.option("--before", default=None, help="events older than this event id (the last line's next_before)")
    @click.option("--limit", default="50", show_default=True, help="events to print, up to 200")
    def audit_command(**options: str | None) -> None:
        """Print the audit trail, newest first, one JSON event per line; while older events remain,
        a last line {"next_before": ID} says what to pass as --before for them. The options are
        checked as GET /api/v1/audit-events checks its parameters."""
        from app.api.audit_routes import AuditArgsSchema

        args = _options(AuditArgsSchema, options)
        query = AuditQuery.of(args)
        with current_app.extensions["session_factory"]() as session:
            try:
                page = AuditTrail(session).search(SYSTEM, query, limit=args["limit"], before=args.get("before"))
            except RegistryError as exc:
                _fail(exc)
            session.rollback()
        for event in page.events:
            click.echo(json.dumps(event, ensure_ascii=False))
        if page.next_before is not None:
            click.echo(json.dumps({"next_before": page.next_before}))
