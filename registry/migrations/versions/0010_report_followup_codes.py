"""a shopper follows a report: reports.followup_hash

A shopper who reports a counterfeit was given a case number and could not see what became of the
report. Each new report now comes with a follow-up code, given once; only the SHA-256 of the case
number and the code is kept. Reports filed before have none (NULL) and are followed as before, by
quoting the case number to the authority.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 07:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followup_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('followup_hash')
