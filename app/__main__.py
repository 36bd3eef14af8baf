"""``python -m app``: the project's command line."""

from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError

from app import create_app
from app.config import ConfigError
from registry.errors import RegistryError


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:  # the setting to fix, not a traceback (gunicorn prints it the same way)
        raise SystemExit(f"Error: {exc}") from None


class _Cli(FlaskGroup):
    """The commands, with one refusal for what none of them caught: a registry error met on the
    way (a private key this server cannot open, ``KEYS_UNAVAILABLE``, in any command that signs),
    or the database's refusal (down, or a lock held past ``DB_LOCK_TIMEOUT_SECONDS``:
    ``DATABASE_UNAVAILABLE``), ends as every refusal does, ``Error: CODE: message``, not with a
    traceback."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's
        try:
            return super().invoke(ctx)
        except RegistryError as exc:
            from app.cli import _fail

            _fail(exc)
        except OperationalError as exc:  # the database down, or a lock held past DB_LOCK_TIMEOUT_SECONDS
            from app.cli import _error
            from app.errors import database_refusal

            detail = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
            raise _error("DATABASE_UNAVAILABLE", f"{database_refusal(exc)[0]} ({detail})") from exc


def main() -> None:
    _Cli(create_app=_create_app, add_default_commands=True)(prog_name="python -m app")


if __name__ == "__main__":
    main()
