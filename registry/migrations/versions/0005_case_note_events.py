"""case notes: what the system did, apart from what a person wrote

A case's assignment and its publication were written into the note's text in English
("assigned to ...", "published as a violator (publication N)"), which every page then showed as
it was. They are now an event and its detail, which each page names in its reader's language.
Notes written before keep their text as it is: a person may have written the same words.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('event_detail', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.drop_column('event_detail')
        batch_op.drop_column('event')
