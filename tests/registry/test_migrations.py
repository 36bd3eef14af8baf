"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.migrations import alembic_config
from registry.db import Base
from tests.conftest import schema_restored_on_failure


def test_migrations_match_the_models(app):
    engine = app.extensions["engine"]
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], diff


def test_a_migration_test_failing_midway_leaves_the_schema_at_head(app):
    """``schema_restored_on_failure`` (tests/conftest.py): when a test fails after moving the
    schema off head, PostgreSQL's schema (one database for the session) is rebuilt at head before
    the failure is raised, so the tests after it find their tables; an SQLite test's own copy is
    left as the failure left it."""
    engine = app.extensions["engine"]
    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with pytest.raises(RuntimeError, match="midway"):
        with schema_restored_on_failure(engine), engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0011")
            connection.commit()
            raise RuntimeError("failed midway")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        current, diff = context.get_current_revision(), compare_metadata(context, Base.metadata)
    if engine.dialect.name == "postgresql":
        assert current == head and diff == []
    else:
        assert current == "0011" and head != "0011"
