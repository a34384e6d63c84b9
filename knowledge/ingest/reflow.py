"""Re-joining hard-wrapped lines (PDF text, some .txt exports) into paragraphs.

A PDF line ends wherever the page ran out of width, not where a sentence ends;
quoting "每户补助3.5" without "万元" would be wrong. A line is joined to the
previous one unless the previous ended a sentence or this one starts a heading.
"""

from __future__ import annotations

import re

from knowledge.ingest.markers import DOCUMENT_NUMBER, looks_like_document_title, starts_with_marker

_ENDS_PARAGRAPH = re.compile(r"[。！？!?；;：:”」』）)]$")
MIN_WRAPPED_LINE = 16  # shorter lines are headings or last lines, never wrapped text


def reflow(lines: list[str]) -> list[str]:
    paragraphs: list[str] = []
    previous_open = False
    for raw in lines:
        line = raw.strip()
        if not line:
            previous_open = False
            continue
        if previous_open and not starts_with_marker(line) and not DOCUMENT_NUMBER.match(line):
            joiner = " " if paragraphs[-1][-1:].isascii() and line[:1].isascii() else ""
            paragraphs[-1] = paragraphs[-1] + joiner + line
        else:
            paragraphs.append(line)
        last = paragraphs[-1]
        # A document's title in a compilation is a line of its own, however long.
        previous_open = (len(line) >= MIN_WRAPPED_LINE and not _ENDS_PARAGRAPH.search(last)
                         and not looks_like_document_title(last))
    return paragraphs
