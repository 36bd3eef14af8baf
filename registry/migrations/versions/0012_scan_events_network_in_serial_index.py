"""scan events: the serial's index carries the network (PostgreSQL)

Clone detection counts the networks of a unit's latest verifications when many clients have
checked it (registry.scans: _RECENT_NETWORKS, 200 events). Read through an index of (serial_id,
at) alone, each of those events is a heap page of its own, scattered across a table of millions:
192 buffers and 0.46 ms for one such read at 10 million events, against 10 buffers and 0.07 ms
once the index carries network_hash (INCLUDE: an index-only scan; bench/national.py, 2026-12-06).
The index grows from 301 to 734 MB at 10 million events. It replaces (serial_id, at), which it
serves as well (a serial's history for inspections). On PostgreSQL it is built without blocking
writers (7.5 s at 10 million events, built plainly); SQLite has no INCLUDE and keeps (serial_id,
at) under the new name.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:00:00
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index('ix_scan_events_serial_at_net', 'scan_events', ['serial_id', 'at'],
                            postgresql_include=['network_hash'], postgresql_concurrently=True)
            op.drop_index('ix_scan_events_serial_at', 'scan_events', postgresql_concurrently=True)
    else:
        op.create_index('ix_scan_events_serial_at_net', 'scan_events', ['serial_id', 'at'])
        op.drop_index('ix_scan_events_serial_at', 'scan_events')


def downgrade() -> None:
    op.create_index('ix_scan_events_serial_at', 'scan_events', ['serial_id', 'at'])
    op.drop_index('ix_scan_events_serial_at_net', 'scan_events')
