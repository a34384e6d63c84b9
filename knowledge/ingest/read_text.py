"""Reading .txt and .md handbooks.

Cadres' text files come from Windows as often as not, so GB18030 is tried
after UTF-8. Markdown keeps its heading levels and its tables (as rows that
carry their header cells); everything else is plain paragraphs.
"""

from __future__ import annotations

import re

from knowledge.ingest import errors
from knowledge.ingest.blocks import Block, table_row_text
from knowledge.ingest.errors import HandbookFileError
from knowledge.ingest.reflow import reflow

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_TABLE_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?$")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|>)\s+")
_MD_INLINE = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links
    (re.compile(r"(\*\*|__|\*|`)"), ""),  # emphasis, code
    (re.compile(r"<[^>]+>"), ""),  # inline html
]


def decode(name: str, content: bytes) -> str:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16")
        except UnicodeDecodeError:
            raise HandbookFileError(name, errors.corrupt("UTF-16 编码有误")) from None
    if b"\x00" in content[:4096]:
        raise HandbookFileError(name, errors.corrupt("不是文本文件"))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise HandbookFileError(name, errors.corrupt("无法识别的文字编码"))


def read_txt(name: str, content: bytes) -> list[Block]:
    text = decode(name, content)
    return [Block(line) for line in reflow(text.splitlines())]


def _clean_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text.strip()


def _table_cells(line: str) -> list[str]:
    line = line.strip().strip("|")
    return [_clean_inline(cell) for cell in line.split("|")]


def read_markdown(name: str, content: bytes) -> list[Block]:
    text = decode(name, content)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    blocks: list[Block] = []
    paragraph: list[str] = []
    table: list[list[str]] = []
    seen_heading = False

    def flush_paragraph() -> None:
        if paragraph:
            blocks.extend(Block(p) for p in reflow(paragraph))
            paragraph.clear()

    def flush_table() -> None:
        if table:
            header, rows = table[0], table[1:]
            if not rows:
                blocks.append(Block(table_row_text([], header), table_row=True))
            for row in rows:
                if row != header:
                    blocks.append(Block(table_row_text(header, row), table_row=True))
            table.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("|"):
            flush_paragraph()
            if not _MD_TABLE_SEPARATOR.match(line.strip()):
                table.append(_table_cells(line))
            continue
        flush_table()
        heading = _MD_HEADING.match(line)
        if heading:
            flush_paragraph()
            level = len(heading.group(1))
            title = _clean_inline(heading.group(2))
            if title:
                # The first top-level heading is the document title.
                blocks.append(Block(title, heading=0 if level == 1 and not seen_heading else level))
                seen_heading = True
            continue
        if not line.strip() or re.fullmatch(r"\s*([-*_]\s*){3,}", line):
            flush_paragraph()
            continue
        stripped = _clean_inline(_MD_LIST.sub("", line))
        if stripped:
            paragraph.append(stripped)
    flush_paragraph()
    flush_table()
    return blocks
