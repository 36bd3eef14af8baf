"""The transparency log and the audit trail are append-only in the database itself.

The application only ever inserts into ``log_entries``, ``log_nodes``, ``checkpoints`` and
``audit_events``. Triggers (migration 0015) refuse every UPDATE and DELETE of their rows, and on
PostgreSQL a TRUNCATE, so a careless statement, a bug or an account that can write rows but not
change the schema cannot rewrite history. Whoever owns the schema can still lift a trigger:
``python -m app log verify`` reports a guard that is missing, disabled or changed (``unguarded``), and a
checkpoint kept outside (``--checkpoint``) catches a log cut back while it was lifted.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["APPEND_ONLY_TABLES", "create_statements", "drop_statements", "unguarded"]

APPEND_ONLY_TABLES = ("log_entries", "log_nodes", "checkpoints", "audit_events")

_PG_FUNCTION = "refuse_append_only_change"
_PG_BODY = ("\nBEGIN\n  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n"
            "    USING ERRCODE = 'restrict_violation';\nEND;\n")


def _sqlite_trigger(table: str, operation: str) -> str:
    return (f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END")


def _pg_triggers(table: str) -> dict[str, str]:
    return {f"{table}_append_only": f"BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW",
            f"{table}_no_truncate": f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT"}


def create_statements(dialect: str) -> list[str]:
    """The statements that put the guards in place (migration 0015)."""
    if dialect == "postgresql":
        statements = [f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql "
                      f"AS $${_PG_BODY}$$"]
        for table in APPEND_ONLY_TABLES:
            statements += [f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {_PG_FUNCTION}()"
                           for name, when in _pg_triggers(table).items()]
        return statements
    return [_sqlite_trigger(table, operation) for table in APPEND_ONLY_TABLES for operation in ("UPDATE", "DELETE")]


def drop_statements(dialect: str) -> list[str]:
    """The statements that take the guards away (the migration's downgrade)."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}"
                for table in APPEND_ONLY_TABLES for name in _pg_triggers(table)] + \
            [f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{operation}"
            for table in APPEND_ONLY_TABLES for operation in ("update", "delete")]


def unguarded(connection: Connection) -> list[str]:
    """What is wrong with the guards, one line per table or function; empty when all are in place."""
    problems: list[str] = []
    if connection.dialect.name == "postgresql":
        rows = connection.execute(text(
            "SELECT t.tgname, t.tgenabled, p.proname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid)")).all()
        found = {row.tgname: row for row in rows}
        for table in APPEND_ONLY_TABLES:
            for name in _pg_triggers(table):
                row = found.get(name)
                if row is None:
                    problems.append(f"{table}: trigger {name} is missing")
                elif row.tgenabled not in ("O", "A"):  # D: disabled; R: fires only on a replica
                    problems.append(f"{table}: trigger {name} is disabled")
                elif row.proname != _PG_FUNCTION:
                    problems.append(f"{table}: trigger {name} calls {row.proname}(), not {_PG_FUNCTION}()")
        body = connection.execute(text("SELECT prosrc FROM pg_proc WHERE proname = :name "
                                       "AND pg_function_is_visible(oid)"), {"name": _PG_FUNCTION}).scalar()
        if body is not None and body != _PG_BODY:
            problems.append(f"function {_PG_FUNCTION}() has been changed")
        return problems
    stored = dict(connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all())
    for statement in create_statements("sqlite"):
        name, table = statement.split()[2], statement.split()[6]
        if name not in stored:
            problems.append(f"{table}: trigger {name} is missing")
        elif stored[name] != statement:
            problems.append(f"{table}: trigger {name} has been changed")
    return problems
