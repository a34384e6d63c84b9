"""Keeping text replies within WeChat's 2048-byte limit, cut where a reader would pause."""

from __future__ import annotations

import re

WECHAT_TEXT_LIMIT = 2048
MORE_HINT = "\n（内容较长，回复“更多”看下一段）"
_BREAKS = re.compile(r"(?<=[。！？；!?;\n])")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def split_pages(text: str, limit: int = WECHAT_TEXT_LIMIT, reserve: int = utf8_len(MORE_HINT)) -> list[str]:
    """Split into pages of at most ``limit`` bytes, each ending at a sentence where possible.

    Every page but the last leaves ``reserve`` bytes for the "more" hint.
    """
    if utf8_len(text) <= limit:
        return [text]
    budget = limit - reserve
    pages: list[str] = []
    current = ""
    for piece in _pieces(text, budget):
        if current and utf8_len(current + piece) > budget:
            pages.append(current.rstrip())
            current = piece.lstrip("\n")
        else:
            current += piece
    if current.strip():
        pages.append(current.rstrip())
    return pages


def _pieces(text: str, budget: int) -> list[str]:
    """Sentences; a sentence longer than the budget is cut by characters."""
    out: list[str] = []
    for sentence in _BREAKS.split(text):
        while utf8_len(sentence) > budget:
            cut = _cut_bytes(sentence, budget)
            out.append(sentence[:cut])
            sentence = sentence[cut:]
        if sentence:
            out.append(sentence)
    return out


def _cut_bytes(text: str, budget: int) -> int:
    """The largest character index whose prefix fits in ``budget`` bytes."""
    size = 0
    for index, char in enumerate(text):
        size += utf8_len(char)
        if size > budget:
            return max(index, 1)
    return len(text)
