"""Word segmentation with jieba's dictionary and the shipped domain dictionary.

One ``WordDictionary`` per process (knowledge/nlp/dictionary.py: jieba's cuts from a
compact trie, ~150 MB less a worker than ``jieba.Tokenizer`` and ``jieba.posseg``),
separate from jieba's global tokenizer. HMM new-word guessing is
off: the index and the queries must cut text the same way, and guessed words
("能补", "底保") would differ between a handbook sentence and a question.
Search mode also yields the short words inside long ones, so "危房" in a
question still meets "危房改造" in the handbook.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from knowledge.nlp.dictionary import WordDictionary

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DOMAIN_DICT = DATA_DIR / "domain_dict.txt"
STOPWORDS_FILE = DATA_DIR / "stopwords.txt"
# Bump when tokenization logic changes: persisted indexes then rebuild once.
TOKENIZER_VERSION = "5"  # 4: passages carry their document's title; 5: not when it is the only one

# Questions, synonym phrases and words are cut again and again (every question cuts the same
# expansions, 补助 or 危房改造): short texts' cuts are remembered, a bounded number of them.
MEMO_CHARS = 64
MEMO_ENTRIES = 16384

_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaffA-Za-z0-9]")
_FULLWIDTH = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "})

def normalize_text(text: str) -> str:
    """Full-width letters/digits to ASCII, NFKC, lower case: "ＤＬ级" and "dl级" meet "DL级"."""
    return unicodedata.normalize("NFKC", text.translate(_FULLWIDTH)).lower()


def is_han(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


@dataclass(frozen=True)
class Token:
    word: str
    start: int
    end: int


class Segmenter:
    """jieba with our dictionary and stopwords; thread-safe after first use."""

    def __init__(self, dict_path: Path = DOMAIN_DICT, stopwords_path: Path = STOPWORDS_FILE,
                 cache_dir: Path | None = None) -> None:
        """``cache_dir``: where the built word dictionary is kept for other processes (None: not kept)."""
        self.dict_path = dict_path
        self.stopwords_path = stopwords_path
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._dictionary: WordDictionary | None = None
        self._token_memo: dict[str, tuple[Token, ...]] = {}
        self._boundary_memo: dict[str, frozenset[int]] = {}

    @staticmethod
    def _remember(memo: dict, key: str, value) -> None:
        if len(key) > MEMO_CHARS:
            return
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()  # rare: a worker meets that many distinct short texts; start again
        memo[key] = value

    @cached_property
    def stopwords(self) -> frozenset[str]:
        words: set[str] = set()
        for line in self.stopwords_path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                words.update(line.split())
        return frozenset(words)

    @cached_property
    def fingerprint(self) -> str:
        """Changes when the dictionary, stopwords or tokenizer code change."""
        digest = hashlib.sha256(TOKENIZER_VERSION.encode())
        digest.update(self.dict_path.read_bytes())
        digest.update(self.stopwords_path.read_bytes())
        return digest.hexdigest()[:32]

    @property
    def dictionary(self) -> WordDictionary:
        if self._dictionary is None:
            with self._lock:
                if self._dictionary is None:
                    self._dictionary = WordDictionary.load(self._domain_words(), self.cache_dir)
        return self._dictionary

    def _domain_words(self) -> list[tuple[str, int]]:
        """Our words and counts, in file order, then their lower-case forms.

        Questions are lower-cased by normalize_text; so must our words be ("D级" -> "d级").
        A line without a count gets 20000, the count every word of ours has.
        """
        words: list[tuple[str, int]] = []
        for line in self.dict_path.read_text(encoding="utf-8").splitlines():
            fields = line.strip().lstrip("\ufeff").split()
            if fields and not fields[0].startswith("#"):
                words.append((fields[0], int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 20000))
        return words + [(word.lower(), 20000) for word, _ in words if word != word.lower()]

    def is_dictionary_word(self, word: str) -> bool:
        """True for words jieba knows (its own dictionary or ours)."""
        return bool(self.dictionary.count(word))

    def tokens(self, text: str) -> list[Token]:
        """Search-mode tokens with their spans in ``normalize_text(text)``, stopwords and punctuation dropped."""
        cached = self._token_memo.get(text)
        if cached is not None:
            return list(cached)
        key, text = text, normalize_text(text)
        raw = [(w.strip(), s, e) for w, s, e in self.dictionary.tokenize(text, search=True)]
        # "会不会" is a stopword; the "不会" search mode finds inside it must go with it.
        stopped = [(s, e) for w, s, e in raw if w in self.stopwords and e - s >= 2]
        out = []
        for word, start, end in raw:
            if not word or not _WORD.search(word) or word in self.stopwords:
                continue
            if any(s <= start and end <= e and (e - s) > (end - start) for s, e in stopped):
                continue
            out.append(Token(word, start, end))
        self._remember(self._token_memo, key, tuple(out))
        return out

    def frequency(self, word: str) -> int:
        """jieba's corpus count for a word (0 if unknown): how everyday a word is."""
        return self.dictionary.count(word)

    def boundaries(self, text: str) -> set[int]:
        """Word boundaries (offsets) of the plain segmentation of ``normalize_text(text)``."""
        cached = self._boundary_memo.get(text)
        if cached is not None:
            return set(cached)
        key, text = text, normalize_text(text)
        edges = {0, len(text)}
        for _, start, end in self.dictionary.tokenize(text):
            edges.update((start, end))
        self._remember(self._boundary_memo, key, frozenset(edges))
        return edges

    def tag(self, word: str) -> str | None:
        """jieba's part-of-speech tag for a dictionary word (n, v, m, ...), None if unknown."""
        return self.dictionary.tag(word)

    def words(self, text: str) -> list[str]:
        return [t.word for t in self.tokens(text)]


_DEFAULT: Segmenter | None = None
_DEFAULT_LOCK = threading.Lock()


def default_segmenter() -> Segmenter:
    """The process-wide segmenter; its word dictionary is mapped from ``SISONG_KB_DICTIONARY_CACHE``
    (built there first if missing, ~1 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                from knowledge.settings import get_knowledge_settings

                cache = get_knowledge_settings().kb_dictionary_cache
                _DEFAULT = Segmenter(cache_dir=Path(cache) if cache else None)
    return _DEFAULT
