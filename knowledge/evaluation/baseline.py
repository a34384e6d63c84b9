"""The baseline to beat: plain jieba + BM25 over whole articles, nothing else.

No domain dictionary, no synonyms, no homophones, no titles weighting, no
sentence selection, no confidence: the top article's first 300 characters,
and a hand-over only when no word of the question occurs at all.
"""

from __future__ import annotations

import re

import bm25s
import jieba
import numpy as np

from knowledge.result import Answer, Source
from knowledge.snapshot import ArticleRecord

_WORD = re.compile(r"[\u3400-\u9fffA-Za-z0-9]")


class PlainBaseline:
    def __init__(self, articles: list[ArticleRecord]) -> None:
        self.articles = articles
        self.jieba = jieba.Tokenizer()
        corpus = [self._tokens(f"{a.title}\n{a.text}") or [""] for a in articles]
        self.model = bm25s.BM25()
        self.model.index(corpus, show_progress=False)

    def _tokens(self, text: str) -> list[str]:
        return [w for w in self.jieba.lcut(text) if _WORD.search(w)]

    def answer(self, question: str, last_topic: str | None = None) -> Answer:
        ids = [self.model.vocab_dict[t] for t in self._tokens(question) if t in self.model.vocab_dict]
        if not ids:
            return Answer("这个问题我还答不上来。", handover=True, kind="unanswerable")
        scores = self.model.get_scores_from_ids(ids)
        order = np.argsort(-scores)[:3]
        if scores[order[0]] <= 0:
            return Answer("这个问题我还答不上来。", handover=True, kind="unanswerable")
        top = self.articles[int(order[0])]
        sources = [Source(self.articles[int(i)].document, self.articles[int(i)].chapter_label,
                          self.articles[int(i)].cited_label, self.articles[int(i)].title, float(scores[i]))
                   for i in order if scores[i] > 0]
        return Answer(top.text[:300], sources, topic=str(top.id))
