"""The answer cache (SISONG_KB_ANSWER_CACHE): repeated questions are answered from memory, and a
changed knowledge base — a new generation (synonym, FAQ, import) or an edited synonym file — is
never answered with an old answer. Real databases (SQLite and PostgreSQL), no stand-ins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge.settings import KnowledgeSettings
from knowledge.store.faq import add_faq
from knowledge.store.synonyms import add_synonym
from knowledge.store.unanswered import list_unanswered
from knowledge.testing import reset_knowledge, sqlite_database
from storage.db import Database

PG_URL = os.environ.get("SISONG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Households say 牲口屋; the sample handbook says 圈舍 (第十九条): handed over until a synonym says so.
QUESTION = "贷款能拿来修牲口屋不"
ANSWERED = "危房改造补多少钱"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = sqlite_database(tmp_path)
    else:
        database = Database(PG_URL)
        try:
            database.upgrade()
        except Exception as exc:  # noqa: BLE001 - no server: say so, do not fail the SQLite half
            pytest.skip(f"PostgreSQL does not answer: {exc}")
        reset_knowledge(database)
    ensure_sample_loaded(database)
    yield database
    if request.param == "postgresql":
        reset_knowledge(database)
    database.dispose()


def test_a_repeated_question_is_answered_from_the_cache_as_a_copy(db: Database) -> None:
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=16))
    first = kb.answer(ANSWERED)
    second = kb.answer(f"  {ANSWERED} ")
    assert not first.handover and first.sources
    assert second == first and second is not first
    assert kb.answer_cache is not None and (kb.answer_cache.hits, kb.answer_cache.misses) == (1, 1)
    second.sources.clear()  # a caller changing its answer does not change what others get
    second.text = "改过"
    third = kb.answer(ANSWERED)
    assert third == first
    # The previous topic is part of the key: the same words after another answer are another question.
    kb.answer("要带啥子材料", last_topic=first.topic)
    kb.answer("要带啥子材料")
    assert kb.answer_cache.misses == 3


def test_a_new_synonym_or_faq_is_not_answered_from_the_cache(db: Database) -> None:
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=16))
    assert kb.answer(QUESTION).handover
    assert kb.answer(QUESTION).handover and kb.answer_cache.hits == 1

    add_synonym(db, "牲口屋", "圈舍")  # what `sisong synonym add` does: a new generation
    after = kb.answer(QUESTION)
    assert not after.handover and after.sources[0].article == "第十九条"
    assert kb.answer_cache.hits == 0  # a new, empty cache for the new snapshot

    add_faq(db, QUESTION, "能修，找村委会问清楚再动工。")
    assert kb.answer(QUESTION).kind == "faq"


def test_an_edited_synonym_file_is_not_answered_from_the_cache(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    ensure_sample_loaded(db)
    synonyms = tmp_path / "synonyms.txt"
    synonyms.write_text("# 村里的说法\n", encoding="utf-8")
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=16, kb_synonyms_file=synonyms))
    assert kb.answer(QUESTION).handover
    assert kb.answer(QUESTION).handover and kb.answer_cache.hits == 1

    synonyms.write_text("牲口屋 => 圈舍\n", encoding="utf-8")
    stat = synonyms.stat()
    os.utime(synonyms, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same second: still a change
    after = kb.answer(QUESTION)
    assert not after.handover and after.sources[0].article == "第十九条"
    db.dispose()


def test_the_cache_is_bounded_least_recently_used_first_and_0_turns_it_off(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    ensure_sample_loaded(db)
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=2))
    for question in ("低保咋个申请", "危房改造补多少钱", "低保咋个申请", "娃儿读书有啥补助"):
        kb.answer(question)
    cache = kb.answer_cache
    assert cache is not None and len(cache) == 2
    kb.answer("低保咋个申请")  # used recently: kept
    assert cache.hits == 2
    kb.answer("危房改造补多少钱")  # the least recently used: gone
    assert cache.hits == 2 and len(cache) == 2

    off = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=0))
    assert off.answer("低保咋个申请") == off.answer("低保咋个申请")
    assert off.answer_cache is None
    db.dispose()


def test_ask_queues_every_hand_over_even_when_the_answer_is_cached(db: Database) -> None:
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=16))
    assert kb.ask("openid-cache-1", QUESTION).handover
    assert kb.ask("openid-cache-2", QUESTION).handover
    assert kb.answer_cache is not None and kb.answer_cache.hits == 1
    askers = {item.openid for item in list_unanswered(db) if item.question == QUESTION}
    assert askers == {"openid-cache-1", "openid-cache-2"}
