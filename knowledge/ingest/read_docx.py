"""Reading .docx handbooks with python-docx.

Word keeps paragraphs and tables in one body; both are read in order so a
table stays under the article that introduces it. Each table row becomes a
sentence carrying its header cells ("学段：初中；标准：每生每年1250元"), which
is what makes a row findable and quotable on its own.
"""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from knowledge.ingest import errors
from knowledge.ingest.blocks import Block, table_row_text
from knowledge.ingest.errors import HandbookFileError

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)


def _heading_level(paragraph: Paragraph) -> int | None:
    try:
        name = (paragraph.style.name if paragraph.style is not None else "") or ""
    except (KeyError, AttributeError):
        return None
    name = name.strip()
    if name.lower() in {"title", "标题"}:
        return 0
    match = _HEADING_STYLE.match(name)
    return int(match.group(1)) if match else None


def _row_cells(row) -> list[str]:  # type: ignore[no-untyped-def]
    """One text per grid column; a merged cell is repeated in the columns it spans."""
    return [cell.text.strip() for cell in row.cells]


def _table_blocks(table: Table) -> list[Block]:
    rows = [_row_cells(row) for row in table.rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return []
    if len(rows) == 1 or all(len(set(r)) == 1 for r in rows):
        # Layout tables (one cell per row) are just text.
        return [Block(" ".join(dict.fromkeys(c for c in r if c))) for r in rows]
    header = rows[0]
    blocks = []
    for row in rows[1:]:
        if row == header:  # header repeated after a page break
            continue
        deduped_header, deduped_row = [], []
        for index, cell in enumerate(row):
            if index and cell == row[index - 1] and header[index] == header[index - 1]:
                continue  # horizontally merged cell
            deduped_header.append(header[index])
            deduped_row.append(cell)
        blocks.append(Block(table_row_text(deduped_header, deduped_row), table_row=True))
    return blocks


def _check_container(name: str, content: bytes) -> None:
    if content.startswith(OLE_MAGIC):
        if _ENCRYPTED_STREAM in content:
            raise HandbookFileError(name, errors.ENCRYPTED)
        raise HandbookFileError(name, errors.LEGACY_DOC)
    if not content.startswith(b"PK"):
        raise HandbookFileError(name, errors.corrupt("不是有效的 .docx 文件"))


def read_docx(name: str, content: bytes) -> tuple[list[Block], str | None]:
    _check_container(name, content)
    try:
        document = docx.Document(io.BytesIO(content))
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                text = item.text.strip()
                if text:
                    blocks.append(Block(text, heading=_heading_level(item)))
            elif isinstance(item, Table):
                blocks.extend(_table_blocks(item))
        title = (document.core_properties.title or "").strip() or None
    except HandbookFileError:
        raise
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, AttributeError, OSError) as exc:
        raise HandbookFileError(name, errors.corrupt(type(exc).__name__)) from None
    except Exception as exc:  # lxml and python-docx raise their own types on broken XML
        raise HandbookFileError(name, errors.corrupt(type(exc).__name__)) from None
    if not blocks:
        has_pictures = False
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                has_pictures = any(n.startswith("word/media/") for n in archive.namelist())
        except zipfile.BadZipFile:
            pass
        raise HandbookFileError(name, errors.SCANNED if has_pictures else errors.EMPTY)
    return blocks, title
