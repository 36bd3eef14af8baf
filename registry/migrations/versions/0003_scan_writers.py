"""scan writers' committed flush numbers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scan_writers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('scan_writers')
