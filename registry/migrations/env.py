"""Alembic environment: the registry's metadata; the connection comes from the caller or DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

import registry.models  # noqa: F401  (registers the tables)
from registry.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{os.path.abspath(os.environ.get('INSTANCE_DIR', 'instance'))}/registry.db"
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


run_migrations_online()
