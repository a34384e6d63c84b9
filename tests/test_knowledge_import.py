"""Importing into the database and loading from it, on SQLite and PostgreSQL.

Idempotent re-import, an edited file replacing its old version, --replace,
all-or-nothing batches, the persisted index, and two KnowledgeBase instances
(two workers) seeing each other's changes without a restart.
"""

from __future__ import annotations

import os
import re

from collections.abc import Iterator
from pathlib import Path
from time import time_ns

import pytest
from sqlalchemy import func, select

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge.ingest.importer import HandbookImportError, import_files
from knowledge.settings import KnowledgeSettings
from knowledge.testing import drop_postgres_database, postgres_database, reset_knowledge, sqlite_database
from storage.db import Database
from storage.models.knowledge import KbArticle, KbDocument, KbIndex, KbPassage, KbState

HANDBOOK_V1 = """# 示例县帮扶政策汇编

## 第一章 住房

第一条【危房改造补助】D级危房拆除重建的，每户补助3.5万元。

第二条【危房改造申请】农户向村委会提出申请，带身份证和户口簿。

## 第二章 兜底

第三条【低保标准】农村低保标准为每人每月450元。
"""

HANDBOOK_V2 = HANDBOOK_V1.replace("每户补助3.5万元", "每户补助4万元")


def kb_test_name() -> str:
    """One database per pytest-xdist worker and per engineer: several checkouts share one server,
    each naming its own test database in SISONG_TEST_POSTGRES_URL, and the fixture drops its
    database WITH (FORCE), which would cut off another checkout's run under a shared name."""
    own = os.environ.get("SISONG_TEST_POSTGRES_URL", "").rsplit("/", 1)[-1].split("?")[0]
    own = re.sub(r"[^a-z0-9_]", "_", own.lower())
    return "_".join(filter(None, ("kb_test", own, os.environ.get("PYTEST_XDIST_WORKER") or "main")))


@pytest.fixture(scope="module")
def postgres() -> Iterator[Database]:
    name = kb_test_name()
    db = postgres_database(name)
    if db is None:
        pytest.skip("PostgreSQL does not answer")
    yield db
    drop_postgres_database(db, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return sqlite_database(tmp_path)
    database: Database = request.getfixturevalue("postgres")
    reset_knowledge(database)
    return database


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def counts(db: Database) -> tuple[int, int, int]:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(KbDocument)) or 0,
            session.scalar(select(func.count()).select_from(KbArticle)) or 0,
            session.scalar(select(func.count()).select_from(KbPassage)) or 0,
        )


def generation(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(KbState.generation).where(KbState.id == 1)) or 0)


def fast_settings() -> KnowledgeSettings:
    return KnowledgeSettings(kb_reload_seconds=0)


def test_import_is_idempotent(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "policy.md", HANDBOOK_V1)
    first = import_files(db, [path])
    assert [f.status for f in first.files] == ["imported"]
    assert (first.documents, first.chapters, first.articles) == (1, 2, 3)
    before, gen = counts(db), generation(db)
    second = import_files(db, [path, path])
    assert [f.status for f in second.files] == ["unchanged"]
    assert not second.changed
    assert counts(db) == before and generation(db) == gen


def test_chapter_nested_sections_are_stored_with_their_full_labels(db: Database) -> None:
    """A 实施细则 in chapters: every 一、（一） section is its own stored article, named by its
    whole label (第三章 二、（一）) so that no two share one, and importing it again changes nothing."""
    shimen = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "handbooks" / "shimen_medical_rules.md"
    import_files(db, [shimen])
    with db.session() as session:
        rows = session.execute(select(KbArticle.chapter_label, KbArticle.label).order_by(KbArticle.seq)).all()
    labels = [label for _, label in rows]
    assert len(labels) == len(set(labels)) == 27
    assert ("第三章", "第三章 二、（一）") in rows and ("第五章", "第五章 四、") in rows
    before = counts(db)
    again = import_files(db, [shimen])
    assert [f.status for f in again.files] == ["unchanged"] and counts(db) == before


def test_edited_file_replaces_its_previous_version(db: Database, tmp_path: Path) -> None:
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    report = import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V2)])
    assert [f.status for f in report.files] == ["updated"]
    assert counts(db)[0] == 1
    kb = KnowledgeBase.open(db, fast_settings())
    assert "4万元" in kb.answer("危房拆除重建补多少钱").text


def test_replace_keeps_only_the_given_files(db: Database, tmp_path: Path) -> None:
    import_files(db, [write(tmp_path, "a.md", HANDBOOK_V1)])
    other = write(tmp_path, "b.txt", "第一条 临时救助一般不超过3000元。\n")
    import_files(db, [other])
    assert counts(db)[0] == 2
    report = import_files(db, [other], replace=True)
    assert report.removed == ["a.md"]
    with db.session() as session:
        assert session.scalars(select(KbDocument.name)).all() == ["b.txt"]


def test_a_bad_file_imports_nothing_from_the_batch(db: Database, tmp_path: Path) -> None:
    good = write(tmp_path, "good.md", HANDBOOK_V1)
    empty = write(tmp_path, "empty.txt", "")
    with pytest.raises(HandbookImportError) as error:
        import_files(db, [good, empty])
    assert [f.path.name for f in error.value.failures] == ["empty.txt"]
    assert counts(db) == (0, 0, 0)


def test_index_is_persisted_with_the_passages(db: Database, tmp_path: Path) -> None:
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    with db.session() as session:
        index = session.scalars(select(KbIndex)).one()
        assert index.passages == counts(db)[2] and len(index.payload) > 100


def test_queries_never_rebuild_the_index(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    kb = KnowledgeBase.open(db, fast_settings())

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("index rebuilt while answering")

    monkeypatch.setattr("knowledge.store.index_store.build_index", forbidden)
    monkeypatch.setattr("knowledge.snapshot.rebuild_index", forbidden)
    for question in ("低保每月多少", "危房改造找谁申请", "🙂", "考驾照有补贴吗"):
        kb.answer(question)


def test_two_workers_see_each_others_changes(db: Database, tmp_path: Path) -> None:
    worker_a = KnowledgeBase.open(db, fast_settings())
    worker_b = KnowledgeBase.open(db, fast_settings())
    assert worker_b.answer("低保每月多少").handover  # nothing loaded yet
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    answer = worker_b.answer("低保每月多少")
    assert not answer.handover and "450元" in answer.text
    assert worker_a.answer("危房改造补多少钱").sources[0].article == "第一条"
    assert worker_a.generation == worker_b.generation


def test_reload_waits_for_the_check_interval(db: Database, tmp_path: Path) -> None:
    slow = KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=3600))
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    assert slow.answer("低保每月多少").handover  # not checked yet: still the empty snapshot
    slow.reload()
    assert not slow.answer("低保每月多少").handover


def test_sample_is_loaded_only_into_an_empty_database(db: Database, tmp_path: Path) -> None:
    assert ensure_sample_loaded(db) is True
    assert ensure_sample_loaded(db) is False
    assert counts(db)[1] >= 30
    kb = KnowledgeBase.open(db, fast_settings())
    assert kb.answer("雨露计划一年补多少").sources[0].article == "第三十条"


@pytest.mark.parametrize("replace", [False, True])
def test_a_real_import_removes_the_sample_in_the_same_transaction(
    db: Database, tmp_path: Path, replace: bool
) -> None:
    ensure_sample_loaded(db)
    before = generation(db)
    report = import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)], replace=replace)
    assert report.sample_removed and report.removed == ["qingshan_handbook.md"]
    with db.session() as session:
        assert session.execute(select(KbDocument.name)).scalars().all() == ["policy.md"]
    assert generation(db) == before + 1  # one transaction: one bump
    kb = KnowledgeBase.open(db, fast_settings())
    assert kb.answer("雨露计划一年补多少").handover  # the fictional county no longer answers


def test_importing_the_sample_again_or_nothing_real_keeps_it(db: Database, tmp_path: Path) -> None:
    ensure_sample_loaded(db)
    from knowledge.ingest.importer import SAMPLE_HANDBOOK

    report = import_files(db, [SAMPLE_HANDBOOK])
    assert not report.sample_removed and report.files[0].status == "unchanged"
    assert counts(db)[0] == 1


def test_cli_summary_says_the_sample_was_removed(db: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from knowledge import cli

    ensure_sample_loaded(db)
    cli.set_db_factory(lambda: db)
    result = CliRunner().invoke(cli.app, ["handbook", "import", str(write(tmp_path, "policy.md", HANDBOOK_V1))])
    assert result.exit_code == 0, result.output
    assert "示例汇编" in result.output


def test_overlong_heading_imports_on_every_database(db: Database, tmp_path: Path) -> None:
    heading = "住房安全保障政策" * 45  # 360 characters, longer than String(255)
    text = f"# {heading}\n\n## 第一章 {heading}\n\n第一条【补助】每户补助3.5万元。\n"
    import_files(db, [write(tmp_path, "long.md", text)])
    with db.session() as session:
        assert len(session.execute(select(KbDocument.title)).scalar_one()) == 255


def test_concurrent_answers_after_one_change_make_one_load(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import knowledge.service as service

    kb = KnowledgeBase.open(db, fast_settings())
    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    loads: list[int] = []
    real = service.load_snapshot

    def slow_load(*args: object, **kwargs: object) -> object:
        loads.append(1)
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "load_snapshot", slow_load)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def ask() -> None:
        barrier.wait()
        results.append(kb.answer("低保每月多少").handover)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert results == [False] * 8


def test_a_failed_reload_keeps_the_old_snapshot_and_synonym_edits_are_picked_up(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    import_files(db, [write(tmp_path, "policy.md", HANDBOOK_V1)])
    synonyms = write(tmp_path, "extra_synonyms.txt", "吃救济 => 低保\n")
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=0, kb_synonyms_file=synonyms))
    loaded = kb._snapshot
    assert not kb.answer("低保每月多少").handover
    assert kb._snapshot is loaded  # nothing changed: no reload

    synonyms.write_text("吃救济 低保 没有箭头\n", encoding="utf-8")
    os.utime(synonyms, ns=(time_ns() + 10**9, time_ns() + 10**9))
    answer = kb.answer("低保每月多少")  # must not raise
    assert not answer.handover and kb._snapshot is loaded
    assert any("reload failed" in r.getMessage() for r in caplog.records)

    synonyms.write_text("吃救济|吃低保 => 低保\n", encoding="utf-8")
    os.utime(synonyms, ns=(time_ns() + 2 * 10**9, time_ns() + 2 * 10**9))
    kb.answer("低保每月多少")
    assert kb._snapshot is not loaded  # the edited file was loaded without a restart


def test_a_missing_synonym_file_is_warned_about_once(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no_such_synonyms.txt"
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=0, kb_synonyms_file=missing))
    for _ in range(3):
        kb.answer("低保每月多少")
    assert sum("no_such_synonyms.txt" in r.getMessage() for r in caplog.records) == 1


def test_a_question_queued_twice_by_a_race_does_not_break_the_queue(db: Database) -> None:
    from knowledge.store.unanswered import record_unanswered
    from storage.models.knowledge import KbUnanswered

    first = record_unanswered(db, "o1", "我家牛丢了咋办")
    with db.session() as session:  # what two workers checking at the same moment leave behind
        session.add(KbUnanswered(openid="o1", question="我家牛丢了咋办",
                                 normalized=session.get(KbUnanswered, first).normalized))
    assert record_unanswered(db, "o1", "我家牛丢了咋办") == first


def test_a_synonym_added_concurrently_returns_the_existing_rule(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.store import synonyms

    real_find = synonyms._find_synonym
    calls: list[int] = []

    def racing_find(*args: str) -> int | None:  # the other cadre's insert lands right after our check
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(synonyms, "_find_synonym", real_find)
            other = synonyms._insert_synonym(db, "吃救济", "低保")
            monkeypatch.setattr(synonyms, "_find_synonym", racing_find)
            assert other
            return None
        return real_find(*args)

    monkeypatch.setattr(synonyms, "_find_synonym", racing_find)
    rule_id = synonyms.add_synonym(db, "吃救济", "低保")
    assert [r.id for r in synonyms.list_synonyms(db)] == [rule_id]


def test_a_concurrent_second_import_of_the_same_file_reports_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.ingest import importer

    db = sqlite_database(tmp_path)
    import_files(db, [write(tmp_path, "other.md", HANDBOOK_V1.replace("示例县", "某县"))])
    path = write(tmp_path, "policy.md", HANDBOOK_V1)
    real_insert = importer._insert_document
    raced: list[int] = []

    def insert_after_the_other_worker(session, item):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(1)
            import_files(db, [path])  # the other process wins between our read and our insert
        return real_insert(session, item)

    monkeypatch.setattr(importer, "_insert_document", insert_after_the_other_worker)
    report = import_files(db, [path])
    assert [f.status for f in report.files] == ["unchanged"]
    assert counts(db)[0] == 2
