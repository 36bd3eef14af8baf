"""corrections of origin records: batch_versions

Records are immutable (DESIGN.md, "Trust model"): a correction is a new version, signed and
appended to the transparency log, that references the one it replaces. batches.record holds the
current version; each replaced one is kept here as it was signed, with its log index. Nothing to
move: every batch registered before is at its version 1.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 08:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'version', name='uq_batch_versions_batch_version')
    )


def downgrade() -> None:
    op.drop_table('batch_versions')
