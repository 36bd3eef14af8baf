"""inspection checks: when the registry took each one, and whether after the close

A check made offline reaches the registry when the phone is back online, possibly after the
inspection was closed (it is taken if it was made before the close). An evidence file issued after
it then holds a check more than one issued at the close: ``after_close`` lets the file say which
checks arrived after the close, and ``received_at`` when. The checks kept before this revision have
no time (NULL), and are not marked.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 20:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inspection_checks', sa.Column('received_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('inspection_checks', sa.Column('after_close', sa.Boolean(), nullable=False,
                                                 server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('inspection_checks') as batch:
        batch.drop_column('after_close')
        batch.drop_column('received_at')
