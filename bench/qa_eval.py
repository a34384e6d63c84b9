"""Answer quality and speed of the policy Q&A, against a plain jieba+BM25 baseline.

    python bench/qa_eval.py [--eval tests/data/qa_eval.jsonl] [--skip-speed] [--failures]

Prints, for the shipped sample handbook and the evaluation set: source hit@1
and hit@3, the share of answers containing the expected facts, abstention
precision/recall on questions the handbook cannot answer, the false hand-over
rate on ones it can, and p50/p99 latency per question; the same for the
baseline in the same run; then the latency on a 500-article handbook and the
import time of a 200-page .docx. Everything runs on a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import storage.models.knowledge  # noqa: E402,F401  (registers the tables before migrations)
from knowledge.evaluation.baseline import PlainBaseline  # noqa: E402
from knowledge.evaluation.dataset import EvalItem, load_items  # noqa: E402
from knowledge.evaluation.metrics import Metrics, evaluate  # noqa: E402
from knowledge.evaluation.synthetic import synthetic_docx, synthetic_markdown  # noqa: E402
from knowledge.ingest.importer import import_files  # noqa: E402
from knowledge.service import SAMPLE_HANDBOOK, KnowledgeBase  # noqa: E402
from storage.db import Database  # noqa: E402

TARGETS = "targets: hit@1 ≥ 0.90, facts ≥ 0.85, abstention recall ≥ 0.85, false hand-over ≤ 0.05, p50 ≤ 5 ms (500 articles), 200-page docx ≤ 10 s"


def fresh_db(directory: Path, name: str) -> Database:
    db = Database(f"sqlite:///{directory / name}")
    db.upgrade()
    return db


def row(name: str, m: Metrics) -> str:
    return (f"{name:<22} {m.answerable:>4} {m.unanswerable:>4} {m.hit1:>6.3f} {m.hit3:>6.3f} {m.facts:>6.3f} "
            f"{m.abstain_precision:>7.3f} {m.abstain_recall:>7.3f} {m.false_handover:>7.3f} "
            f"{m.p50_ms:>7.2f} {m.p99_ms:>7.2f}")


HEADER = (f"{'system':<22} {'ans':>4} {'unans':>4} {'hit@1':>6} {'hit@3':>6} {'facts':>6} "
          f"{'abst.P':>7} {'abst.R':>7} {'falseHO':>7} {'p50 ms':>7} {'p99 ms':>7}")


def quality(directory: Path, items: list[EvalItem], show_failures: bool) -> None:
    db = fresh_db(directory, "sample.db")
    import_files(db, [SAMPLE_HANDBOOK])
    kb = KnowledgeBase.open(db)
    kb.answer("预热")  # first call loads jieba's tables; not a household's latency
    print(HEADER)
    for split in dict.fromkeys(i.split for i in items):  # dev, holdout, holdout2 … in file order
        chosen = [i for i in items if i.split == split]
        if chosen:
            print(row(f"sisong [{split}]", evaluate(kb, chosen)))
    ours = evaluate(kb, items)
    print(row("sisong [all]", ours))
    baseline = PlainBaseline(kb._fresh_snapshot().articles)
    print(row("baseline jieba+BM25", evaluate(baseline, items)))
    if show_failures:
        print("\nsisong failures:")
        for o in ours.failures():
            got = [s.article for s in o.answer.sources]
            print(f"  #{o.item.id} {o.item.question!r} want {list(o.item.articles)} {list(o.item.facts)}"
                  f" got {'HANDOVER' if o.answer.handover else got}")


def speed(directory: Path, items: list[EvalItem]) -> None:
    big = directory / "handbook500.md"
    big.write_text(synthetic_markdown(SAMPLE_HANDBOOK, 500), encoding="utf-8")
    db = fresh_db(directory, "big.db")
    report = import_files(db, [big])
    kb = KnowledgeBase.open(db)
    kb.answer("预热")
    m = evaluate(kb, items)
    print(f"\n500-article handbook ({report.articles} articles): p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms per question;"
          f" hit@1 {m.hit1:.3f} with the extra articles as distractors")

    docx_path = directory / "handbook200.docx"
    articles = synthetic_docx(docx_path, pages=200)
    db = fresh_db(directory, "docx.db")
    import_files(db, [SAMPLE_HANDBOOK])  # the index is rebuilt over everything: measure the realistic case
    start = time.perf_counter()
    report = import_files(db, [docx_path])
    seconds = time.perf_counter() - start
    print(f"200-page .docx ({docx_path.stat().st_size // 1024} KiB, {articles} articles written, "
          f"{report.articles} recognised): imported in {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=ROOT / "tests" / "data" / "qa_eval.jsonl")
    parser.add_argument("--skip-speed", action="store_true", help="only the quality figures")
    parser.add_argument("--failures", action="store_true", help="list the questions sisong gets wrong")
    args = parser.parse_args()
    items = load_items(args.eval)
    print(TARGETS)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        quality(directory, items, args.failures)
        if not args.skip_speed:
            speed(directory, items)


if __name__ == "__main__":
    main()
