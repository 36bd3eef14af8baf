"""inspection checks: the browser's id of a check made offline, once per inspection

A check made offline waits in the browser under an id of its own until it is sent. Two tabs of an
inspection, or a retry after an answer lost on the way, sent it twice and it was stored twice (and
twice in the signed evidence file). The id is now sent and kept: a second check with the same id in
the same inspection is the first one. Nullable: checks made online, and every check stored before,
have none (NULLs are distinct in a unique index, in SQLite and PostgreSQL alike).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 17:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inspection_checks', sa.Column('client_id', sa.String(length=32), nullable=True))
    op.create_index('uq_inspection_checks_client_id', 'inspection_checks', ['inspection_id', 'client_id'],
                    unique=True)


def downgrade() -> None:
    op.drop_index('uq_inspection_checks_client_id', 'inspection_checks')
    with op.batch_alter_table('inspection_checks') as batch:
        batch.drop_column('client_id')
