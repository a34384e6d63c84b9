"""Colloquial phrases -> the words the handbook uses.

Households say "娃儿读书", the handbook says "子女就读". Rules are matched as
substrings of the raw question (not tokens), so adding a rule never changes
how the handbook was segmented and never forces an index rebuild.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.nlp.cn_numbers import parse_cn_number
from knowledge.nlp.tokenizer import normalize_text

# "我妈85了", "六十多岁" -> ask about age limits.
_AGE = re.compile(r"(\d{2,3}|[一二三四五六七八九十百]{2,4})(多|来)?(岁|周岁)"
                  r"|(?<![\d.])([5-9]\d|1[01]\d)(多|来)?了"  # "我妈85了": an age, not an amount
                  r"|(?<![一二三四五六七八九十百两])([五六七八九]十[一二三四五六七八九]?|一百[零一二三四五六七八九十]*)(多|来)?了")  # "八十五了"


@dataclass(frozen=True)
class SynonymHit:
    phrase: str
    start: int
    end: int
    expansions: tuple[str, ...]
    whole: bool = True  # on word boundaries, not inside a longer word


@dataclass
class SynonymTable:
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    longest: int = 0  # the longest phrase, in characters

    def __post_init__(self) -> None:
        self.longest = max((len(p) for p in self.rules), default=0)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> "SynonymTable":
        table = cls()
        for path in paths:
            table.add_lines(path.read_text(encoding="utf-8").splitlines())
        return table

    def add_lines(self, lines: Iterable[str]) -> None:
        """Parse ``a|b|c => x y`` lines; ``#`` starts a comment; malformed lines raise ValueError."""
        for number, raw in enumerate(lines, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=>" not in line:
                raise ValueError(f"第{number}行缺少“=>”：{raw.strip()}")
            left, right = line.split("=>", 1)
            for phrase in left.split("|"):
                self.add(phrase, right.split())

    def add(self, phrase: str, expansions: Iterable[str]) -> None:
        phrase = normalize_text(phrase.strip())
        words = tuple(normalize_text(w) for w in expansions if w.strip())
        if not phrase or not words:
            return
        merged = self.rules.get(phrase, ()) + tuple(w for w in words if w not in self.rules.get(phrase, ()))
        self.rules[phrase] = merged
        self.longest = max(self.longest, len(phrase))

    def merged(self, other: "SynonymTable") -> "SynonymTable":
        table = SynonymTable(dict(self.rules))
        for phrase, words in other.rules.items():
            table.add(phrase, words)
        return table

    def find(self, text: str, boundaries: set[int] | None = None) -> list[SynonymHit]:
        """Rule hits in ``text`` (already normalized), none inside another, plus age mentions.

        With word ``boundaries``, hits that begin and end on them are preferred and
        marked ``whole``; a phrase inside a longer word (子女 in 独生子女) is still
        reported, not whole.
        A one-character phrase (猪, 车) only counts as a word of its own:
        "猪" in "猪肉价格" is not about raising pigs.
        """
        found: list[SynonymHit] = []
        longest = self.longest
        for start in range(len(text)):
            for end in range(min(len(text), start + longest), start, -1):
                phrase = text[start:end]
                if phrase not in self.rules:
                    continue
                whole = boundaries is None or (start in boundaries and end in boundaries)
                if len(phrase) == 1 and not whole:
                    continue
                found.append(SynonymHit(phrase, start, end, self.rules[phrase], whole))
        found.sort(key=lambda h: (not h.whole, -(h.end - h.start), h.start))
        hits: list[SynonymHit] = []
        for hit in found:
            # Inside a longer hit ("房子" in "房子漏雨"): the longer rule says it all. Overlapping
            # one ("雨天漏" and "漏得" in "下雨天漏得"): both, they become one concept.
            if not any(h.start <= hit.start and hit.end <= h.end for h in hits):
                hits.append(hit)
        hits.sort(key=lambda h: h.start)
        for match in _AGE.finditer(text):
            hits.append(SynonymHit(match.group(), match.start(), match.end(), _age_words(match.group())))
        return hits


OLD_AGE = 80  # what policy calls 高龄: "我妈八十五了补好多" asks about the 高龄津贴


def _age_words(mention: str) -> tuple[str, ...]:
    """Handbook words for an age a household mentions: 年龄, 周岁, and 高龄 from 80 on."""
    digits = re.match(r"\d+", mention)
    number = int(digits.group()) if digits else parse_cn_number(re.sub(r"(多|来)?(岁|周岁|了)$", "", mention))
    return ("年龄", "周岁", "高龄") if number is not None and number >= OLD_AGE else ("年龄", "周岁")
