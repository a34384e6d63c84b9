"""Running a question-answering system over an evaluation set and scoring it.

A "system" is anything with ``answer(question, last_topic) -> Answer``, so the
knowledge base and the plain baseline are measured by the same code.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from knowledge.result import Answer, Source
from knowledge.evaluation.dataset import EvalItem


class System(Protocol):
    def answer(self, question: str, last_topic: str | None = None) -> Answer: ...


@dataclass
class Outcome:
    item: EvalItem
    answer: Answer
    seconds: float

    @property
    def labels(self) -> list[str]:
        return [] if self.answer.handover else [s.article for s in self.answer.sources]

    def _right(self, source: Source) -> bool:
        """The cited article is the expected one (and in the expected document, when the set names it)."""
        return source.article in self.item.articles and (self.item.document is None
                                                         or source.document == self.item.document)

    @property
    def hit1(self) -> bool:
        return not self.answer.handover and bool(self.answer.sources) and self._right(self.answer.sources[0])

    @property
    def hit3(self) -> bool:
        return not self.answer.handover and any(self._right(s) for s in self.answer.sources[:3])

    @property
    def facts_ok(self) -> bool:
        return not self.answer.handover and all(f in self.answer.text for f in self.item.facts)


@dataclass
class Metrics:
    answerable: int
    unanswerable: int
    hit1: float
    hit3: float
    facts: float
    abstain_precision: float
    abstain_recall: float
    false_handover: float
    p50_ms: float
    p99_ms: float
    outcomes: list[Outcome] = field(default_factory=list, repr=False)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes
                if (o.item.handover and not o.answer.handover) or (not o.item.handover and not (o.hit1 and o.facts_ok))]


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def evaluate(system: System, items: Sequence[EvalItem]) -> Metrics:
    outcomes = []
    for item in items:
        topic = system.answer(item.context).topic if item.context else None
        start = time.perf_counter()
        answer = system.answer(item.question, topic)
        outcomes.append(Outcome(item, answer, time.perf_counter() - start))
    answerable = [o for o in outcomes if not o.item.handover]
    unanswerable = [o for o in outcomes if o.item.handover]
    handed = [o for o in outcomes if o.answer.handover]
    share = lambda part, whole: len(part) / len(whole) if whole else 0.0  # noqa: E731
    latencies = [o.seconds * 1000 for o in outcomes]
    return Metrics(
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        hit1=share([o for o in answerable if o.hit1], answerable),
        hit3=share([o for o in answerable if o.hit3], answerable),
        facts=share([o for o in answerable if o.facts_ok], answerable),
        abstain_precision=share([o for o in handed if o.item.handover], handed) if handed else 1.0,
        abstain_recall=share([o for o in unanswerable if o.answer.handover], unanswerable),
        false_handover=share([o for o in answerable if o.answer.handover], answerable),
        p50_ms=statistics.median(latencies) if latencies else 0.0,
        p99_ms=_percentile(latencies, 0.99),
        outcomes=outcomes,
    )
