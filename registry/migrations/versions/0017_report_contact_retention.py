"""reports: when the shopper's contact was removed after the case closed

A report keeps the shopper's contact (what they typed to be reached) and the salted hash of their
client while inspectors may need them. ``reports forget-contacts`` removes both from cases closed
long enough ago (registry.retention.ContactRetention) and records when here, so that the case
says the contact was removed rather than that none was given.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 01:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_removed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('contact_removed_at')
