"""indexes in time order for the EPCIS export's registrations, corrections and recalls

The EPCIS export reads each kind of event in the order of an index from the page's position, so a
page costs the same however many rows came before it (migration 0004 did it for scan events).
Registrations (commissioning events) are read from batches in (created_at, id) order, corrections
from batch_versions in (superseded_at, id) order, and recalls, which had only an index by batch,
in (at, id) order. On PostgreSQL the indexes are built without blocking writers.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 09:00:00
"""
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_batches_created_at_id', 'batches', ['created_at', 'id']),
    ('ix_batch_versions_superseded_at_id', 'batch_versions', ['superseded_at', 'id']),
    ('ix_recalls_at_id', 'recalls', ['at', 'id']),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            for name, table, columns in INDEXES:
                op.create_index(name, table, columns, postgresql_concurrently=True)
    else:
        for name, table, columns in INDEXES:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in INDEXES:
        op.drop_index(name, table)
