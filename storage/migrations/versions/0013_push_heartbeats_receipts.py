"""push senders' heartbeats and template receipts that came before their row's msgid

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 21:15:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('push_senders',
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_push_senders'))
    )
    op.create_table('push_early_receipts',
    sa.Column('msgid', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('msgid', name=op.f('pk_push_early_receipts'))
    )


def downgrade() -> None:
    op.drop_table('push_early_receipts')
    op.drop_table('push_senders')
