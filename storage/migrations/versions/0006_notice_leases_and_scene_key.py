"""group notices get a lease column; household QR scenes are unique and indexed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 17:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('group_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holder', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('held_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_households_qr_scene'), ['qr_scene'])


def downgrade() -> None:
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_households_qr_scene'), type_='unique')
    with op.batch_alter_table('group_notices', schema=None) as batch_op:
        batch_op.drop_column('held_until')
        batch_op.drop_column('holder')
