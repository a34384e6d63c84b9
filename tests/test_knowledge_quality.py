"""Answer quality on the evaluation set, with a small margin under the targets.

bench/qa_eval.py prints the same figures (and the baseline and speed); this
test keeps them from sliding. The set is tests/data/qa_eval.jsonl: colloquial
questions as households ask them, with typos and voice-input homophones, and
questions the handbook cannot answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge.evaluation.baseline import PlainBaseline
from knowledge.evaluation.dataset import load_items
from knowledge.evaluation.metrics import Metrics, evaluate
from knowledge.testing import sqlite_database

EVAL_SET = Path(__file__).parent / "data" / "qa_eval.jsonl"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Metrics, Metrics]:
    db = sqlite_database(tmp_path_factory.mktemp("quality"))
    ensure_sample_loaded(db)
    kb = KnowledgeBase.open(db)
    items = load_items(EVAL_SET)
    return evaluate(kb, items), evaluate(PlainBaseline(kb._fresh_snapshot().articles), items)


def test_eval_set_is_large_and_varied() -> None:
    items = load_items(EVAL_SET)
    assert len(items) >= 300
    assert sum(i.handover for i in items) >= 60
    assert sum(1 for i in items if i.context) >= 5


def test_quality_meets_the_targets_with_a_margin(results: tuple[Metrics, Metrics]) -> None:
    # Targets (issue 3): hit@1 ≥ 0.90, facts ≥ 0.85, abstention ≥ 0.85, false hand-overs ≤ 5%.
    ours, _ = results
    assert ours.hit1 >= 0.88, ours
    assert ours.hit3 >= 0.95, ours
    assert ours.facts >= 0.85, ours
    assert ours.abstain_recall >= 0.83, ours
    assert ours.abstain_precision >= 0.85, ours
    assert ours.false_handover <= 0.05, ours


def test_beats_plain_jieba_bm25(results: tuple[Metrics, Metrics]) -> None:
    ours, baseline = results
    assert ours.hit1 > baseline.hit1 + 0.2
    assert ours.facts > baseline.facts + 0.2
    assert ours.abstain_recall > baseline.abstain_recall + 0.5
