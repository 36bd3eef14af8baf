"""``python -m app``: the project's command line."""

from flask import Flask
from flask.cli import FlaskGroup

from app import create_app
from app.config import ConfigError


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:  # the setting to fix, not a traceback (gunicorn prints it the same way)
        raise SystemExit(f"Error: {exc}") from None


def main() -> None:
    FlaskGroup(create_app=_create_app, add_default_commands=True)(prog_name="python -m app")


if __name__ == "__main__":
    main()
