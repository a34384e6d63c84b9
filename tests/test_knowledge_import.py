"""Importing into the database and loading from it, on SQLite and PostgreSQL.

Idempotent re-import, an edited file replacing its old version, --replace,
all-or-nothing batches, the persisted index, and two KnowledgeBase instances
(two workers) seeing each other's changes without a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="module")
def postgres() -> Iterator[Database]:
    db = postgres_database("kb_test")
    if db is None:
        pytest.skip("PostgreSQL does not answer")
    yield db
    drop_postgres_database(db, "kb_test")


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
