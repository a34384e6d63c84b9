"""Sentence splitting for Chinese policy text.

Answers quote whole sentences, and long articles are cut into passages only at
sentence ends, so a quoted amount never loses the condition it belongs to.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?<=[。！？!?…])(?![”’」』）)])|(?<=[。！？!?][”’」』）)])")
_CLAUSE = re.compile(r"(?<=[；;])")

LONG_SENTENCE = 90


def split_sentences(text: str, clause_split_over: int = LONG_SENTENCE) -> list[str]:
    """Split at 。！？ (and at ； inside sentences longer than ``clause_split_over``).

    Line breaks always end a sentence: table rows and list items arrive as lines.
    """
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for sentence in _END.split(line):
            sentence = sentence.strip()
            if not sentence:
                continue
            if len(sentence) > clause_split_over:
                out.extend(part.strip() for part in _CLAUSE.split(sentence) if part.strip())
            else:
                out.append(sentence)
    return out


def chunk_sentences(sentences: list[str], max_chars: int) -> list[str]:
    """Group consecutive sentences into chunks of at most ``max_chars`` (a longer sentence stays whole)."""
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        if current and len(current) + len(sentence) > max_chars:
            chunks.append(current)
            current = ""
        current += sentence
    if current:
        chunks.append(current)
    return chunks
