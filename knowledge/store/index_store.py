"""Building the passage index from the database and storing it there.

Called inside the import transaction, so the passages and the index that
describes them are committed together or not at all.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from knowledge.nlp.tokenizer import Segmenter
from knowledge.search.documents import passage_tokens
from knowledge.search.index import PassageIndex
from storage.models.base import utcnow
from storage.models.knowledge import KbArticle, KbDocument, KbIndex, KbPassage

INDEX_ROW = 1


def build_index(session: Session, segmenter: Segmenter) -> PassageIndex:
    rows = session.execute(
        select(KbPassage.id, KbPassage.text, KbArticle.title, KbArticle.chapter_title, KbDocument.title)
        .join(KbArticle, KbArticle.id == KbPassage.article_id)
        .join(KbDocument, KbDocument.id == KbArticle.document_id)
        .order_by(KbPassage.id)
    ).all()
    # One document's title is in every passage: it tells no passage apart, and its words (医疗救助
    # in 《…医疗保障和医疗救助实施细则》) would lose their weight where a chapter's title names them.
    single = len({document for *_, document in rows}) <= 1
    corpus = [passage_tokens(segmenter, text, title, chapter, "" if single else document)
              for _, text, title, chapter, document in rows]
    return PassageIndex.build(corpus, [r[0] for r in rows], segmenter.fingerprint)


def store_index(session: Session, index: PassageIndex) -> None:
    session.execute(delete(KbIndex))
    session.add(KbIndex(id=INDEX_ROW, fingerprint=index.fingerprint, passages=index.num_docs,
                        built_at=utcnow(), payload=index.to_bytes()))
    session.flush()


def rebuild_index(session: Session, segmenter: Segmenter) -> PassageIndex:
    index = build_index(session, segmenter)
    store_index(session, index)
    return index


def load_index(session: Session) -> PassageIndex | None:
    payload = session.execute(select(KbIndex.payload).where(KbIndex.id == INDEX_ROW)).scalar_one_or_none()
    if payload is None:
        return None
    try:
        return PassageIndex.from_bytes(bytes(payload))
    except (ValueError, KeyError, OSError):
        return None  # unreadable or old format: the caller rebuilds once
