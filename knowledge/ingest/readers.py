"""Pick the reader for a file by its extension and run the checks every format shares."""

from __future__ import annotations

from pathlib import Path

from knowledge.ingest import errors
from knowledge.ingest.blocks import RawDocument
from knowledge.ingest.errors import HandbookFileError
from knowledge.ingest.read_pdf import readable_share
from knowledge.ingest.read_text import read_markdown, read_txt

SUPPORTED = (".docx", ".pdf", ".md", ".markdown", ".txt")


def read_file(path: Path) -> RawDocument:
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise HandbookFileError(path, errors.unsupported(suffix))
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise HandbookFileError(path, "找不到这个文件") from None
    except IsADirectoryError:
        raise HandbookFileError(path, "这是一个文件夹，请指定文件") from None
    except OSError as exc:
        raise HandbookFileError(path, f"无法读取文件（{exc.strerror}）") from None
    return read_bytes(name, content, suffix)


def read_bytes(name: str, content: bytes, suffix: str) -> RawDocument:
    if not content.strip():
        raise HandbookFileError(name, errors.EMPTY)
    title: str | None = None
    # The .docx and .pdf readers are imported when a file needs them: their libraries cost a
    # web worker ~20 MB, and only an upload ever reads such a file.
    if suffix == ".docx":
        from knowledge.ingest.read_docx import read_docx

        blocks, title = read_docx(name, content)
    elif suffix == ".pdf":
        from knowledge.ingest.read_pdf import read_pdf

        blocks, title = read_pdf(name, content)
    elif suffix in (".md", ".markdown"):
        blocks = read_markdown(name, content)
    else:
        blocks = read_txt(name, content)
    if not blocks:
        raise HandbookFileError(name, errors.EMPTY)
    if suffix != ".pdf" and readable_share("\n".join(b.text for b in blocks)) < 0.8:
        raise HandbookFileError(name, errors.GARBLED)
    return RawDocument(name=name, content=content, blocks=blocks, title_hint=title)
