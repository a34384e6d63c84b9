"""The 石门县 实施细则 (chapters with 一、（一） sections inside them, no 第X条): how it is cited,
and its answer quality held out, with a margin.

The handbook was written by another engineer as a reproduction of the chapter shape whose
sections used to be lost under their chapter; its household question set
(tests/data/qa_eval_shimen.jsonl) was written and split before the first run. The fourth round
tuned general rules on its ``tune`` and ``tune2`` splits, never on the held-out one. The floors
below keep the figures from sliding; they are far under the issue's targets (see
docs/knowledge.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import knowledge.cli as cli
from knowledge import KnowledgeBase
from knowledge.evaluation.dataset import load_items
from knowledge.evaluation.handbooks import HANDBOOKS, HELD_OUT, clean_held_out
from knowledge.evaluation.metrics import Metrics, evaluate
from knowledge.ingest.importer import import_files
from knowledge.settings import KnowledgeSettings
from knowledge.testing import sqlite_database
from storage.db import Database

SHIMEN = next(h for h in HANDBOOKS if h.name == "shimen")
TITLE = "石门县城乡居民医疗保障和医疗救助实施细则"

# Held-out figures measured on 2026-11-28 03:30 UTC (bench/qa_eval.py --skip-speed --handbook shimen),
# less about 0.03 (abstention: one of its 8 unanswerable questions). First run, before chapters
# nested: hit@1 0.000 (no label could match), facts 0.488, abstention 0.875, answer rate 0.805.
# Fourth round (2026-11-28 04:01 UTC, ranking tuned on the tune and tune2 splits, never on these):
# measured 0.564 0.590 0.625 0.872; abstention fell by one question of 8 and keeps its floor.
#              hit@1  facts  abstention  answer rate
HELD_OUT_FLOOR = (0.60, 0.62, 0.50, 0.84)  # measured 0.632 0.658 0.625 0.868 (clean_held_out; see test_knowledge_quality.py)


@pytest.fixture(scope="module")
def shimen_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    db = sqlite_database(tmp_path_factory.mktemp("shimen"))
    import_files(db, list(SHIMEN.files))
    return db


@pytest.fixture
def cli_db(shimen_db: Database) -> Iterator[Database]:
    cli.set_db_factory(lambda: shimen_db)
    yield shimen_db
    cli.set_db_factory(cli._default_db)


def test_the_set_is_varied_and_split_before_any_run() -> None:
    items = load_items(SHIMEN.questions)
    held = [i for i in items if i.split in HELD_OUT]
    assert len(items) >= 60 and len(held) >= 45
    # tune2: a fresh tuning sample written on 2026-11-28 before the fourth round's work on ranking.
    assert {i.split for i in items} == {"tune", "tune2", "heldout"}
    assert sum(i.handover for i in held) >= 5 and sum(1 for i in items if i.context) >= 3
    assert len({i.kind for i in held}) >= 6


def test_every_expected_label_is_one_the_importer_cites(shimen_db: Database) -> None:
    """The set names sections as the importer cites them (第三章 二、（一）); a label that no
    article has could never be hit, and would only lower the figures silently."""
    articles = KnowledgeBase.open(shimen_db, KnowledgeSettings())._fresh_snapshot().articles
    cited = {(a.document, a.cited_label) for a in articles}
    for item in load_items(SHIMEN.questions):
        for label in item.articles:
            assert (item.document, label) in cited, (item.id, label)


def test_ask_json_cites_the_document_and_the_section_with_its_chapter(cli_db: Database) -> None:
    result = CliRunner().invoke(cli.app, ["ask", "--json"], input="大病保险超过好多钱才报\n")
    assert result.exit_code == 0, result.output
    reply = next(json.loads(line) for line in result.output.splitlines() if line.startswith("{"))
    source = reply["sources"][0]
    assert (source["document"], source["chapter"], source["article"]) == (TITLE, "第三章", "第三章 四、")
    assert "1.2万元" in reply["answer"]
    assert f"——摘自《{TITLE}》第三章 四、大病保险" in reply["answer"]


@pytest.fixture(scope="module")
def held_out(shimen_db: Database) -> Metrics:
    kb = KnowledgeBase.open(shimen_db, KnowledgeSettings())
    return evaluate(kb, clean_held_out(load_items(SHIMEN.questions))[0])


def test_held_out_quality(held_out: Metrics) -> None:
    hit1, facts, abstention, answered = HELD_OUT_FLOOR
    assert held_out.hit1 >= hit1, held_out
    assert held_out.facts >= facts, held_out
    assert held_out.abstain_recall >= abstention, held_out
    assert 1 - held_out.false_handover >= answered, held_out
