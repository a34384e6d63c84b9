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

from knowledge.answer_cache import AnswerCache
from knowledge.responder import Responder, article_pages
from knowledge.result import Answer, Source
from knowledge.explain import Explanation, explain
from knowledge.ingest.importer import SAMPLE_HANDBOOK, import_files
from knowledge.nlp.tokenizer import Segmenter, default_segmenter, normalize_text
from knowledge.settings import KnowledgeSettings, get_knowledge_settings
from knowledge.snapshot import Snapshot, load_snapshot
from knowledge.store.faq import promote_unanswered as _promote
from knowledge.store.state import GenerationWatch, read_generation
from knowledge.store.unanswered import record_unanswered as _record
from sqlalchemy import select
from storage.db import Database
from storage.models.knowledge import KbDocument

log = logging.getLogger(__name__)

__all__ = ["Answer", "KnowledgeBase", "Source", "ensure_sample_loaded", "promote_unanswered"]


class KnowledgeBase:
    def __init__(self, db: Database, settings: KnowledgeSettings | None = None,
                 segmenter: Segmenter | None = None, watch: GenerationWatch | None = None) -> None:
        self.db = db
        # PostgreSQL change notifications (knowledge.store.state): with them, a question needs no
        # database read to know the snapshot is current.
        self._watch = watch
        self._watch_seen = -1
        self.settings = settings or get_knowledge_settings()
        self.segmenter = segmenter or default_segmenter()
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self._synonyms_mtime: int | None = None  # of SISONG_KB_SYNONYMS_FILE when the snapshot was loaded
        self._failed: tuple[int, int | None] | None = None  # (generation, mtime) whose reload failed
        self._missing_warned = False
        self._answers: AnswerCache | None = None  # of the snapshot it was filled from

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
        """Load a new snapshot now; raises if it cannot be loaded (the old one stays)."""
        with self._lock:
            self._load_locked(self._synonyms_file_mtime())
            self._checked_at = time.monotonic()

    def _load_locked(self, mtime: int | None) -> None:
        self._snapshot = load_snapshot(self.db, self.segmenter, self.settings.kb_synonyms_file)
        self._synonyms_mtime = mtime
        self._failed = None

    def _synonyms_file_mtime(self) -> int | None:
        path = self.settings.kb_synonyms_file
        if path is None:
            return None
        try:
            return path.stat().st_mtime_ns
        except OSError:
            if not self._missing_warned:
                self._missing_warned = True
                log.warning("knowledge base: synonym file %s (SISONG_KB_SYNONYMS_FILE) not found; "
                            "using the shipped synonyms only", path)
            return None

    def _fresh_snapshot(self, check_now: bool = False) -> Snapshot:
        """The current snapshot, reloaded first if the database generation or the synonym file moved.

        The check and the reload happen under the lock, so one change makes one load however
        many threads ask at that moment. A reload that fails is logged and the loaded snapshot
        keeps answering. ``check_now`` skips the interval: a cadre who just added a synonym and
        tries the question again must see the change, not the snapshot of a second ago.
        """
        interval = 0.0 if check_now else self.settings.kb_reload_seconds
        snapshot = self._snapshot
        if snapshot is not None and interval > 0 and time.monotonic() - self._checked_at < interval:
            return snapshot
        watch = self._watch
        if (snapshot is not None and not check_now and watch is not None and watch.listening
                and watch.seen == self._watch_seen
                and (self.settings.kb_synonyms_file is None or self._synonyms_file_mtime() == self._synonyms_mtime)):
            return snapshot  # no change notified since the last check
        with self._lock:
            snapshot = self._snapshot
            now = time.monotonic()
            if snapshot is not None and interval > 0 and now - self._checked_at < interval:
                return snapshot  # another thread checked while this one waited
            self._checked_at = now
            seen = watch.seen if watch is not None and watch.listening else -1
            try:
                generation = read_generation(self.db.engine)
            except Exception:  # database briefly unavailable: keep answering from memory
                if snapshot is None:
                    raise
                log.warning("knowledge base: could not check generation", exc_info=True)
                return snapshot
            mtime = self._synonyms_file_mtime()
            key = (generation, mtime)
            current = snapshot is not None and generation == snapshot.generation and mtime == self._synonyms_mtime
            if current or key == self._failed:
                assert snapshot is not None
                self._watch_seen = seen
                return snapshot
            try:
                self._load_locked(mtime)
                self._watch_seen = seen
            except Exception:
                if snapshot is None:
                    raise
                self._failed = key
                log.exception("knowledge base: reload failed (generation %s); still answering from "
                              "generation %s", generation, snapshot.generation)
            assert self._snapshot is not None
            return self._snapshot

    # -- answering ------------------------------------------------------------------

    def answer(self, question: str, last_topic: str | None = None) -> Answer:
        """Reply to one message; pass the previous answer's ``topic`` for follow-ups.

        A question asked again with the same previous topic, on the same knowledge base, is
        answered from the answer cache (``SISONG_KB_ANSWER_CACHE``); see knowledge/answer_cache.py.
        """
        snapshot = self._fresh_snapshot()
        cache = self._answer_cache(snapshot)
        if cache is None:
            return self._respond(snapshot, question, last_topic)
        # The cache is the snapshot's own (its generation and synonym file); the generation is in
        # the key as well, so even a mix-up of caches could not serve another generation's answer.
        key = (snapshot.generation, (question or "").strip(), last_topic)
        found = cache.get(key)
        if found is not None:
            return found
        answer = self._respond(snapshot, question, last_topic)
        cache.put(key, answer)
        return answer

    def _respond(self, snapshot: Snapshot, question: str, last_topic: str | None) -> Answer:
        responder = Responder(snapshot, self.settings.kb_min_confidence, self.settings.kb_answer_chars)
        return responder.respond(question, last_topic)

    def _answer_cache(self, snapshot: Snapshot) -> AnswerCache | None:
        """The answer cache of ``snapshot``: a new, empty one when the snapshot changed."""
        size = self.settings.kb_answer_cache
        if size <= 0:
            return None
        cache = self._answers
        if cache is None or cache.owner is not snapshot:
            with self._lock:
                cache = self._answers
                if cache is None or cache.owner is not snapshot:
                    cache = self._answers = AnswerCache(size, snapshot)
        return cache

    @property
    def answer_cache(self) -> AnswerCache | None:
        """The current answer cache (its ``hits``, ``misses``, length), None when off or before a question."""
        return self._answers

    def ask(self, openid: str | None, question: str, last_topic: str | None = None) -> Answer:
        """``answer`` plus queueing the question for a person when it is handed over."""
        result = self.answer(question, last_topic)
        if result.handover and result.kind == "unanswerable":
            self.record_unanswered(openid, question)
        return result

    def explain(self, question: str, last_topic: str | None = None) -> Explanation:
        """``answer`` and why (candidates, scores, synonyms, the reason for a hand-over), for 试一试.

        Checks the database generation first whatever the interval, so a change just made
        (an import, a synonym, an FAQ) is what gets explained. Never queues the question.
        """
        snapshot = self._fresh_snapshot(check_now=True)
        return explain(snapshot, self.db, question, self.settings.kb_min_confidence, self.settings.kb_answer_chars,
                       last_topic)

    def missing_words(self, words: list[str]) -> list[str]:
        """Of ``words``, those the handbook never uses: a synonym expanding to them cannot find anything."""
        snapshot = self._fresh_snapshot(check_now=True)
        text = snapshot.analyzer.text
        missing = []
        for word in words:
            term = normalize_text(word.strip())
            if not term:
                continue
            if snapshot.index.term_id(term) is None and not (text is not None and len(term) >= 2
                                                             and text.articles_with(term)):
                missing.append(word)
        return missing

    def article_pages(self, topic: str) -> list[str]:
        """The whole article (or FAQ) behind ``topic``, as pages each under 2048 UTF-8 bytes."""
        return article_pages(self._fresh_snapshot(), topic)

    def record_unanswered(self, openid: str | None, question: str) -> int:
        return _record(self.db, openid, question)


def promote_unanswered(db: Database, unanswered_id: int, answer: str, question: str | None = None) -> list[str]:
    """Make an unanswered question an FAQ (its question masked, or ``question``); returns who asked it."""
    return _promote(db, unanswered_id, answer, question)


def ensure_sample_loaded(db: Database, path: Path = SAMPLE_HANDBOOK) -> bool:
    """Import the shipped sample handbook when no documents exist; True if it was imported."""
    def has_documents() -> bool:
        with db.session() as session:
            return session.execute(select(KbDocument.id).limit(1)).first() is not None

    if has_documents():
        return False
    try:
        report = import_files(db, [path], record=False)  # not a cadre's import: nothing to undo or audit
    except Exception:
        if has_documents():  # another worker starting at the same moment won the race
            return False
        raise
    return report.changed
