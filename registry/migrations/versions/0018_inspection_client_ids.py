"""inspections: the browser's id of an inspection started offline, once per inspector

An inspector in a market's basement, with no signal, starts the inspection on the phone; it waits
there under an id of its own, with its checks, until the phone is back online and sends it. The id
is kept: the same inspector sending it again (a retry after an answer lost on the way, a second
tab) gets the inspection already made. Nullable: inspections started online, and every one
before, have none (NULLs are distinct in a unique index, in SQLite and PostgreSQL alike).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inspections', sa.Column('client_id', sa.String(length=32), nullable=True))
    op.create_index('uq_inspections_client_id', 'inspections', ['inspector', 'client_id'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_inspections_client_id', 'inspections')
    with op.batch_alter_table('inspections') as batch:
        batch.drop_column('client_id')
