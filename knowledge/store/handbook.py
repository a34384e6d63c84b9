"""The imported handbook as rows: reading it for people (documents, chapters, articles) and deleting documents.

The console's 政策库 pages, the API and ``sisong handbook list`` read through
these functions, so all three show the same thing. Deleting lives here too
because both an import (an edited file replaces its old version) and an undo
(the import's documents go away) delete documents the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models.knowledge import KbArticle, KbDocument, KbPassage

# The shipped fictional handbook's file name (knowledge/data/qingshan_handbook.md).
SAMPLE_NAME = "qingshan_handbook.md"


@dataclass(frozen=True)
class DocumentSummary:
    id: int
    name: str  # the file name as imported
    title: str
    chapters: int
    articles: int
    imported_at: datetime
    warnings: list[str]
    sample: bool  # the shipped fictional handbook (青山县), replaced by the first real import


@dataclass(frozen=True)
class ArticleSummary:
    id: int
    label: str  # 第十二条, as written ("" when the handbook has no labels)
    title: str


@dataclass
class Chapter:
    label: str  # 第三章, as written
    title: str
    articles: list[ArticleSummary] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentDetail:
    document: DocumentSummary
    chapters: list[Chapter]


@dataclass(frozen=True)
class ArticleDetail:
    id: int
    document_id: int
    document_title: str
    chapter_label: str
    chapter_title: str
    label: str
    title: str
    text: str
    previous_id: int | None  # the article before it in the same document
    next_id: int | None


def _summary(row: KbDocument) -> DocumentSummary:
    try:
        warnings = [str(w) for w in json.loads(row.warnings or "[]")]
    except ValueError:
        warnings = []
    return DocumentSummary(row.id, row.name, row.title, row.chapters, row.articles, row.imported_at, warnings,
                           row.name == SAMPLE_NAME)


def list_documents(db: Database) -> list[DocumentSummary]:
    """Every imported document, in import order."""
    with db.session() as session:
        return [_summary(d) for d in session.scalars(select(KbDocument).order_by(KbDocument.id))]


def document_detail(db: Database, document_id: int) -> DocumentDetail | None:
    """A document with its articles grouped by chapter, in the order written; None if there is none."""
    with db.session() as session:
        row = session.get(KbDocument, document_id)
        if row is None:
            return None
        rows = session.execute(
            select(KbArticle.id, KbArticle.chapter_label, KbArticle.chapter_title, KbArticle.label, KbArticle.title)
            .where(KbArticle.document_id == document_id).order_by(KbArticle.seq)
        ).all()
        summary = _summary(row)
    chapters: list[Chapter] = []
    for article_id, chapter_label, chapter_title, label, title in rows:
        if not chapters or (chapters[-1].label, chapters[-1].title) != (chapter_label, chapter_title):
            chapters.append(Chapter(chapter_label, chapter_title))
        chapters[-1].articles.append(ArticleSummary(article_id, label, title))
    return DocumentDetail(summary, chapters)


def article_detail(db: Database, article_id: int) -> ArticleDetail | None:
    """One article's full text with where it sits; None if there is none."""
    with db.session() as session:
        article = session.get(KbArticle, article_id)
        if article is None:
            return None
        document_title = session.scalar(select(KbDocument.title).where(KbDocument.id == article.document_id)) or ""
        same_document = select(KbArticle.id).where(KbArticle.document_id == article.document_id)
        previous_id = session.scalar(same_document.where(KbArticle.seq < article.seq)
                                     .order_by(KbArticle.seq.desc()).limit(1))
        next_id = session.scalar(same_document.where(KbArticle.seq > article.seq).order_by(KbArticle.seq).limit(1))
        return ArticleDetail(article.id, article.document_id, document_title, article.chapter_label,
                             article.chapter_title, article.label, article.title, article.text, previous_id, next_id)


def delete_documents(session: Session, document_ids: Iterable[int]) -> None:
    """Delete documents with their articles and passages (the index is rebuilt or restored by the caller)."""
    ids = list(document_ids)
    if not ids:
        return
    article_ids = select(KbArticle.id).where(KbArticle.document_id.in_(ids))
    session.execute(delete(KbPassage).where(KbPassage.article_id.in_(article_ids)))
    session.execute(delete(KbArticle).where(KbArticle.document_id.in_(ids)))
    session.execute(delete(KbDocument).where(KbDocument.id.in_(ids)))


def document_key(session: Session) -> str:
    """A fingerprint of which documents are loaded (ids and contents): what undo checks has not moved."""
    rows = session.execute(select(KbDocument.id, KbDocument.content_hash).order_by(KbDocument.id)).all()
    return hashlib.sha256(json.dumps([[i, h] for i, h in rows]).encode()).hexdigest()
