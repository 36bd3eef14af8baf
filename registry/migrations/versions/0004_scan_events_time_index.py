"""scan events: an index in time order for the exports, none by batch

The EPCIS export pages through scan events in (at, id) order; without an index each page read
the whole table (a top-N sort over 10 million events, bench/national.py). No query reads the
events by batch (a batch's counts are its summary counters), so that index goes: one index
entry per event either way. On PostgreSQL the new index is built without blocking writers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:05:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index('ix_scan_events_at_id', 'scan_events', ['at', 'id'], postgresql_concurrently=True)
            op.drop_index('ix_scan_events_batch_id', 'scan_events', postgresql_concurrently=True)
    else:
        op.create_index('ix_scan_events_at_id', 'scan_events', ['at', 'id'])
        op.drop_index('ix_scan_events_batch_id', 'scan_events')


def downgrade() -> None:
    op.create_index('ix_scan_events_batch_id', 'scan_events', ['batch_id'])
    op.drop_index('ix_scan_events_at_id', 'scan_events')
