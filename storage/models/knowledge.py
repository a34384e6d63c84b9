"""Tables of the policy knowledge base (issue 3).

Documents hold articles, articles hold the passages the search index is built
over; the index itself is stored as one row so every worker process loads the
same bytes. ``kb_state.generation`` is bumped on every change a worker must
see (import, FAQ, synonym), which is all a worker polls for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow


class KbDocument(Base):
    """One imported file; ``content_hash`` makes re-importing it a no-op."""

    __tablename__ = "kb_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)  # file name as given
    title: Mapped[str] = mapped_column(String(255))  # e.g. 青山县脱贫攻坚政策文件汇编
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    chapters: Mapped[int] = mapped_column(Integer, default=0)
    articles: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbArticle(Base):
    """An article (第X条 or the unit the document uses), the unit answers cite."""

    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_document_seq", "document_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    chapter_label: Mapped[str] = mapped_column(String(64), default="")  # 第三章
    chapter_title: Mapped[str] = mapped_column(String(255), default="")  # 住房安全保障
    label: Mapped[str] = mapped_column(String(64), default="")  # 第十二条, as written
    title: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text)


class KbPassage(Base):
    """A searchable piece of an article; long articles have several."""

    __tablename__ = "kb_passages"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class KbIndex(Base):
    """The persisted BM25 index (one row); built at import, never per query."""

    __tablename__ = "kb_index"

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # tokenizer + dictionary version
    passages: Mapped[int] = mapped_column(Integer, default=0)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class KbImportUndo(Base):
    """What the last handbook import replaced, so that it can be undone exactly (one level).

    Written in the import's own transaction: the rows the import deleted, the ids
    of the documents it inserted and the index it overwrote. ``after_key`` is the
    document set the import left; undo refuses when the handbook has changed since.
    """

    __tablename__ = "kb_import_undo"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), default="")
    files: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of the imported files' names
    after_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # zlib-compressed JSON: removed rows, inserted ids
    index_payload: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # the index before
    index_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    index_passages: Mapped[int | None] = mapped_column(Integer, default=None)
    index_built_at: Mapped[datetime | None] = mapped_column(default=None)


class KbState(Base):
    """A single row whose generation every worker polls to know when to reload."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbFaq(Base):
    """A question/answer pair cadres wrote; matched before the handbook."""

    __tablename__ = "kb_faqs"

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    from_unanswered_id: Mapped[int | None] = mapped_column(Integer, default=None)


class KbSynonym(Base):
    """A colloquial phrase and the handbook words it means, added by cadres."""

    __tablename__ = "kb_synonyms"
    __table_args__ = (UniqueConstraint("phrase", "expansion", name="uq_kb_synonyms_phrase_expansion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phrase: Mapped[str] = mapped_column(String(64))
    expansion: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbUnanswered(Base):
    """A question the bot could not answer, waiting for a person."""

    __tablename__ = "kb_unanswered"
    __table_args__ = (Index("ix_kb_unanswered_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(64), default=None)
    question: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(String(512), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | closed
    faq_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    # A cadre's private reply (``sisong unanswered reply``): sent as a customer-service
    # message inside the 48-hour window, else kept until the follower next writes.
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    replied_by: Mapped[str | None] = mapped_column(String(64), default=None)
    delivery: Mapped[str | None] = mapped_column(String(16), default=None)  # pending | delivered | failed
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
