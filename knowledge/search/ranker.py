"""Ranking articles for a question and measuring how well the best one covers it.

Passages are scored with BM25; an article scores as its best passage. The
confidence of a candidate is the share of the question's topic concepts
(weighted by rarity) that the article mentions in any of their forms. BM25
alone always returns *something*; coverage is what tells a question about
低保 from one about 驾照 that merely shares the word 补贴.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knowledge.search.index import PassageIndex
from knowledge.search.query import Concept, Query


SHORTLIST = 10
PART_CREDIT = 0.5  # the article has 证明 where the question said 出生证明
UNMATCHED_KNOWN = 0.35  # cost of a handbook word the article lacks, relative to its weight
COVERAGE_BASE = 0.2  # a candidate covering none of the question keeps this share of its score


@dataclass
class Candidate:
    position: int  # index into the snapshot's article list
    score: float
    coverage: float
    matched: list[Concept]


class Ranker:
    def __init__(self, index: PassageIndex, passage_article: np.ndarray, article_count: int) -> None:
        self.index = index
        self.passage_article = passage_article.astype(np.int64)
        self.article_count = article_count
        order = np.argsort(self.passage_article, kind="stable")
        bounds = np.searchsorted(self.passage_article[order], np.arange(article_count + 1))
        self.article_passages = [order[bounds[i]:bounds[i + 1]] for i in range(article_count)]

    def article_scores(self, query: Query) -> np.ndarray:
        passage_scores = self.index.score(query.term_weights(self.index))
        scores = np.zeros(self.article_count, dtype=np.float32)
        if len(passage_scores):
            np.maximum.at(scores, self.passage_article, passage_scores)
        return scores

    def _present(self, position: int, term: str) -> bool:
        tid = self.index.term_id(term)
        if tid is None:
            return False
        return bool(np.isin(self.index.postings(tid), self.article_passages[position], assume_unique=True).any())

    def credit(self, position: int, concept: Concept) -> float:
        """1 if the article has a whole word for the concept, PART_CREDIT if only a piece of one."""
        if any(self._present(position, t) for t in concept.heads):
            return 1.0
        if any(self._present(position, t) for t in concept.terms if t not in concept.heads):
            return PART_CREDIT
        return 0.0

    def coverage(self, position: int, query: Query) -> tuple[float, list[Concept]]:
        """Share of the question's weight the article covers.

        A word the handbook uses elsewhere but this article lacks (老人, 时间) is
        usually the household's phrasing and costs little; a word the handbook
        never uses costs its full weight: that is the sign of a topic it lacks.
        """
        concepts = query.topic_concepts or [c for c in query.concepts if not c.from_context]
        got = total = 0.0
        matched = []
        for concept in concepts:
            credit = self.credit(position, concept)
            if credit:
                matched.append(concept)
            missing = concept.weight * (1 - credit)
            got += concept.weight * credit
            total += concept.weight * credit + (missing * UNMATCHED_KNOWN if concept.known else missing)
        return (got / total if total > 0 else 0.0), matched

    def rank(self, query: Query, k: int = 3, boost: dict[int, float] | None = None) -> list[Candidate]:
        """Top ``k`` articles: BM25 shortlist, re-ordered by how much of the question each covers.

        BM25 rewards repeating one word; an article that mentions every part of the
        question (搬迁 *and* 补多少钱) should beat one that says 搬迁 five times.
        """
        if self.article_count == 0:
            return []
        scores = self.article_scores(query)
        if boost:
            for position, factor in boost.items():
                scores[position] *= factor
        shortlist = np.argsort(-scores, kind="stable")[:SHORTLIST]
        out = []
        for position in shortlist:
            if scores[position] <= 0:
                break
            coverage, matched = self.coverage(int(position), query)
            out.append(Candidate(int(position), float(scores[position]), coverage, matched))
        out.sort(key=lambda c: c.score * (COVERAGE_BASE + (1 - COVERAGE_BASE) * c.coverage), reverse=True)
        return out[:k]
