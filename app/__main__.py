"""``python -m app``: the project's command line."""

from flask.cli import FlaskGroup

from app import create_app


def main() -> None:
    FlaskGroup(create_app=lambda: create_app(), add_default_commands=True)(prog_name="python -m app")


if __name__ == "__main__":
    main()
