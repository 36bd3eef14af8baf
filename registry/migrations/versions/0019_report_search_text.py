"""reports: the folded text the case search compares

Inspectors search cases by the seller, the place, the link, the lot or the serial. The search had
compared the columns with LIKE, which ignores letter case but not accents: "Shop Ca Phe" did not
find "Shop Cà Phê". ``search_text`` holds those fields folded (lower case, no diacritics:
registry.rules.fold), written with the report; the reports before this revision get theirs here,
1,000 at a time.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 20:00:00
"""
from alembic import op
import sqlalchemy as sa

from registry.models import report_search_text


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_reports = sa.table("reports", sa.column("id"), sa.column("seller"), sa.column("where_text"), sa.column("link"),
                    sa.column("lot"), sa.column("serial"), sa.column("search_text"))


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=False, server_default=''))
    connection = op.get_bind()
    after = 0
    while True:
        rows = connection.execute(
            sa.select(_reports.c.id, _reports.c.seller, _reports.c.where_text, _reports.c.link, _reports.c.lot,
                      _reports.c.serial).where(_reports.c.id > after).order_by(_reports.c.id).limit(1000)).all()
        if not rows:
            break
        connection.execute(sa.update(_reports).where(_reports.c.id == sa.bindparam("row_id")),
                           [{"row_id": row.id, "search_text": report_search_text(*row[1:])} for row in rows])
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('search_text')
