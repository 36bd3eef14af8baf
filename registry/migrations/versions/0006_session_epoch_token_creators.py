"""sessions end at logout; API tokens remember who created them

``users.session_epoch`` counts the ends of a user's sessions (logout, deactivation): a portal
session keeps the value it logged in with, so a copied cookie stops working at logout.

``api_tokens.created_by_user_id`` / ``created_by_token_id``: revoking a token revokes the tokens
it created, and deactivating a person revokes the tokens that person created. Tokens created
before are given their creator from the audit trail (``token.create``, actor ``user:NAME`` or
``token:ID``), and the rules are applied to them once: a token created by a revoked token, or by
a deactivated person, is revoked; a token created by a token expires no later than it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:30:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_CREATED = ("SELECT a.actor FROM audit_events a WHERE a.action = 'token.create' "
            "AND a.target = 'token:' || CAST(api_tokens.id AS VARCHAR(20))")
_PARENT = "SELECT p.{column} FROM api_tokens p WHERE p.id = api_tokens.created_by_token_id"


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.add_column(sa.Column('created_by_token_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_api_tokens_created_by_user_id'), ['created_by_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_tokens_created_by_token_id'), ['created_by_token_id'], unique=False)
        batch_op.create_foreign_key('fk_api_tokens_created_by_user_id', 'users', ['created_by_user_id'], ['id'])
        batch_op.create_foreign_key('fk_api_tokens_created_by_token_id', 'api_tokens', ['created_by_token_id'],
                                    ['id'])

    op.execute(f"UPDATE api_tokens SET created_by_user_id = (SELECT u.id FROM users u WHERE 'user:' || u.username "
               f"= ({_CREATED})) WHERE ({_CREATED}) LIKE 'user:%'")
    op.execute(f"UPDATE api_tokens SET created_by_token_id = (SELECT p.id FROM api_tokens p WHERE 'token:' || "
               f"CAST(p.id AS VARCHAR(20)) = ({_CREATED})) WHERE ({_CREATED}) LIKE 'token:%'")
    bind = op.get_bind()
    now = datetime.now(timezone.utc)
    bind.execute(sa.text("UPDATE api_tokens SET revoked_at = :now WHERE revoked_at IS NULL AND created_by_user_id IN "
                         "(SELECT id FROM users WHERE active = :inactive)")
                 .bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True))),
                 {"now": now, "inactive": False})
    # One generation of created tokens per statement, until none is left to change.
    while bind.execute(sa.text(
            f"UPDATE api_tokens SET revoked_at = ({_PARENT.format(column='revoked_at')}) WHERE revoked_at IS NULL "
            "AND created_by_token_id IN (SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL)")).rowcount:
        pass
    while bind.execute(sa.text(
            f"UPDATE api_tokens SET expires_at = ({_PARENT.format(column='expires_at')}) WHERE EXISTS "
            "(SELECT 1 FROM api_tokens p WHERE p.id = api_tokens.created_by_token_id AND p.expires_at IS NOT NULL "
            "AND (api_tokens.expires_at IS NULL OR api_tokens.expires_at > p.expires_at))")).rowcount:
        pass


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_tokens_created_by_token_id', type_='foreignkey')
        batch_op.drop_constraint('fk_api_tokens_created_by_user_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_tokens_created_by_token_id'))
        batch_op.drop_index(batch_op.f('ix_api_tokens_created_by_user_id'))
        batch_op.drop_column('created_by_token_id')
        batch_op.drop_column('created_by_user_id')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
