"""What the articles' text says beyond the token index: phrases, and in which sense a word is used.

Policy handbooks list the same papers in nearly every procedure: "申请时带身份证、
户口簿、结婚证". A household asking "办身份证要多久", "结婚证在哪里领" or "户口本丢了
去哪里补办" is asking about the paper itself, which those articles never
explain; only someone asking what to bring ("贷款要带结婚证吗") means the word in
the sense those lists use it. So a word that an article only ever mentions in
such a list does not count as covering the question, unless the question asks
about papers; and a word the whole handbook only ever lists as a paper is, for
any other question, a topic the handbook does not have.

An occurrence is "listed as a paper" when it follows a word that introduces
papers (带, 携带, 凭, 出示, 需提供 …) in the same clause, before the clause goes
on to where or how ("到乡镇卫生院补办", "办理手续"). Titles never count as lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from knowledge.nlp.tokenizer import normalize_text

# 带 but not 带动/带来/带领/带头 ("每带动一人"); 提供 only as "must provide" (需提供, 申请时提供,
# 的提供), not as a service ("学校直接提供营养餐", "免费提供教科书").
_INTRODUCES_PAPERS = re.compile(r"携带|(?<![携地纽皮])带(?![动来领头薪])|凭|出示|(?<=[需须要应时的])(?:提供|提交)")
# A list of papers ends with the clause, or where the clause turns to where/how to go.
_LIST_ENDS = re.compile(r"[，,；;。！？!?\n]|到|去|向|前往|办理|申请|领取")


CACHE_LIMIT = 50_000  # entries per cache: questions bring endless new words; a snapshot must not grow forever


def bounded(cache: dict) -> None:
    """Start a cache afresh when it is full (a rebuild costs microseconds per entry)."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()


def paper_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` (normalized) that list papers to bring."""
    spans = []
    for match in _INTRODUCES_PAPERS.finditer(text):
        end = _LIST_ENDS.search(text, match.end())
        spans.append((match.end(), end.start() if end else len(text)))
    return spans


class HandbookText:
    """The articles' plain text, per snapshot, for what the token index cannot tell.

    - Phrases the index has no single term for: the synonym table says "还账" is
      "偿还旧债" and "省城" is "县外", which jieba cuts into several words; the
      handbook "has" such a phrase where its text contains it.
    - Senses: which words an article (or the whole handbook) only lists as papers.
    """

    def __init__(self, texts: Sequence[str], titles: Sequence[str],
                 words: Callable[[str], list[str]] | None = None) -> None:
        self.words = words
        self.texts = [normalize_text(t) for t in texts]
        self.titles = [normalize_text(t) for t in titles]
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._only_paper: dict[tuple[int, str], bool] = {}
        self._with: dict[str, frozenset[int]] = {}
        # Every character the handbook writes: a one-character verb it never writes at all
        # (换, 退, 偷) is something it says nothing about, unlike 修 (修缮) or 学 (学生).
        self.characters = frozenset("".join(self.texts) + "".join(self.titles))

    def articles_with(self, phrase: str) -> frozenset[int]:
        """Positions of the articles whose title or text contains ``phrase``, a phrase of
        several words (a single word the index does not have is not in the handbook)."""
        found = self._with.get(phrase)
        if found is None:
            bounded(self._with)
            several = len(phrase) >= 2 and (self.words is None or len(self.words(phrase)) >= 2)
            found = self._with[phrase] = frozenset(
                i for i, (text, title) in enumerate(zip(self.texts, self.titles))
                if several and (phrase in text or phrase in title))
        return found

    def phrase_idf(self, phrase: str) -> float:
        """BM25's idf of a phrase, counted over articles; 0 if no article has it."""
        df = len(self.articles_with(phrase))
        return math.log(1.0 + (len(self.texts) - df + 0.5) / (df + 0.5)) if df else 0.0

    def _paper_spans(self, position: int) -> list[tuple[int, int]]:
        spans = self._spans.get(position)
        if spans is None:
            spans = self._spans[position] = paper_spans(self.texts[position])
        return spans

    def only_as_paper(self, position: int, term: str) -> bool:
        """Does the article mention ``term`` only inside lists of papers to bring?"""
        key = (position, term)
        cached = self._only_paper.get(key)
        if cached is not None:
            return cached
        bounded(self._only_paper)
        result = False
        if term and term not in self.titles[position]:
            text, spans = self.texts[position], self._paper_spans(position)
            starts = [m.start() for m in re.finditer(re.escape(term), text)]
            result = bool(starts) and all(
                any(s <= start and start + len(term) <= e for s, e in spans) for start in starts
            )
        self._only_paper[key] = result
        return result
