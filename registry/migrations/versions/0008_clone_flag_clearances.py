"""an inspector clears a clone flag: serials.flag_cleared_at, serials.clone_baseline

A serial flagged as a likely clone read "suspect" for good. An inspector who has looked into it
(the shop's display unit that every customer scans, a shopper on a VPN) can now clear the flag:
clone detection then counts again from that moment, the clients that had verified the serial
(``clone_baseline``) and the networks of the verifications before it no longer count. The
flagged serials list shows who cleared a flag that came back, and why, from the audit log: an
index on the audit events' target finds them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('serials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag_cleared_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('clone_baseline', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_audit_events_target_action', 'audit_events', ['target', 'action'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_events_target_action', table_name='audit_events')
    with op.batch_alter_table('serials', schema=None) as batch_op:
        batch_op.drop_column('clone_baseline')
        batch_op.drop_column('flag_cleared_at')
