"""the transparency log and the audit trail are append-only in the database itself

Triggers refuse every UPDATE and DELETE of ``log_entries``, ``log_nodes``, ``checkpoints`` and
``audit_events`` (and a TRUNCATE on PostgreSQL): the application only ever inserts into them
(``registry.append_only``). ``python -m app log verify`` reports a guard missing or disabled.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 19:30:00
"""
from alembic import op

from registry.append_only import create_statements, drop_statements


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
