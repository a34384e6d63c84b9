"""How well the survey understands answers, on labelled replies it was not tuned on, and how fast.

    python bench/survey_answers.py [--split tune|heldout|heldout2 ...] [--failures] [--skip-speed]

For each split of tests/data/survey_answers/ (see its README: heldout and heldout2 were never looked
at while tuning) prints the exact accuracy (outcome and codes), accuracy per expected outcome and per
question, the confusion of outcomes, and the **wrong-code rate**: replies for which a code would be
recorded that the household did not mean (worse than asking again). "acceptable" also counts a
confirm of the right code where an answer was expected (one more turn, nothing wrong recorded).
Then µs per call of read_answer over all examples.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.survey.questionnaire import Questionnaire, default  # noqa: E402
from bot.survey.understanding import Reading, read_answer  # noqa: E402

DATA = ROOT / "tests" / "data" / "survey_answers"
SPLITS = ("tune", "heldout", "heldout2")
OUTCOMES = ("answer", "confirm", "unclear", "skip", "quit")


@dataclass(frozen=True)
class Example:
    split: str
    line: int
    question: str
    message: str
    outcome: str
    codes: tuple[int, ...]
    style: str

    def expected(self) -> Reading:
        if self.outcome == "answer" and not self.codes:
            return Reading("answer", text=self.message.strip())
        return Reading(self.outcome, self.codes)


def load_examples(split: str) -> list[Example]:
    out = []
    path = DATA / f"{split}.tsv"
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        question, message, outcome, codes, style = line.split("\t")
        if outcome not in OUTCOMES:
            raise ValueError(f"{path}:{number}: unknown outcome {outcome!r}")
        out.append(Example(split, number, question, message, outcome,
                           tuple(int(c) for c in codes.split()), style))
    return out


@dataclass
class Score:
    total: int = 0
    exact: int = 0
    acceptable: int = 0
    wrong_code: int = 0

    @property
    def accuracy(self) -> float:
        return self.exact / self.total if self.total else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong_code / self.total if self.total else 0.0


def is_wrong_code(example: Example, got: Reading) -> bool:
    """Something would be recorded that the household did not say."""
    if got.outcome != "answer":
        return False
    want = example.expected()
    if want.outcome not in ("answer", "confirm"):
        return True
    return got.codes != want.codes or got.text != want.text


def judge(example: Example, got: Reading) -> tuple[bool, bool, bool]:
    want = example.expected()
    exact = got == want
    acceptable = exact or (want.outcome == "answer" and got.outcome == "confirm" and got.codes == want.codes)
    return exact, acceptable, is_wrong_code(example, got)


def evaluate(examples: list[Example], questionnaire: Questionnaire | None = None):
    questionnaire = questionnaire or default()
    overall = Score()
    by_outcome: dict[str, Score] = defaultdict(Score)
    by_question: dict[str, Score] = defaultdict(Score)
    by_style: dict[str, Score] = defaultdict(Score)
    confusion: Counter[tuple[str, str]] = Counter()
    failures: list[tuple[Example, Reading]] = []
    for example in examples:
        got = read_answer(questionnaire.question(example.question), example.message)
        exact, acceptable, wrong = judge(example, got)
        for score in (overall, by_outcome[example.outcome], by_question[example.question], by_style[example.style]):
            score.total += 1
            score.exact += exact
            score.acceptable += acceptable
            score.wrong_code += wrong
        confusion[(example.outcome, got.outcome)] += 1
        if not exact:
            failures.append((example, got))
    return overall, by_outcome, by_question, by_style, confusion, failures


def _row(name: str, s: Score) -> str:
    return (f"  {name:<14} {s.total:>5} {s.accuracy:>7.3f} {s.acceptable / max(s.total, 1):>7.3f} "
            f"{s.wrong_code:>6} {s.wrong_rate:>7.3f}")


def report(split: str, show_failures: bool) -> Score:
    examples = load_examples(split)
    overall, by_outcome, by_question, by_style, confusion, failures = evaluate(examples)
    print(f"\n== {split} ({len(examples)} examples)")
    print(f"  {'':<14} {'n':>5} {'exact':>7} {'accept':>7} {'wrong':>6} {'wrong%':>7}")
    print(_row("all", overall))
    for name in OUTCOMES:
        if name in by_outcome:
            print(_row(f"want {name}", by_outcome[name]))
    for name, score in by_question.items():
        print(_row(name, score))
    for name, score in sorted(by_style.items()):
        print(_row(f"style {name}", score))
    print("  confusion (rows expected, columns read):")
    print("  " + " " * 10 + "".join(f"{o:>9}" for o in OUTCOMES))
    for want in OUTCOMES:
        print(f"  {want:<10}" + "".join(f"{confusion[(want, got)]:>9}" for got in OUTCOMES))
    if show_failures:
        for example, got in failures:
            mark = "WRONG CODE" if is_wrong_code(example, got) else ""
            print(f"  {example.split}:{example.line} {example.question} {example.message!r}: want "
                  f"{example.outcome} {example.codes} got {got.outcome} {got.codes} {mark}")
    return overall


def speed(rounds: int = 20) -> tuple[float, float, float]:
    """Mean, p99 and max µs per read_answer call over every example, warm."""
    questionnaire = default()
    cases = [(questionnaire.question(e.question), e.message) for s in SPLITS for e in load_examples(s)]
    for question, message in cases:  # warm the per-question tables and the pinyin cache
        read_answer(question, message)
    times = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for question, message in cases:
            start = clock()
            read_answer(question, message)
            times.append(clock() - start)
    times.sort()
    return (sum(times) / len(times) / 1000, times[int(len(times) * 0.99)] / 1000, times[-1] / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", action="append", choices=SPLITS)
    parser.add_argument("--failures", action="store_true", help="list every example read wrongly")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    print("targets: held-out exact ≥ 0.90, wrong-code rate ≤ 0.02, < 200 µs per call")
    for split in args.split or SPLITS:
        report(split, args.failures)
    if not args.skip_speed:
        mean, p99, worst = speed()
        print(f"\nread_answer µs per call (all examples, warm): mean {mean:.1f}, p99 {p99:.1f}, max {worst:.1f}")


if __name__ == "__main__":
    main()
