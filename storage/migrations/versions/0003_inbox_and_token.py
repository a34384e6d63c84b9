"""message log as the inbox (dedupe key, status, lease), shared access token

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('payload', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_message_log_dedupe_key'), ['dedupe_key'])
        batch_op.create_index('ix_message_log_status_lease', ['status', 'lease_until'], unique=False)

    op.create_table('wechat_tokens',
    sa.Column('appid', sa.String(length=64), nullable=False),
    sa.Column('token', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('appid', name=op.f('pk_wechat_tokens'))
    )


def downgrade() -> None:
    op.drop_table('wechat_tokens')
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.drop_index('ix_message_log_status_lease')
        batch_op.drop_constraint(batch_op.f('uq_message_log_dedupe_key'), type_='unique')
        batch_op.drop_column('settled_at')
        batch_op.drop_column('payload')
        batch_op.drop_column('attempts')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('owner')
        batch_op.drop_column('status')
        batch_op.drop_column('dedupe_key')
