"""``python -m app keys rewrap``: the private keys encrypted again under a new KEY_PASSPHRASE."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.cli import _error, _fail, _session, stdin_line
from app.config import MIN_KEY_PASSPHRASE
from app.text_input import refuse_nul
from keys.encoding import utcnow
from keys.errors import KeyStoreError
from registry.audit import audit
from registry.errors import RegistryError
from registry.services import SYSTEM

__all__ = ["register_keys_cli"]


def register_keys_cli(app: Flask) -> None:
    keys = AppGroup("keys", help="The private keys at rest.")

    @keys.command("rewrap")
    def rewrap_command() -> None:
        """Encrypt every private key of the instance again under a new passphrase, read from the
        first line of stdin (never an argument: it would show in the process list). The current one
        is KEY_PASSPHRASE (or a development instance's generated one). Nothing is written unless
        every key opens; run it again after the servers restart on the new passphrase."""
        new = stdin_line("new passphrase", "BAD_PASSPHRASE")
        try:
            refuse_nul(new, "passphrase")  # an environment variable cannot hold one
        except RegistryError as exc:
            _fail(exc)
        if len(new) < MIN_KEY_PASSPHRASE:  # as APP_ENV=production asks of KEY_PASSPHRASE
            raise _error("BAD_PASSPHRASE", f"the new passphrase must have at least {MIN_KEY_PASSPHRASE} characters "
                                           f"(stdin's first line had {len(new)})")
        try:
            done = current_app.extensions["keystore"].rewrap(new.encode())
        except KeyStoreError as exc:
            raise _error("KEYS_UNAVAILABLE", str(exc)) from None
        with _session() as session:
            audit(session, utcnow(), SYSTEM, "keys.rewrap", "keys", rewrapped=len(done.rewrapped),
                  already=len(done.already))
            session.commit()
        click.echo(f"{len(done.rewrapped)} private key(s) encrypted under the new passphrase"
                   + (f", {len(done.already)} already were" if done.already else ""))
        if done.rewrapped:
            click.echo("now set KEY_PASSPHRASE to it on every server and restart them (until then a server still "
                       "on the old one signs with the keys it has open, and refuses the others: KEYS_UNAVAILABLE); "
                       "then run this again, for a key such a server made meanwhile. Backups made before keep "
                       "the old passphrase")

    app.cli.add_command(keys)
