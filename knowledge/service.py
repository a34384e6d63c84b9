"""The knowledge base as the rest of Sisong sees it.

One ``KnowledgeBase`` per process: it holds the loaded snapshot, checks the
database generation at most every ``SISONG_KB_RELOAD_SECONDS`` and reloads
when another process imported a handbook or changed an FAQ. Queries never
build an index; they read the snapshot they find.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from knowledge.answering import Responder, article_pages
from knowledge.answers import Answer, Source
from knowledge.ingest.importer import import_files
from knowledge.nlp.tokenizer import DATA_DIR, Segmenter, default_segmenter
from knowledge.settings import KnowledgeSettings, get_knowledge_settings
from knowledge.snapshot import Snapshot, load_snapshot
from knowledge.store.faq import promote_unanswered as _promote
from knowledge.store.state import current_generation
from knowledge.store.unanswered import record_unanswered as _record
from sqlalchemy import select
from storage.db import Database
from storage.models.knowledge import KbDocument

log = logging.getLogger(__name__)

SAMPLE_HANDBOOK = DATA_DIR / "qingshan_handbook.md"

__all__ = ["Answer", "KnowledgeBase", "Source", "ensure_sample_loaded", "promote_unanswered"]


class KnowledgeBase:
    def __init__(self, db: Database, settings: KnowledgeSettings | None = None,
                 segmenter: Segmenter | None = None) -> None:
        self.db = db
        self.settings = settings or get_knowledge_settings()
        self.segmenter = segmenter or default_segmenter()
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0

    @classmethod
    def open(cls, db: Database, settings: KnowledgeSettings | None = None) -> "KnowledgeBase":
        """Load the persisted index and everything else needed to answer."""
        kb = cls(db, settings)
        kb.reload()
        return kb

    # -- loading -------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._snapshot.generation if self._snapshot else -1

    def reload(self) -> None:
        with self._lock:
            self._snapshot = load_snapshot(self.db, self.segmenter, self.settings.kb_synonyms_file)
            self._checked_at = time.monotonic()

    def _fresh_snapshot(self) -> Snapshot:
        """The current snapshot, reloaded first if the database generation moved."""
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is None or now - self._checked_at >= self.settings.kb_reload_seconds:
            self._checked_at = now
            try:
                with self.db.session() as session:
                    generation = current_generation(session)
            except Exception:  # database briefly unavailable: keep answering from memory
                log.warning("knowledge base: could not check generation", exc_info=True)
                generation = snapshot.generation if snapshot else -1
            if snapshot is None or generation != snapshot.generation:
                self.reload()
                snapshot = self._snapshot
        assert snapshot is not None
        return snapshot

    # -- answering ------------------------------------------------------------------

    def answer(self, question: str, last_topic: str | None = None) -> Answer:
        """Reply to one message; pass the previous answer's ``topic`` for follow-ups."""
        snapshot = self._fresh_snapshot()
        responder = Responder(snapshot, self.settings.kb_min_confidence, self.settings.kb_answer_chars)
        return responder.respond(question, last_topic)

    def ask(self, openid: str | None, question: str, last_topic: str | None = None) -> Answer:
        """``answer`` plus queueing the question for a person when it is handed over."""
        result = self.answer(question, last_topic)
        if result.handover and result.kind == "unanswerable":
            self.record_unanswered(openid, question)
        return result

    def article_pages(self, topic: str) -> list[str]:
        """The whole article (or FAQ) behind ``topic``, as pages each under 2048 UTF-8 bytes."""
        return article_pages(self._fresh_snapshot(), topic)

    def record_unanswered(self, openid: str | None, question: str) -> int:
        return _record(self.db, openid, question)


def promote_unanswered(db: Database, unanswered_id: int, answer: str) -> list[str]:
    """Make an unanswered question an FAQ; returns the openids that asked it."""
    return _promote(db, unanswered_id, answer)


def ensure_sample_loaded(db: Database, path: Path = SAMPLE_HANDBOOK) -> bool:
    """Import the shipped sample handbook when no documents exist; True if it was imported."""
    with db.session() as session:
        if session.execute(select(KbDocument.id).limit(1)).first() is not None:
            return False
    try:
        report = import_files(db, [path])
    except Exception:
        # Another worker starting at the same moment may have won the race.
        with db.session() as session:
            if session.execute(select(KbDocument.id).limit(1)).first() is not None:
                return False
        raise
    return report.changed
