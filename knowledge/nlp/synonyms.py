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

from knowledge.nlp.tokenizer import normalize_text

# "我妈85了", "六十多岁" -> ask about age limits.
_AGE = re.compile(r"(\d{2,3}|[一二三四五六七八九十百]{2,4})(多|来)?(岁|周岁)")


@dataclass(frozen=True)
class SynonymHit:
    phrase: str
    start: int
    end: int
    expansions: tuple[str, ...]


@dataclass
class SynonymTable:
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _pattern: re.Pattern[str] | None = None

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
        self._pattern = None

    def merged(self, other: "SynonymTable") -> "SynonymTable":
        table = SynonymTable(dict(self.rules))
        for phrase, words in other.rules.items():
            table.add(phrase, words)
        return table

    @property
    def pattern(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.rules:
            # Longest first, so "房子漏雨" wins over "房子" at the same position.
            alternatives = sorted(self.rules, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(p) for p in alternatives))
        return self._pattern

    def find(self, text: str, boundaries: set[int] | None = None) -> list[SynonymHit]:
        """Non-overlapping rule hits in ``text`` (already normalized), plus age mentions.

        A one-character phrase (猪, 车) only counts as a word of its own, on word
        ``boundaries``: "猪" in "猪肉价格" is not about raising pigs.
        """
        hits: list[SynonymHit] = []
        if self.pattern is not None:
            for match in self.pattern.finditer(text):
                if len(match.group()) == 1 and boundaries is not None and not (
                    match.start() in boundaries and match.end() in boundaries
                ):
                    continue
                hits.append(SynonymHit(match.group(), match.start(), match.end(), self.rules[match.group()]))
        for match in _AGE.finditer(text):
            hits.append(SynonymHit(match.group(), match.start(), match.end(), ("年龄", "周岁")))
        return hits
