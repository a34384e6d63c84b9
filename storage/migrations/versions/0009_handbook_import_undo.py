"""handbook: what the last import replaced, for undo

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_import_undo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('after_key', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('index_payload', sa.LargeBinary(), nullable=True),
    sa.Column('index_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('index_passages', sa.Integer(), nullable=True),
    sa.Column('index_built_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_import_undo'))
    )


def downgrade() -> None:
    op.drop_table('kb_import_undo')
