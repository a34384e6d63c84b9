"""A synonym or FAQ a cadre adds answers the very next question, in every worker, without a restart.

Two kinds of worker hold a loaded knowledge base: another process (``sisong ask --json``
reading questions from its stdin, started before the change and kept running) and a
second ``KnowledgeBase`` over its own engine in this process. Both run on the default
settings (no reload interval configured) against the same database, on SQLite and on
the PostgreSQL of SISONG_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge import cli as knowledge_cli
from knowledge.settings import KnowledgeSettings
from knowledge.store.faq import add_faq
from knowledge.testing import reset_knowledge, sqlite_database
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("SISONG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Households say 牲口屋; the sample handbook says 圈舍 (第十九条, what a loan may pay for).
QUESTION = "贷款能拿来修牲口屋不"
FAQ_QUESTION = "合作社的分红啥时候发"
FAQ_ANSWER = "合作社分红每年腊月二十前发到一卡通，具体问村委会。"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, str]]:
    if request.param == "sqlite":
        db = sqlite_database(tmp_path)
        url = str(db.engine.url)
    else:
        db = Database(PG_URL)
        try:
            db.upgrade()
        except Exception as exc:  # noqa: BLE001 - no server: say so, do not fail the SQLite half
            pytest.skip(f"PostgreSQL does not answer: {exc}")
        reset_knowledge(db)
        url = PG_URL
    ensure_sample_loaded(db)
    yield db, url
    if request.param == "postgresql":
        reset_knowledge(db)
    db.dispose()


class AskProcess:
    """``sisong ask --json`` kept running: one question a line in, one JSON answer a line out."""

    def __init__(self, url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_")}
        env.update(SISONG_DATABASE_URL=url, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "ask", "--json"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")

    def ask(self, question: str) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(question + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the ask process ended: {self.process.stderr.read() if self.process.stderr else ''}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def test_a_synonym_and_an_faq_answer_the_next_question_in_every_worker(database: tuple[Database, str]) -> None:
    db, url = database
    other_process = AskProcess(url)
    # A second worker in this process: its own engine, default settings (no interval configured).
    worker = KnowledgeBase.open(Database(url), KnowledgeSettings())
    try:
        before = other_process.ask(QUESTION)
        assert before["handover"] is True, before
        assert worker.answer(QUESTION).handover

        knowledge_cli.set_db_factory(lambda: db)  # the cadre's `sisong synonym add`, on the same database
        result = CliRunner().invoke(knowledge_cli.app, ["synonym", "add", "牲口屋", "圈舍"])
        assert result.exit_code == 0, result.output

        after = other_process.ask(QUESTION)  # the very next question, no wait, no restart
        assert after["handover"] is False, after
        assert after["sources"][0]["article"] == "第十九条"
        assert "圈舍" in after["answer"]
        answer = worker.answer(QUESTION)
        assert not answer.handover and answer.sources[0].article == "第十九条"

        add_faq(db, FAQ_QUESTION, FAQ_ANSWER)
        assert other_process.ask(FAQ_QUESTION)["answer"].startswith(FAQ_ANSWER)
        assert worker.answer(FAQ_QUESTION).text.startswith(FAQ_ANSWER)
    finally:
        knowledge_cli.set_db_factory(knowledge_cli._default_db)
        other_process.close()
        worker.db.dispose()
