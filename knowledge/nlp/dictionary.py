"""jieba's word list in a static trie: the same cuts from ~7 MB of files every worker maps, not ~160 MB each.

jieba keeps its 349,000-word dictionary as a Python dict of every word *and every prefix of
every word* (~600,000 str keys, ~62 MB), and its part-of-speech table is another dict of
349,000 words loaded with the HMM tables of ``jieba.posseg`` (~97 MB). Every web worker held
both, more than half of its memory. Here the words of jieba's dict.txt and of our domain
dictionary are one ``marisa_trie.Trie`` (a succinct trie in C++: prefix look-ups without
the prefix entries), their counts and tags compact arrays indexed by the trie's key ids.

Only what ``Segmenter`` uses is implemented — jieba's accurate mode without HMM and its
search mode — following jieba 0.42's code step by step (``Tokenizer.cut``, ``get_DAG``,
``calc``, ``__cut_DAG_NO_HMM``, ``tokenize``), with the same floating-point expressions, so
the cuts are identical: tests/test_dictionary.py compares them with jieba's on every
handbook and question the project ships. Our words are added with jieba's ``add_word``
rules (the later count wins, every count adds to the total); tags come from jieba's
dict.txt only, as ``jieba.posseg.POSTokenizer.word_tag_tab`` did.

The trie is built from the files (~1 s), streaming their lines, so no large Python structure
is ever made, and kept in a cache directory (``SISONG_KB_DICTIONARY_CACHE``) named by a digest
of its inputs: every other process — each web worker, the CLI — maps those files instead
(~0.01 s), and the workers of one machine share their pages. ``sisong serve`` builds it before
starting workers. A cache that cannot be written or read is not an error: the process builds
its own copy in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
import sys
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from importlib.metadata import version
from importlib.util import find_spec
from math import log
from pathlib import Path
from typing import Any

import marisa_trie

# jieba's own patterns (re_han_default, re_skip_default, re_eng in jieba/__init__.py), copied so
# that jieba itself is never imported (with its HMM tables, ~10 MB): blocks of Han/latin/digits
# are cut with the dictionary; whitespace is kept as a token; anything else goes out a
# character at a time.
_RE_HAN = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)", re.U)
_RE_SKIP = re.compile("(\r\n|\\s)", re.U)
_RE_ENG = re.compile("[a-zA-Z0-9]", re.U)


logger = logging.getLogger(__name__)
CACHE_FORMAT = "2"  # bump when the files' layout or the way they are built changes
# Counts the header keeps and a mapped copy must give back: arrays that do not belong to the trie
# (another build's key ids) fail here instead of weighing words wrongly.
_CHECK_WORDS = ("的", "补助", "危房", "低保", "政策")


def jieba_dict_path() -> Path:
    """jieba's main dictionary (dict.txt), shipped inside the package (found without importing it)."""
    spec = find_spec("jieba")
    if spec is None or spec.origin is None:
        raise RuntimeError("jieba is not installed (pip install jieba)")
    return Path(spec.origin).resolve().parent / "dict.txt"


def _private(directory: Path) -> bool:
    """True when the directory is missing (it will be created 0700) or ours and not writable by others:
    a cache another account can fill is not mapped."""
    try:
        st = directory.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _digest(main: Path, extra: list[tuple[str, int]]) -> str:
    """Names the cache files after everything they are built from."""
    # The trie library's version and the byte order too: key ids or array layout could differ.
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{version('marisa-trie')}|{sys.byteorder}|".encode())
    digest.update(main.read_bytes())
    digest.update(json.dumps(extra, ensure_ascii=False).encode())
    return digest.hexdigest()[:24]


def _dict_lines(path: Path) -> Iterator[list[str]]:
    """Fields of each non-empty line (word, count[, tag]); a user dictionary may start with a BOM."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            fields = line.strip().lstrip("\ufeff").split()
            if fields and not fields[0].startswith("#"):
                yield fields


class WordDictionary:
    """Words → (count, tag) for jieba's segmentation, in a trie and three arrays."""

    trie: marisa_trie.Trie
    counts: Any  # array("q") built here, or a memoryview of the cache file cast to "q"
    logs: Any  # log(count) for jieba's calc, computed once: "d"
    tags: Any  # index into tag_names; 0: no tag: "B"
    tag_names: list[str | None]
    total: int
    log_total: float
    longest: int

    @classmethod
    def load(cls, extra: Iterable[tuple[str, int]] = (), cache_dir: Path | None = None,
             main: Path | None = None) -> "WordDictionary":
        """The dictionary from the cache if it holds these inputs, else built (and cached)."""
        main = main or jieba_dict_path()
        extra = list(extra)
        if cache_dir is None:
            return cls(main, extra)
        if not _private(cache_dir):
            logger.warning("word dictionary: %s belongs to another user or others may write in it; "
                           "not using it (each process builds its own)", cache_dir)
            return cls(main, extra)
        stem = cache_dir / f"words-{_digest(main, extra)}"
        try:
            return cls._mapped(stem)
        except FileNotFoundError:
            pass  # not built yet
        except Exception as exc:  # noqa: BLE001 - a damaged file (marisa raises RuntimeError): build it again
            logger.warning("word dictionary: the cache in %s is unreadable (%s); building it again", cache_dir, exc)
        built = cls(main, extra)
        try:
            built._save(stem)
        except OSError as exc:
            logger.warning("word dictionary: cannot keep it in %s (%s); each process builds its own", cache_dir, exc)
            return built
        try:
            return cls._mapped(stem)  # the builder shares the pages too, and drops its private copy
        except Exception:  # noqa: BLE001 - replaced meanwhile by a damaged copy: keep the one built here
            return built

    def __init__(self, main: Path | None = None, extra: Iterable[tuple[str, int]] = ()) -> None:
        """Build from the files. ``extra``: our words with their counts, applied in order like
        jieba's ``add_word``."""
        main = main or jieba_dict_path()
        extra = list(extra)
        self.trie = marisa_trie.Trie(self._keys(main, extra))
        size = len(self.trie)
        self.counts = array("q", bytes(8 * size))
        self.logs = array("d", bytes(8 * size))
        self.tags = array("B", bytes(size))
        self.tag_names = [None]
        tag_ids: dict[str, int] = {}
        total = 0
        for fields in _dict_lines(main):
            key = self.trie.key_id(fields[0])
            count = int(fields[1])
            self.counts[key] = count
            total += count
            if len(fields) > 2:
                tag = fields[2]
                if tag not in tag_ids:
                    tag_ids[tag] = len(self.tag_names)
                    self.tag_names.append(tag)
                self.tags[key] = tag_ids[tag]
        for word, count in extra:
            self.counts[self.trie.key_id(word)] = count
            total += count
        self.total = total
        self.log_total = log(total)
        for key in range(size):
            if self.counts[key] > 0:
                self.logs[key] = log(self.counts[key])
        self.longest = max((len(word) for word in self.trie.iterkeys()), default=1)

    @staticmethod
    def _keys(main: Path, extra: list[tuple[str, int]]) -> Iterator[str]:
        for fields in _dict_lines(main):
            yield fields[0]
        for word, _ in extra:
            yield word

    # -- the cache ---------------------------------------------------------------------

    def _save(self, stem: Path) -> None:
        """Trie, arrays, then the header that marks the set complete; each file written aside and
        renamed, so a reader never sees half a file (two builders write identical files)."""
        stem.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        header = {"format": CACHE_FORMAT, "size": len(self.trie), "total": self.total,
                  "longest": self.longest, "tag_names": self.tag_names,
                  "checks": {word: self.count(word) for word in _CHECK_WORDS}}
        for suffix, write in (
            (".trie", lambda tmp: self.trie.save(str(tmp))),
            (".arrays", lambda tmp: tmp.write_bytes(self.counts.tobytes() + self.logs.tobytes() + self.tags.tobytes())),
            (".json", lambda tmp: tmp.write_text(json.dumps(header), encoding="utf-8")),
        ):
            # A unique name in the directory (processes of two containers sharing it may have the
            # same pid), on disk before it is renamed: after a power loss a name holds a whole file.
            handle, name = tempfile.mkstemp(dir=stem.parent, prefix=stem.name, suffix=".tmp")
            os.close(handle)
            tmp = Path(name)
            try:
                write(tmp)
                with open(tmp, "rb") as written:
                    os.fsync(written.fileno())
                os.replace(tmp, stem.with_name(stem.name + suffix))
            finally:
                tmp.unlink(missing_ok=True)

    @classmethod
    def _mapped(cls, stem: Path) -> "WordDictionary":
        header = json.loads(stem.with_name(stem.name + ".json").read_text(encoding="utf-8"))
        size = int(header["size"])
        if header["format"] != CACHE_FORMAT:
            raise ValueError("another cache format")
        self = cls.__new__(cls)
        self.trie = marisa_trie.Trie()
        self.trie.mmap(str(stem.with_name(stem.name + ".trie")))
        with open(stem.with_name(stem.name + ".arrays"), "rb") as file:
            if os.fstat(file.fileno()).st_size != 17 * size or len(self.trie) != size:
                raise ValueError("a cache file does not match its header")
            view = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        self.counts = view[:8 * size].cast("q")
        self.logs = view[8 * size:16 * size].cast("d")
        self.tags = view[16 * size:]
        self.tag_names = header["tag_names"]
        self.total = int(header["total"])
        self.log_total = log(self.total)
        self.longest = int(header["longest"])
        if any(self.count(word) != count for word, count in header["checks"].items()):
            raise ValueError("the arrays do not match the trie's key ids")
        return self

    # -- look-ups ----------------------------------------------------------------------

    def count(self, word: str) -> int:
        """jieba's count for a word; 0 if unknown (or known with count 0)."""
        key = self._key(word)
        return 0 if key is None else self.counts[key]

    def tag(self, word: str) -> str | None:
        """The part-of-speech tag jieba's dict.txt gives a word (n, v, m, ...)."""
        key = self._key(word)
        return None if key is None else self.tag_names[self.tags[key]]

    def _key(self, word: str) -> int | None:
        try:
            return self.trie.get(word)
        except UnicodeEncodeError:  # a lone surrogate (text from a broken client) is no word of ours
            return None

    def __len__(self) -> int:
        return len(self.trie)

    # -- jieba's accurate mode without HMM ---------------------------------------------

    def _best_route(self, sentence: str) -> list[int]:
        """For each position, the end (inclusive) of the word the best path takes from it.

        jieba's ``get_DAG`` + ``calc``: the candidate words at k are the dictionary words
        with a count that are prefixes of sentence[k:] (or the single character when none);
        a word weighs log(count or 1) - log(total), the path its sum, ties to the longer word.
        """
        size = len(sentence)
        counts, logs, log_total, longest = self.counts, self.logs, self.log_total, self.longest
        prefixes = self.trie.iter_prefixes_with_ids
        route: list[tuple[float, int]] = [(0.0, 0)] * (size + 1)
        for idx in range(size - 1, -1, -1):
            best: tuple[float, int] | None = None
            for word, key in prefixes(sentence[idx:idx + longest]):
                if counts[key] > 0:
                    end = idx + len(word) - 1
                    candidate = (logs[key] - log_total + route[end + 1][0], end)
                    if best is None or candidate > best:
                        best = candidate
            if best is None:  # no word starts here: the character alone (count 0 or unknown: log 1)
                best = (0.0 - log_total + route[idx + 1][0], idx)
            route[idx] = best
        return [end for _, end in route[:size]]

    def _cut_block(self, sentence: str) -> Iterator[str]:
        """jieba's ``__cut_DAG_NO_HMM``: follow the route; single latin letters/digits run together."""
        ends = self._best_route(sentence)
        x, size, buf = 0, len(sentence), ""
        while x < size:
            y = ends[x] + 1
            word = sentence[x:y]
            if len(word) == 1 and _RE_ENG.match(word):
                buf += word
            else:
                if buf:
                    yield buf
                    buf = ""
                yield word
            x = y
        if buf:
            yield buf

    def cut(self, sentence: str) -> Iterator[str]:
        """jieba's ``Tokenizer.cut(sentence, HMM=False)``."""
        for block in _RE_HAN.split(sentence):
            if not block:
                continue
            if _RE_HAN.match(block):
                yield from self._cut_block(block)
            else:
                for part in _RE_SKIP.split(block):
                    if _RE_SKIP.match(part):
                        yield part
                    else:
                        yield from part

    def tokenize(self, sentence: str, search: bool = False) -> Iterator[tuple[str, int, int]]:
        """jieba's ``Tokenizer.tokenize(sentence, mode, HMM=False)``: (word, start, end).

        Search mode also yields the dictionary words of two and three characters inside a
        longer word, before the word itself.
        """
        start = 0
        for word in self.cut(sentence):
            width = len(word)
            if search:
                if width > 2:
                    for i in range(width - 1):
                        if self.count(word[i:i + 2]):
                            yield word[i:i + 2], start + i, start + i + 2
                if width > 3:
                    for i in range(width - 2):
                        if self.count(word[i:i + 3]):
                            yield word[i:i + 3], start + i, start + i + 3
            yield word, start, start + width
            start += width
