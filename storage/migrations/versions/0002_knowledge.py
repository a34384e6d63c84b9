"""knowledge base: documents, articles, passages, index, FAQ, synonyms, unanswered queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:20:18.472143
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('chapters', sa.Integer(), nullable=False),
    sa.Column('articles', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_documents')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_kb_documents_content_hash'))
    )
    with op.batch_alter_table('kb_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_documents_name'), ['name'], unique=False)

    op.create_table('kb_faqs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_unanswered_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_faqs'))
    )
    op.create_table('kb_index',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('passages', sa.Integer(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_index'))
    )
    op.create_table('kb_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_state'))
    )
    op.create_table('kb_synonyms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phrase', sa.String(length=64), nullable=False),
    sa.Column('expansion', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_synonyms')),
    sa.UniqueConstraint('phrase', 'expansion', name='uq_kb_synonyms_phrase_expansion')
    )
    op.create_table('kb_unanswered',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('normalized', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('faq_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_unanswered'))
    )
    with op.batch_alter_table('kb_unanswered', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_unanswered_normalized'), ['normalized'], unique=False)
        batch_op.create_index('ix_kb_unanswered_status_created', ['status', 'created_at'], unique=False)

    op.create_table('kb_articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('chapter_label', sa.String(length=64), nullable=False),
    sa.Column('chapter_title', sa.String(length=255), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['kb_documents.id'], name=op.f('fk_kb_articles_document_id_kb_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_articles'))
    )
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.create_index('ix_kb_articles_document_seq', ['document_id', 'seq'], unique=False)

    op.create_table('kb_passages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_passages_article_id_kb_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_passages'))
    )
    with op.batch_alter_table('kb_passages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_passages_article_id'), ['article_id'], unique=False)

    # The single generation row every worker polls; created here so concurrent
    # first imports never race to insert it.
    state = sa.table('kb_state', sa.column('id', sa.Integer), sa.column('generation', sa.Integer),
                     sa.column('updated_at', sa.DateTime(timezone=True)))
    op.bulk_insert(state, [{'id': 1, 'generation': 0, 'updated_at': datetime.now(timezone.utc)}])


def downgrade() -> None:
    with op.batch_alter_table('kb_passages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_passages_article_id'))

    op.drop_table('kb_passages')
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_articles_document_seq')

    op.drop_table('kb_articles')
    with op.batch_alter_table('kb_unanswered', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_unanswered_status_created')
        batch_op.drop_index(batch_op.f('ix_kb_unanswered_normalized'))

    op.drop_table('kb_unanswered')
    op.drop_table('kb_synonyms')
    op.drop_table('kb_state')
    op.drop_table('kb_index')
    op.drop_table('kb_faqs')
    with op.batch_alter_table('kb_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_documents_name'))

    op.drop_table('kb_documents')
