"""Voice-to-text and typing slips corrected through pinyin: 底保 -> 低保, 雨路计划 -> 雨露计划.

WeChat voice input and pinyin keyboards both produce a right-sounding wrong
word. For each run of Chinese characters in a question that is not itself a
known word, we compare its (dialect-tolerant) pinyin with the handbook's
vocabulary and swap in the handbook word when one sounds the same.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

# Only single characters are looked up here, so pypinyin's phrase dictionary (44 MB per process, and
# half a second to load) is never needed: its documented switch, set before its first import.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")

from pypinyin import Style, pinyin

from knowledge.nlp.tokenizer import is_han

MIN_LEN, MAX_LEN = 2, 6
ANALYSED_CHARS = 160  # beyond this a question is a letter, not a query; don't spend time on it

# Southwestern-Mandarin and voice-input confusions: zh/z, ch/c, sh/s, n/l, f/h, -ng/-n.
_FUZZY = [
    (re.compile(r"^zh"), "z"), (re.compile(r"^ch"), "c"), (re.compile(r"^sh"), "s"),
    (re.compile(r"^l"), "n"), (re.compile(r"^f"), "h"),
    (re.compile(r"ang$"), "an"), (re.compile(r"eng$"), "en"), (re.compile(r"ing$"), "in"),
]


def fuzzy(syllable: str) -> str:
    for pattern, repl in _FUZZY:
        syllable = pattern.sub(repl, syllable)
    return syllable


# Common 多音字 whose second reading is everyday speech too (了 le/liao, 还 hai/huan).
# Other characters keep their first reading only: rare literary readings
# (不 fou) would make unrelated words "sound alike".
POLYPHONES = frozenset("了还行长重得地的都种教调便传少觉数只着差干和参曾藏乐朝会说转相要为看好发空")


@lru_cache(maxsize=8192)
def plain_readings(char: str) -> frozenset[str]:
    """Every reading of one character, toneless and without dialect folding."""
    options = pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore")
    return frozenset(p for p in (options[0] if options else []) if p) or frozenset({char})


def _sounds_same(a: str, b: str) -> bool:
    return all(plain_readings(x) & plain_readings(y) for x, y in zip(a, b))


@lru_cache(maxsize=8192)
def readings(char: str) -> tuple[str, ...]:
    """Fuzzy readings of one character (two for common 多音字)."""
    if not is_han(char):
        return (char,)
    options = pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore")
    found = tuple(dict.fromkeys(fuzzy(p) for p in (options[0] if options else []) if p))
    keep = 2 if char in POLYPHONES else 1
    return found[:keep] or (char,)


def keys(word: str) -> list[str]:
    """All fuzzy pinyin keys of a word, e.g. 先诊了 -> xianzenne, xianzenniao."""
    combos = itertools.product(*(readings(c) for c in word))
    return ["".join(combo) for combo in itertools.islice(combos, 27)]


LOOKUP_MEMO = 50_000  # runs remembered: questions share most of their two-to-four-character runs


@dataclass(frozen=True)
class Correction:
    start: int
    end: int
    heard: str
    meant: str


class HomophoneMap:
    """Pinyin key -> handbook words sharing it."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.by_key: dict[str, set[str]] = {}
        self._meant: dict[str, str | None] = {}  # run -> _lookup's answer (the map never changes)
        self._real: dict[str, str | None] = {}  # real word -> handbook_word's answer
        for word in vocabulary:
            if MIN_LEN <= len(word) <= MAX_LEN and all(is_han(c) for c in word):
                for key in keys(word):
                    self.by_key.setdefault(key, set()).add(word)

    def __len__(self) -> int:
        return len(self.by_key)

    def corrections(self, text: str, is_known: Callable[[str], bool], boundaries: set[int]) -> list[Correction]:
        """Non-overlapping corrections in ``text``, longest runs first.

        ``is_known(run)`` says a run is a real word already (in the handbook or
        the dictionary); those are never "corrected": 不住 stays 不住, not 补助.
        A run must also start and end on word boundaries of the segmentation
        (``boundaries``): a slip is cut into odd single characters (底|保), while a
        run across two real words (年纪|能干 -> 纪能) is just a coincidence of sounds.
        """
        text = text[:ANALYSED_CHARS]
        found: list[Correction] = []
        taken = [False] * len(text)
        for length in range(MAX_LEN, MIN_LEN - 1, -1):
            for start in range(0, len(text) - length + 1):
                end = start + length
                if any(taken[start:end]) or start not in boundaries or end not in boundaries:
                    continue
                run = text[start:end]
                if not all(is_han(c) for c in run) or is_known(run):
                    continue
                meant = self._lookup(run)
                if meant is not None:
                    found.append(Correction(start, end, run, meant))
                    for i in range(start, end):
                        taken[i] = True
        return sorted(found, key=lambda c: c.start)

    def handbook_word(self, word: str, in_handbook: Callable[[str], bool]) -> str | None:
        """A handbook word that ``word`` — a real word the handbook never uses — may be a voice-input
        slip for: one that sounds exactly the same (no dialect folding) and shares a character
        (检测户 for 监测户, 公式 for 公示). Voice input writes real words, so a slip is often one;
        the strict sound and the shared character keep 不住 from becoming 补助."""
        found = self._real.get(word, "")
        if found != "":
            return found
        if len(self._real) >= LOOKUP_MEMO:
            self._real.clear()
        best = None
        if MIN_LEN <= len(word) <= MAX_LEN and all(is_han(c) for c in word):
            candidates = {w for key in keys(word) for w in self.by_key.get(key, ())}
            scored = sorted((sum(a == b for a, b in zip(w, word)), w) for w in candidates
                            if w != word and len(w) == len(word) and in_handbook(w) and _sounds_same(w, word))
            scored = [(shared, w) for shared, w in scored if shared >= 1]
            best = scored[-1][1] if scored else None
        self._real[word] = best
        return best

    def _lookup(self, run: str) -> str | None:
        if run in self._meant:
            return self._meant[run]
        if len(self._meant) >= LOOKUP_MEMO:
            self._meant.clear()
        meant = self._meant[run] = self._best(run)
        return meant

    def _best(self, run: str) -> str | None:
        candidates: set[str] = set()
        for key in keys(run):
            candidates |= self.by_key.get(key, set())
        candidates.discard(run)
        # A slip usually gets some characters right (底保/低保); a run sharing
        # none with the word is more likely a different word that sounds alike.
        need = 1 if len(run) <= 3 else len(run) // 2
        scored = [(sum(a == b for a, b in zip(w, run)), w) for w in sorted(candidates)]
        scored = [(shared, w) for shared, w in scored if shared >= need]
        if not scored:
            return None
        return max(scored)[1]
