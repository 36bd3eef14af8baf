"""``python -m app user ...``: portal accounts from the command line (bootstrap the first authority)."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from registry.accounts import BOOTSTRAP, AccountService
from registry.errors import RegistryError
from registry.services import Role

from app.api.portal_schemas import UserInSchema
from app.cli import _error, _fail, _options, stdin_line
from app.text_input import refuse_nul

__all__ = ["register_accounts_cli"]


def _session():
    return current_app.extensions["session_factory"]()


def register_accounts_cli(app: Flask) -> None:
    user = AppGroup("user", help="Portal accounts.")

    def new_password(from_stdin: bool) -> str:
        """A password read from stdin's first line or prompted twice, never an argument."""
        if from_stdin:  # UTF-8, strictly: the portal's login form sends the password so
            password = stdin_line("password", "BAD_PASSWORD")
        elif not sys.stdin.isatty():  # a script, cron: no one to ask (click had printed "Aborted!")
            raise _error("PASSWORD_REQUIRED", "no terminal to ask for the password on: give it as the first line "
                         "of stdin with --password-stdin")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            refuse_nul(password, "password")  # the portal refuses it: it could never be typed there
        except RegistryError as exc:
            _fail(exc)
        return password

    def change(username: str, step, said: str) -> None:
        """``step(service, username)`` as the bootstrap authority, committed; ``said`` once done."""
        with _session() as session:
            try:
                done = step(AccountService(session), username)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(said.format(username=done.username))

    @user.command("create")
    @click.option("--username", required=True)
    @click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
    @click.option("--producer", "producer_id", default=None, help="producer id (producer staff)")
    @click.option("--name", "display_name", default="", help="the person's name, as shown in the portal")
    @click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
    def user_create(username: str, role: str, producer_id: str | None, display_name: str,
                    password_stdin: bool) -> None:
        """Create an account; the password is prompted for (or read from stdin), never an argument."""
        password = new_password(password_stdin)
        # The API's schema; the password's length is the registry's PASSWORD_TOO_SHORT or _TOO_LONG
        data = _options(UserInSchema(exclude=("password",)),
                        {"username": username, "role": role, "producer_id": producer_id, "display_name": display_name},
                        {"producer_id": "--producer", "display_name": "--name"})
        with _session() as session:
            try:
                created = AccountService(session).create_user(BOOTSTRAP, password=password, **data)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(f"user {created.username} created (role {created.role}"
                       + (f", producer {created.producer_id}" if created.producer_id else "") + ")")

    @user.command("reset-password")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="read the new password from the first line of stdin")
    def user_reset_password(username: str, password_stdin: bool) -> None:
        """Give an account a new password (its owner forgot it, or it leaked): its sessions end at
        their next click and a lock-out is lifted. Prompted for (or read from stdin)."""
        with _session() as session:  # an unknown account is said before a password is asked for
            if AccountService(session).by_username(username) is None:
                raise _error("USER_UNKNOWN", f"no user {username}")
        password = new_password(password_stdin)
        change(username, lambda service, name: service.change_password(BOOTSTRAP, name, old_password=None,
                                                                        new_password=password),
               "user {username}: password reset; give it to its owner in person")

    @user.command("unlock")
    @click.argument("username")
    def user_unlock(username: str) -> None:
        """Lift a lock-out after repeated failed logins."""
        change(username, lambda service, name: service.unlock(BOOTSTRAP, name), "user {username} unlocked")

    @user.command("deactivate")
    @click.argument("username")
    def user_deactivate(username: str) -> None:
        """Deactivate an account: it can no longer log in."""
        change(username, lambda service, name: service.deactivate(BOOTSTRAP, name), "user {username} deactivated")

    @user.command("reactivate")
    @click.argument("username")
    def user_reactivate(username: str) -> None:
        """Let a deactivated account log in again (its old sessions stay ended)."""
        change(username, lambda service, name: service.reactivate(BOOTSTRAP, name), "user {username} reactivated")

    app.cli.add_command(user)
