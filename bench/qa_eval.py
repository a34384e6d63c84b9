"""Answer quality and speed of the policy Q&A, per handbook, against a plain jieba+BM25 baseline.

    python bench/qa_eval.py [--handbook NAME ...] [--skip-speed] [--failures] [--by-kind]

Every handbook the project ships is measured on its own question set (a fresh
SQLite database each): the sample 第X条 handbook (青山县, tests/data/qa_eval.jsonl),
a 政策文件汇编 of eight documents numbered 一、（一） (云溪县, qa_eval_yunxi.jsonl) and
a 问答 booklet (石桥县, qa_eval_shiqiao.jsonl) and a second compilation written
before any tuning on it (白水县, qa_eval_baishui.jsonl, all held out). Each set says which questions were
tuned on (``dev``/``tune``) and which were held out (``holdout*``/``heldout``).

Figures: source hit@1 and hit@3 (the cited article, in the right document),
facts (the reply contains every expected fact string), abstention (share of
unanswerable questions handed over) and its precision, answer rate (share of
answerable questions answered, not handed over), p50/p99 per question; the
same for the plain baseline in the same run. ``--by-kind`` adds one line per
kind of question (amount, when, where, materials, how, eligibility, list,
table, followup, unanswerable). ``--failures`` lists what sisong gets wrong on
the tuning splits only: held-out questions are never shown while tuning
(``--heldout-failures`` shows them, for the final report); ``--tuning-only`` runs
and prints the tuning splits alone, so tuning never spends a look at the held-out figures.
Then the latency on a 500-article handbook, the latency of a question asked again (answer cache)
and the import time of a 200-page .docx. Quality and p50 are measured with the answer cache off.
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
from knowledge.evaluation.handbooks import HANDBOOKS, HELD_OUT, ShippedHandbook as Handbook, clean_held_out  # noqa: E402
from knowledge.evaluation.metrics import Metrics, evaluate  # noqa: E402
from knowledge.evaluation.synthetic import synthetic_docx, synthetic_markdown  # noqa: E402
from knowledge.ingest.importer import import_files  # noqa: E402
from knowledge.service import SAMPLE_HANDBOOK, KnowledgeBase  # noqa: E402
from knowledge.settings import KnowledgeSettings  # noqa: E402
from storage.db import Database  # noqa: E402

TARGETS = ("targets (held-out): hit@1 ≥ 0.90, facts ≥ 0.85, abstention ≥ 0.85, answer rate ≥ 0.92; "
           "p50 ≤ 2 ms (500 articles), 200-page docx ≤ 10 s")


def fresh_db(directory: Path, name: str) -> Database:
    db = Database(f"sqlite:///{directory / name}")
    db.upgrade()
    return db


def row(name: str, m: Metrics) -> str:
    return (f"{name:<30} {m.answerable:>4} {m.unanswerable:>4} {m.hit1:>6.3f} {m.hit3:>6.3f} {m.facts:>6.3f} "
            f"{m.abstain_recall:>6.3f} {m.abstain_precision:>6.3f} {1 - m.false_handover:>6.3f} "
            f"{m.p50_ms:>7.2f} {m.p99_ms:>7.2f}")


HEADER = (f"{'system [handbook/split]':<30} {'ans':>4} {'unan':>4} {'hit@1':>6} {'hit@3':>6} {'facts':>6} "
          f"{'abst.':>6} {'abstP':>6} {'answ.':>6} {'p50 ms':>7} {'p99 ms':>7}")


# The figures measure answering a question, not remembering it: the answer cache is off here
# (the speed section measures it apart).
NO_CACHE = KnowledgeSettings(kb_answer_cache=0)


def open_handbook(directory: Path, handbook: Handbook) -> KnowledgeBase:
    db = fresh_db(directory, f"{handbook.name}.db")
    import_files(db, list(handbook.files))
    kb = KnowledgeBase.open(db, NO_CACHE)
    kb.answer("预热")  # first call builds or maps the word dictionary and loads the index; not a household's latency
    return kb


def quality(directory: Path, handbook: Handbook, by_kind: bool, failures: bool, heldout_failures: bool,
            tuning_only: bool = False) -> Metrics | None:
    items = load_items(handbook.questions)
    if tuning_only:  # while tuning, not even the held-out figures are printed (each look spends them)
        items = [i for i in items if i.split not in HELD_OUT]
        if not items:  # a handbook written wholly as held-out (白水县) has nothing to tune on
            return None
    kb = open_handbook(directory, handbook)
    baseline = PlainBaseline(kb._fresh_snapshot().articles)
    splits = list(dict.fromkeys(i.split for i in items))
    # Held-out figures leave out questions whose words a tuning split also has (clean_held_out).
    held, seen = clean_held_out(items)
    for split in splits:
        chosen = [i for i in items if i.split == split]
        print(row(f"sisong [{handbook.name}/{split}]", evaluate(kb, chosen)))
    ours = evaluate(kb, items)
    print(row(f"sisong [{handbook.name}/all]", ours))
    if seen:
        print(f"  ({len(seen)} held-out questions left out of {handbook.name}'s held-out figures: "
              "their words stand in a tuning split)")
    if held:
        print(row(f"baseline [{handbook.name}/held-out]", evaluate(baseline, held)))
    print(row(f"baseline [{handbook.name}/all]", evaluate(baseline, items)))
    if by_kind:
        for kind in sorted({i.kind for i in items if i.kind}):
            chosen = [i for i in items if i.kind == kind]
            print(row(f"  sisong [{handbook.name}] {kind}", evaluate(kb, chosen)))
    shown = [o for o in ours.failures()
             if (o.item.split in HELD_OUT and heldout_failures) or (o.item.split not in HELD_OUT and failures)]
    for o in shown:
        got = [f"{s.document[-8:]}{s.article}" for s in o.answer.sources]
        print(f"    #{o.item.id} [{o.item.split}] {o.item.question!r} want {list(o.item.articles)} "
              f"{list(o.item.facts)} got {'HANDOVER' if o.answer.handover else got} "
              f"{o.answer.text.splitlines()[0][:80]!r}")
    return evaluate(kb, held) if held else ours


def speed(directory: Path, items: list[EvalItem]) -> None:
    big = directory / "handbook500.md"
    big.write_text(synthetic_markdown(SAMPLE_HANDBOOK, 500), encoding="utf-8")
    db = fresh_db(directory, "big.db")
    report = import_files(db, [big])
    kb = KnowledgeBase.open(db, NO_CACHE)
    kb.answer("预热")
    m = evaluate(kb, items)
    print(f"\n500-article handbook ({report.articles} articles): p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms per question;"
          f" hit@1 {m.hit1:.3f} with the extra articles as distractors")
    cached = KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=4096))
    for item in items:
        cached.answer(item.question)
    times = []
    for item in items:
        start = time.perf_counter()
        cached.answer(item.question)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"answer cache (SISONG_KB_ANSWER_CACHE=4096), a question asked again: p50 {times[len(times) // 2]:.3f} ms "
          f"(the generation check included)")

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
    parser.add_argument("--handbook", action="append", choices=[h.name for h in HANDBOOKS],
                        help="only this handbook (repeatable); default all")
    parser.add_argument("--skip-speed", action="store_true", help="only the quality figures")
    parser.add_argument("--by-kind", action="store_true", help="one line per kind of question")
    parser.add_argument("--failures", action="store_true", help="list what sisong gets wrong on the tuning splits")
    parser.add_argument("--tuning-only", action="store_true",
                        help="only the tuning splits: no held-out question is run or printed (use while tuning)")
    parser.add_argument("--heldout-failures", action="store_true",
                        help="list held-out failures too (not while tuning: the figures would stop meaning anything)")
    args = parser.parse_args()
    print(TARGETS)
    print(HEADER)
    chosen = [h for h in HANDBOOKS if not args.handbook or h.name in args.handbook]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        held = {h.name: quality(directory, h, args.by_kind, args.failures, args.heldout_failures, args.tuning_only)
                for h in chosen}
        if args.tuning_only:
            return
        print("\nheld-out, per handbook (targets: hit@1 0.90, facts 0.85, abstention 0.85, answer rate 0.92):")
        for name, m in held.items():
            print(row(f"sisong [{name}/held-out]", m))
        if not args.skip_speed:
            speed(directory, load_items(HANDBOOKS[0].questions))


if __name__ == "__main__":
    main()
