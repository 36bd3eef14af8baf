"""``python -m app publish warning|violator|withdraw``: the authority's public lists from the CLI."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from registry.errors import RegistryError
from registry.publications import PublicationService
from registry.services import SYSTEM, Registry

from app.cli import _fail, _options, _refuse_impossible_id

__all__ = ["register_publication_cli"]


def _service(session) -> PublicationService:
    registry = Registry(session, keystore=current_app.extensions["keystore"], base_url=current_app.config["BASE_URL"])
    return PublicationService(session, authority=registry.authority)


def _publish(kind: str, **values) -> None:
    with current_app.extensions["session_factory"]() as session:
        service = _service(session)
        try:
            item = service.publish(SYSTEM, kind=kind, **values)
        except RegistryError as exc:
            _fail(exc)
        session.commit()
        click.echo(f"{kind} {item.id} published at log index {item.log_index}", err=True)
        click.echo(json.dumps(service.view(item), ensure_ascii=False))


def _common(command):
    for option in reversed([
        click.option("--title", required=True),
        click.option("--body", default="", help="the text shoppers read"),
        click.option("--product", default=""),
        click.option("--place", default="", help="shop, market, page or area"),
        click.option("--decision-ref", default="", help="the decision's reference number"),
        click.option("--decided-on", default=None, help="YYYY-MM-DD"),
    ]):
        command = option(command)
    return command


def register_publication_cli(app: Flask) -> None:
    publish = AppGroup("publish", help="Authority: publish consumer warnings and confirmed violators.")

    @publish.command("warning")
    @_common
    @click.option("--name", default="", help="a business or person named in the warning")
    @click.option("--tax-code", default="")
    def publish_warning(**values) -> None:
        """Publish a consumer warning (signed and logged); prints it as JSON."""
        _publish("warning", **values)

    @publish.command("violator")
    @_common
    @click.option("--name", required=True, help="the person or business")
    @click.option("--tax-code", default="")
    def publish_violator(**values) -> None:
        """Publish a confirmed violator (signed and logged); prints it as JSON."""
        _publish("violator", **values)

    @publish.command("withdraw")
    @click.argument("publication_id", type=int)
    @click.option("--reason", required=True)
    def publish_withdraw(publication_id: int, reason: str) -> None:
        """Withdraw a publication: it stays stored and logged, and leaves the public lists."""
        from app.api.publication_routes import WithdrawInSchema

        reason = _options(WithdrawInSchema, {"reason": reason})["reason"]  # the API's rule: 1 to 1,000 characters
        _refuse_impossible_id(publication_id, "publication", "PUBLICATION_UNKNOWN")
        with current_app.extensions["session_factory"]() as session:
            try:
                _service(session).withdraw(SYSTEM, publication_id, reason=reason)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
        click.echo(f"publication {publication_id} withdrawn")

    app.cli.add_command(publish)
