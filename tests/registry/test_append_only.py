"""The log and the audit trail are append-only in the database itself (registry.append_only,
migration 0015): every UPDATE and DELETE of their rows is refused whoever sends it, a TRUNCATE too on
PostgreSQL; ``log verify`` says when a guard has been lifted and ``log guard`` puts it back."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.migrations import alembic_config
from registry.append_only import APPEND_ONLY_TABLES, create_statements, drop_statements, unguarded
from registry.services import SYSTEM
from tests.conftest import batch_data, schema_restored_on_failure

# One row of each table, as the world and a registration write them, and a change to it.
_ROW = {"log_entries": '"index" = 0', "log_nodes": "level = 0 AND \"index\" = 0",
        "checkpoints": "size = 1", "audit_events": "id = (SELECT min(id) FROM audit_events)"}
_CHANGE = {"log_entries": "kind = 'forged'", "log_nodes": "level = level",
           "checkpoints": "size = size", "audit_events": "actor = 'nobody'"}
_KEY = {"log_entries": '"index"', "log_nodes": 'level, "index"', "checkpoints": "size", "audit_events": "id"}


@pytest.fixture
def logged(registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()


def _rows(engine, table: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY {_KEY[table]}"))]


def _refused(engine, statement: str) -> str:
    with engine.connect() as connection, pytest.raises(DBAPIError) as exc:
        connection.execute(text(statement))
        connection.commit()
    return str(exc.value.orig)


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_rows_of_the_log_and_the_audit_trail_cannot_be_changed_or_deleted(app, logged, table):
    engine = app.extensions["engine"]
    before = _rows(engine, table)
    assert before  # rows to protect
    message = _refused(engine, f"UPDATE {table} SET {_CHANGE[table]} WHERE {_ROW[table]}")
    assert f"{table} is append-only: UPDATE refused" in message
    message = _refused(engine, f"DELETE FROM {table}")
    assert f"{table} is append-only: DELETE refused" in message
    if engine.dialect.name == "postgresql":
        assert f"{table} is append-only: TRUNCATE refused" in _refused(engine, f"TRUNCATE {table} CASCADE")
    assert _rows(engine, table) == before


def test_the_registry_still_appends_after_a_refused_change(app, registry, session, logged, world, client):
    engine = app.extensions["engine"]
    _refused(engine, "DELETE FROM log_entries")
    size = registry.log().size()
    registry.register_batch(SYSTEM, batch_data(lot="LOT-2"), producer_id=world.producer_id)
    session.commit()
    assert registry.log().size() == size + 1
    assert registry.log().verify_all(registry.authority.public_raw).ok
    session.rollback()  # an SQLite transaction holds the write lock: end it before the request
    assert client.get("/api/v1/batches/08936000010010/LOT-2").status_code == 200


# What the schema's owner can do to the guards, by dialect, and what ``unguarded`` then says.
_LIFTED = {
    "postgresql": (["DROP TRIGGER log_nodes_no_truncate ON log_nodes",
                    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
                    "CREATE OR REPLACE FUNCTION refuse_append_only_change() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END; $$"],
                   ["log_nodes: trigger log_nodes_no_truncate is missing",
                    "audit_events: trigger audit_events_append_only is disabled",
                    "function refuse_append_only_change() has been changed"]),
    "sqlite": (["DROP TRIGGER log_nodes_no_delete", "DROP TRIGGER audit_events_no_update",
                "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                "WHEN 0 BEGIN SELECT RAISE(ABORT, 'never'); END"],
               ["log_nodes: trigger log_nodes_no_delete is missing",
                "audit_events: trigger audit_events_no_update has been changed"]),
}


def test_unguarded_names_each_guard_missing_disabled_or_changed(app):
    engine = app.extensions["engine"]
    dialect = engine.dialect.name
    statements, said = _LIFTED[dialect]
    with engine.connect() as connection:
        assert unguarded(connection) == []
        for statement in statements:
            connection.execute(text(statement))
        assert unguarded(connection) == said
        for statement in drop_statements(dialect) + create_statements(dialect):
            connection.execute(text(statement))
        assert unguarded(connection) == []
        connection.commit()


def test_log_verify_fails_while_a_guard_is_lifted_and_log_guard_puts_it_back(app, runner, logged):
    assert runner.invoke(args=["log", "verify"]).exit_code == 0
    engine = app.extensions["engine"]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only"))
        else:
            connection.execute(text("DROP TRIGGER log_entries_no_update"))
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code != 0 and "log OK" not in out.output
    problem = "disabled" if engine.dialect.name == "postgresql" else "missing"
    trigger = "log_entries_append_only" if engine.dialect.name == "postgresql" else "log_entries_no_update"
    assert f"UNGUARDED: log_entries: trigger {trigger} is {problem}" in out.output
    assert "Error: LOG_UNGUARDED: the log and the audit trail are not append-only" in out.output
    out = runner.invoke(args=["log", "guard"])
    assert out.exit_code == 0 and "append-only again" in out.output, out.output
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code == 0 and "log OK" in out.output, out.output
    assert "UPDATE refused" in _refused(engine, "UPDATE log_entries SET kind = 'forged'")


def test_the_migration_puts_the_guards_in_place_and_takes_them_away(app, logged):
    engine = app.extensions["engine"]
    cfg = alembic_config()
    with schema_restored_on_failure(engine), engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0014")
        connection.commit()
        assert len(unguarded(connection)) == 2 * len(APPEND_ONLY_TABLES)  # two triggers a table
        connection.execute(text("UPDATE audit_events SET actor = actor"))  # allowed without the guards
        connection.commit()
        command.upgrade(cfg, "head")
        connection.commit()
        assert unguarded(connection) == []
    assert "UPDATE refused" in _refused(engine, "UPDATE audit_events SET actor = actor")


def test_an_account_that_does_not_own_the_schema_runs_the_service_and_cannot_lift_a_guard(app, world, tmp_path):
    """The README's production advice, on PostgreSQL: the service under a role granted only reads and
    writes of rows verifies and registers; that role cannot disable or drop a trigger."""
    from sqlalchemy.engine import make_url

    from app import create_app
    from tests.conftest import PG_URL, TEST_PASSPHRASE

    if not PG_URL:
        pytest.skip("roles are PostgreSQL's (TEST_DATABASE_URL)")
    engine = app.extensions["engine"]
    role = "pov_test_rows_only"
    with engine.begin() as connection:
        if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
            connection.execute(text(f"DROP OWNED BY {role}"))  # left by a run that was killed
            connection.execute(text(f"DROP ROLE {role}"))
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
        connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    restricted = make_url(PG_URL).set(username=role).render_as_string(hide_password=False)
    service = create_app({**{k: app.config[k] for k in ("INSTANCE_DIR", "BASE_URL", "SCAN_SALT", "SECRET_KEY")},
                          "KEY_PASSPHRASE": TEST_PASSPHRASE, "RATE_LIMITS": "off", "TESTING": "1",
                          "DATABASE_URL": restricted})
    try:
        client = service.test_client()
        created = client.post("/api/v1/batches", json=batch_data(lot="ROLE-1"), headers=world.auth("producer"))
        assert created.status_code == 201, created.get_json()
        code = created.get_json()["url"]
        answer = client.get(code.replace(app.config["BASE_URL"], ""), headers={"Accept": "application/json"})
        assert answer.status_code == 200 and answer.get_json()["verdict"] == "genuine", answer.get_json()
        with service.extensions["engine"].connect() as connection:
            assert unguarded(connection) == []
            for statement, refusal in (("UPDATE audit_events SET actor = actor", "append-only: UPDATE refused"),
                                       ("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only",
                                        "must be owner of table log_entries"),
                                       ("DROP TRIGGER audit_events_append_only ON audit_events",
                                        "must be owner of relation audit_events"),
                                       ("TRUNCATE checkpoints", "permission denied for table checkpoints")):
                with pytest.raises(DBAPIError, match=refusal):
                    connection.execute(text(statement))
                connection.rollback()
        out = service.test_cli_runner().invoke(args=["log", "guard"])
        assert out.exit_code != 0 and "Traceback" not in out.output
        assert "Error: PERMISSION_DENIED: only the schema's owner can put the guards back (must be owner of" \
            in out.output, out.output
    finally:
        service.extensions["scan_writer"].close()
        service.extensions["read_engine"].dispose()
        service.extensions["engine"].dispose()
        with engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
