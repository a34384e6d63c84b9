"""Everything a worker needs to answer, loaded from the database in one go.

A snapshot is immutable: a reload builds a new one and swaps the reference,
so a question being answered in another thread never sees half an update.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from sqlalchemy import select

from knowledge.nlp.synonyms import SynonymTable
from knowledge.nlp.tokenizer import DATA_DIR, Segmenter
from knowledge.search.faq_match import FaqEntry, FaqMatcher, core
from knowledge.search.index import PassageIndex
from knowledge.search.query import QueryAnalyzer
from knowledge.search.ranker import Ranker
from knowledge.search.senses import HandbookText
from knowledge.store.index_store import load_index, rebuild_index
from knowledge.store.state import current_generation, lock_state
from knowledge.store.synonyms import SynonymRecord, table_from_rows
from storage.db import Database
from storage.models.knowledge import KbArticle, KbDocument, KbFaq, KbPassage, KbSynonym

log = logging.getLogger(__name__)
SHIPPED_SYNONYMS = DATA_DIR / "synonyms.txt"


@dataclass(frozen=True)
class ArticleRecord:
    id: int
    document: str
    chapter_label: str
    chapter_title: str
    label: str
    title: str
    text: str
    cite: str = ""  # the label an answer cites when the label alone does not name it: 三、（二）

    @property
    def cited_label(self) -> str:
        """How the article is cited: 第六条; 三、（二） where every 一、 restarts its （一）; 12．"""
        return self.cite or self.label


def cited_labels(articles: list[ArticleRecord]) -> list[ArticleRecord]:
    """Give each article the label a reader can find it by.

    A compilation's 实施方案 numbers （一）（二） afresh under every 一、, so "（二）" is
    cited with its part, as people write it: "三、（二）". Other labels are cited alone when
    they are unique in their document (第六条, a booklet's 12．) and with their part when not.
    """
    counts: dict[tuple[str, str], int] = {}
    for a in articles:
        counts[(a.document, a.label)] = counts.get((a.document, a.label), 0) + 1
    out = []
    for a in articles:
        sub_item = a.label.startswith(("（", "(")) and a.chapter_label.endswith(("、", "．", "."))
        repeated = counts[(a.document, a.label)] > 1
        # A nested label already names its chapter ("第一章 一、"): prefixing it again would cite
        # "第一章第一章 一、" and still not tell two of them apart.
        if (a.label and (sub_item or repeated) and a.chapter_label and a.chapter_label != a.label
                and not a.label.startswith(a.chapter_label)):
            a = replace(a, cite=f"{a.chapter_label}{a.label}")
        out.append(a)
    return out


@dataclass
class Snapshot:
    generation: int
    articles: list[ArticleRecord]
    positions: dict[int, int]  # article id -> position in ``articles``
    index: PassageIndex
    analyzer: QueryAnalyzer
    ranker: Ranker
    faqs: FaqMatcher
    faq_by_id: dict[int, FaqEntry]
    _titles: dict[str, frozenset[int]] = field(default_factory=dict, repr=False)

    @property
    def empty(self) -> bool:
        return not self.articles

    @cached_property
    def document_positions(self) -> dict[str, tuple[int, ...]]:
        """Each document's title -> the positions of its articles (a compilation's documents are topics)."""
        found: dict[str, list[int]] = {}
        for i, a in enumerate(self.articles):
            found.setdefault(a.document, []).append(i)
        return {title: tuple(positions) for title, positions in found.items()}

    def titles_with(self, word: str) -> frozenset[int]:
        """Positions of the articles whose title contains ``word`` (the few cue words, memoized)."""
        found = self._titles.get(word)
        if found is None:
            found = self._titles[word] = frozenset(i for i, a in enumerate(self.articles) if word in a.title)
        return found


def _document_numbers(articles: list[ArticleRecord]) -> list[int]:
    """Each article's document as a number (documents are told apart by title)."""
    numbers: dict[str, int] = {}
    return [numbers.setdefault(a.document, len(numbers)) for a in articles]


def file_synonyms(extra: Path | None) -> SynonymTable:
    paths = [SHIPPED_SYNONYMS] + ([extra] if extra is not None and extra.exists() else [])
    return SynonymTable.from_files(paths)


def _stale(index: PassageIndex | None, has_passages: bool, segmenter: Segmenter) -> bool:
    return (index is None and has_passages) or (index is not None and index.fingerprint != segmenter.fingerprint)


def load_snapshot(db: Database, segmenter: Segmenter, synonyms_file: Path | None = None,
                  _repaired: bool = False) -> Snapshot:
    with db.session() as session:
        generation = current_generation(session)
        index = load_index(session)
        has_passages = session.execute(select(KbPassage.id).limit(1)).first() is not None
        if _stale(index, has_passages, segmenter):
            # Built with another dictionary (an upgrade changed it) or missing: rebuild once.
            # The state lock makes concurrent workers wait, and the second finds it fresh.
            lock_state(session)
            index = load_index(session)
            if _stale(index, has_passages, segmenter):
                log.info("knowledge index missing or built with another dictionary; rebuilding")
                index = rebuild_index(session, segmenter)
        if index is None:
            index = PassageIndex.build([], [], segmenter.fingerprint)
        rows = session.execute(
            select(KbArticle.id, KbDocument.title, KbArticle.chapter_label, KbArticle.chapter_title,
                   KbArticle.label, KbArticle.title, KbArticle.text)
            .join(KbDocument, KbDocument.id == KbArticle.document_id)
            .order_by(KbArticle.document_id, KbArticle.seq)
        ).all()
        passage_rows = dict(session.execute(select(KbPassage.id, KbPassage.article_id)).all())
        faq_rows = session.execute(select(KbFaq.id, KbFaq.question, KbFaq.answer).order_by(KbFaq.id)).all()
        synonym_rows = [SynonymRecord(r.id, r.phrase, r.expansion)
                        for r in session.execute(select(KbSynonym)).scalars().all()]

    articles = cited_labels([ArticleRecord(*row) for row in rows])
    positions = {a.id: i for i, a in enumerate(articles)}
    missing = [int(p) for p in index.passage_ids if int(p) not in passage_rows]
    if missing:
        # The index must describe exactly the stored passages; it is rebuilt in the same
        # transaction as every import, so this only happens after manual database edits.
        if _repaired:
            raise RuntimeError("knowledge index does not match the stored passages")
        with db.session() as session:
            lock_state(session)
            rebuild_index(session, segmenter)
        return load_snapshot(db, segmenter, synonyms_file, _repaired=True)
    passage_article = np.array([positions[passage_rows[int(p)]] for p in index.passage_ids], dtype=np.int64)
    synonyms = file_synonyms(synonyms_file).merged(table_from_rows(synonym_rows))
    text = HandbookText([a.text for a in articles], [f"{a.title} {a.chapter_title} {a.document}" for a in articles],
                        segmenter.words)
    faq_entries = [FaqEntry(r[0], r[1], r[2], core(r[1])) for r in faq_rows]
    return Snapshot(
        generation=generation,
        articles=articles,
        positions=positions,
        index=index,
        analyzer=QueryAnalyzer(segmenter, synonyms, index, text),
        ranker=Ranker(index, passage_article, len(articles), text, _document_numbers(articles)),
        faqs=FaqMatcher(faq_entries),
        faq_by_id={e.id: e for e in faq_entries},
    )
