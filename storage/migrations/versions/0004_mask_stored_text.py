"""mask personal numbers in text stored before masking covered every format

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 16:40:00

Rows written before issue 6 may hold +86/dashed/full-width phones, 15-digit IDs
or spaced bank cards in clear; FAQ questions among them are shown to other
households. Re-mask them with the one masking function. Not reversible.
"""

from alembic import op
import sqlalchemy as sa

from storage.privacy import mask_text

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_COLUMNS = {
    "kb_faqs": ("question",),
    "kb_unanswered": ("question", "normalized"),
    "message_log": ("text", "reply"),
}


def upgrade() -> None:
    conn = op.get_bind()
    for table, columns in _COLUMNS.items():
        t = sa.table(table, sa.column("id", sa.Integer), *(sa.column(c, sa.Text) for c in columns))
        last = 0
        while True:
            rows = conn.execute(
                sa.select(t).where(t.c.id > last).order_by(t.c.id).limit(1000)
            ).all()
            if not rows:
                break
            for row in rows:
                changes = {c: mask_text(getattr(row, c)) for c in columns
                           if getattr(row, c) and mask_text(getattr(row, c)) != getattr(row, c)}
                if changes:
                    conn.execute(sa.update(t).where(t.c.id == row.id).values(**changes))
            last = rows[-1].id


def downgrade() -> None:
    pass  # masked digits cannot be recovered
