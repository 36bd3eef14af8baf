"""clone detection counts networks: scan_events.network_hash, serials.last_network

A verification records the salted hash of the network its client's address belongs to (its /24
for IPv4, its /48 for IPv6). Clone detection needs more than one network: distinct client ids
alone can be invented by one client, and two places said by one network prove no travel.
Events recorded before have no network (NULL), and count for none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 13:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('network_hash', sa.String(length=32), nullable=True))
    with op.batch_alter_table('serials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_network', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('serials', schema=None) as batch_op:
        batch_op.drop_column('last_network')
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.drop_column('network_hash')
