"""console uploads: a checked file waiting for 确认导入

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 18:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_uploads_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_uploads')),
    sa.UniqueConstraint('key', name=op.f('uq_console_uploads_key'))
    )
    with op.batch_alter_table('console_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_uploads_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_uploads_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_uploads_user_id'))
        batch_op.drop_index(batch_op.f('ix_console_uploads_expires_at'))
    op.drop_table('console_uploads')
