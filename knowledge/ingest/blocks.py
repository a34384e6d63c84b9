"""What every reader produces: a flat list of blocks in reading order.

Readers know file formats; the structure parser knows 第X章/第X条. Blocks are
the small contract between them, so a new format needs only a new reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    text: str
    # 0 = the document's title (Word "Title" style, markdown "#"), 1.. = heading levels; None = body text.
    heading: int | None = None
    table_row: bool = False


@dataclass
class RawDocument:
    name: str  # file name, the key for "same file again"
    content: bytes
    blocks: list[Block]
    title_hint: str | None = None  # from document metadata, when set
    warnings: list[str] = field(default_factory=list)


def table_row_text(header: list[str], row: list[str]) -> str:
    """A table row as a sentence that carries its header cells: "对象：脱贫户；标准：每人每年3000元。"."""
    parts = []
    for index, cell in enumerate(row):
        cell = " ".join(cell.split())
        if not cell:
            continue
        name = " ".join(header[index].split()) if index < len(header) else ""
        parts.append(f"{name}：{cell}" if name and name != cell else cell)
    text = "；".join(parts)
    return text + "。" if text and text[-1] not in "。！？；" else text
