"""Knowledge-base changes reach every worker without a database read per question (issue 13).

On PostgreSQL the transaction that bumps the generation sends ``NOTIFY sisong_kb``; a worker that
listens (``GenerationWatch``) answers from its snapshot until told, and reads the generation before
every question again while its listening connection is down.
"""

from __future__ import annotations

import pytest

import knowledge.service as service_module
from bot.services import Services, build_services
from knowledge.service import ensure_sample_loaded
from knowledge.store.synonyms import add_synonym
from tests.conftest import wait_for


@pytest.fixture
def pg_services(make_settings, backend):  # type: ignore[no-untyped-def]
    if backend != "server":
        pytest.skip("notifications are PostgreSQL's")
    built = build_services(make_settings(), migrate=True)
    ensure_sample_loaded(built.db)
    yield built
    built.close()


def test_a_change_is_notified_and_no_question_reads_the_generation_meanwhile(
        pg_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = service_module.read_generation
    monkeypatch.setattr(service_module, "read_generation", lambda engine: reads.append(1) or real(engine))
    kb = pg_services.knowledge
    watch = kb._watch
    assert watch is not None and watch.listening
    kb.answer("危房改造补助多少")
    before = len(reads)
    for _ in range(5):
        kb.answer("低保一个月多少钱")
    assert len(reads) == before  # told nothing, read nothing
    generation = kb.generation

    seen = watch.seen
    add_synonym(pg_services.db, "羊棚子", "圈舍")  # another process would do the same: one transaction
    wait_for(lambda: watch.seen > seen, timeout=5)
    kb.answer("羊棚子有补助没")
    assert len(reads) == before + 1 and kb.generation == generation + 1

    watch.stop()  # the listening connection gone: every question checks again
    wait_for(lambda: not watch.listening, timeout=5)
    kb.answer("低保一个月多少钱")
    kb.answer("低保一个月多少钱")
    assert len(reads) == before + 3
