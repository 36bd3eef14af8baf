"""the authority reads the audit trail: indexes on audit_events (actor, id) and (action, id)

The audit trail was written with every change but could only be read in the database. The
authority's portal page and ``GET /api/v1/audit-events`` read it newest first, by who acted or by
what was done: these indexes give such a page without walking the whole trail (logins alone add
an event each).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:40:00
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_events_actor_id', 'audit_events', ['actor', 'id'], unique=False)
    op.create_index('ix_audit_events_action_id', 'audit_events', ['action', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_events_action_id', table_name='audit_events')
    op.drop_index('ix_audit_events_actor_id', table_name='audit_events')
