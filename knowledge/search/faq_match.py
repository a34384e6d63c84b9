"""Matching a question to the cadres' FAQ before the handbook is searched.

FAQ answers are written by people for exactly the questions households ask,
so a close match wins. Close means: the same question up to punctuation and
particles, or most of the same character pairs (Dice ≥ 0.72), or the FAQ's
question contained in a slightly longer one ("低保标准" in "低保标准是多少").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.nlp.tokenizer import normalize_text

DICE_MIN = 0.72
CONTAINED_MIN_SHARE = 0.6
_NOT_WORD = re.compile(r"[^\u3400-\u9fff\uf900-\ufaffa-z0-9]")
_PARTICLES = re.compile(r"(吗|呢|啊|吧|呀|嘛|哦|不|没|没有|没得|么|嘞|哈)+$")
_POLITE = re.compile(r"^(请问|问一下|问下|你好|您好|麻烦问一下|我想问一下|我想问)")


def core(text: str) -> str:
    """The comparable core of a question: no punctuation, greeting or trailing particles."""
    text = _NOT_WORD.sub("", normalize_text(text))
    text = _POLITE.sub("", text)
    return _PARTICLES.sub("", text) or text


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def similarity(a: str, b: str) -> float:
    """Similarity of two cores in [0, 1]."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    x, y = _bigrams(a), _bigrams(b)
    dice = 2 * len(x & y) / (len(x) + len(y))
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 4 and short in long_ and len(short) / len(long_) >= CONTAINED_MIN_SHARE:
        return max(dice, 0.9)
    return dice


@dataclass(frozen=True)
class FaqEntry:
    id: int
    question: str
    answer: str
    core: str


class FaqMatcher:
    def __init__(self, entries: list[FaqEntry]) -> None:
        self.entries = entries

    def match(self, question: str) -> tuple[FaqEntry, float] | None:
        q = core(question)
        best: tuple[FaqEntry, float] | None = None
        for entry in self.entries:
            score = similarity(q, entry.core)
            if score >= DICE_MIN and (best is None or score > best[1]):
                best = (entry, score)
        return best
