"""Reading .pdf handbooks with pypdf.

Three PDFs must be refused rather than half-imported: encrypted ones, scans
(pages are pictures, no text layer) and ones whose fonts lack a Unicode map
(text comes out as garbage). Page numbers and running headers are dropped so
they don't end up inside articles.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING

from knowledge.ingest import errors
from knowledge.ingest.blocks import Block
from knowledge.ingest.errors import HandbookFileError
from knowledge.ingest.reflow import reflow
from knowledge.nlp.tokenizer import is_han

if TYPE_CHECKING:
    from pypdf import PdfReader

_PAGE_NUMBER = re.compile(r"^[-—–\s]*(第\s*)?\d{1,4}(\s*页)?[-—–\s]*$|^\d{1,4}\s*/\s*\d{1,4}$")
_READABLE_PUNCT = set("，。、；：？！“”‘’（）《》【】—…·,.;:?!()[]%-/+ \n\t")


def readable_share(text: str) -> float:
    """Share of characters a Chinese reader would recognise; mis-encoded fonts score low."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    good = sum(1 for c in chars if is_han(c) or c.isascii() and c.isprintable() or c in _READABLE_PUNCT)
    return good / len(chars)


def _page_lines(reader: "PdfReader", name: str) -> list[list[str]]:
    pages = []
    for page in reader.pages:
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # pypdf raises many types on broken content streams
            raise HandbookFileError(name, errors.corrupt(f"第{len(pages) + 1}页无法读取：{type(exc).__name__}")) from None
        pages.append([line.strip() for line in text.splitlines()])
    return pages


def _drop_furniture(pages: list[list[str]]) -> list[str]:
    """Remove page numbers, and header/footer lines repeated on most pages."""
    repeated: set[str] = set()
    if len(pages) >= 3:
        counts = Counter(line for lines in pages for line in set(lines) if line)
        repeated = {line for line, n in counts.items() if n >= max(3, len(pages) * 0.6) and len(line) < 40}
    out = []
    for lines in pages:
        for line in lines:
            if line and not _PAGE_NUMBER.match(line) and line not in repeated:
                out.append(line)
        out.append("")  # a page break ends a paragraph only if the sentence ended too (reflow decides)
    return out


def read_pdf(name: str, content: bytes) -> tuple[list[Block], str | None]:
    # Imported here: pypdf costs a web worker ~13 MB, and only an upload ever reads a PDF.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception:
                opened = 0
            if not opened:
                raise HandbookFileError(name, errors.ENCRYPTED)
        pages = _page_lines(reader, name)
        title = None
        try:
            meta = reader.metadata
            title = (meta.title or "").strip() if meta else None
        except Exception:
            title = None
    except HandbookFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise HandbookFileError(name, errors.corrupt(type(exc).__name__)) from None
    if not pages:
        raise HandbookFileError(name, errors.EMPTY)
    text = "\n".join(line for lines in pages for line in lines)
    visible = "".join(text.split())
    if len(visible) < max(20, 5 * len(pages)):
        raise HandbookFileError(name, errors.SCANNED)
    if readable_share(text) < 0.8:
        raise HandbookFileError(name, errors.GARBLED)
    lines = _drop_furniture(pages)
    # Rejoin paragraphs broken across page ends: the blank page marker only ends
    # a paragraph when the text before it ended a sentence.
    merged: list[str] = []
    for line in lines:
        if line == "" and merged and merged[-1] != "" and not re.search(r"[。！？；：]$", merged[-1]):
            continue
        merged.append(line)
    return [Block(p) for p in reflow(merged)], title or None
