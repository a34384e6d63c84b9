"""Reading the tables cadres keep in Excel: CSV or XLSX → rows of text with their line numbers.

Nothing here knows what a household is. The importers (``storage.org_import``)
find the header row and validate; this module only turns a file into text
cells faithfully, because the files cadres really have are not tidy:

* CSVs saved by Excel on Chinese Windows are GBK (read as GB18030, its
  superset); others are UTF-8 with or without a BOM, or UTF-16 ("Unicode
  text", tab-separated). The delimiter is sniffed (comma, tab, semicolon).
* Numbers typed as numbers come back as ``int``/``float`` from openpyxl. A
  户编号 or phone must keep every digit, so integers are written without a
  decimal point or exponent, and a number format of zeros (``000000``, how
  Excel shows leading zeros on a number) pads them back. A float beyond 15
  significant digits has already lost digits inside Excel: it is written in
  scientific notation on purpose so the validators report it instead of
  importing a wrong 户编号.
* A cell merged down one column (a 村 merged over its households) reads as
  that value on every row, as the cadre sees it; merges across columns in the
  data cannot be read row by row and are reported (:attr:`Sheet.merge_errors`).
* Line numbers are what the cadre sees: the Excel row number, or the record
  number of a CSV (Excel shows a quoted multi-line cell as one row).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO


XLSX_MAGIC = b"PK\x03\x04"
_ZERO_FORMAT = re.compile(r'^0+$')
# Excel keeps 15 significant digits; beyond that an identifier typed as a number is already damaged.
_EXACT_DIGITS = 15


class SheetError(Exception):
    """The file cannot be read at all (wrong format, unknown encoding); the message is for the cadre."""


@dataclass
class Row:
    line: int
    cells: list[str]
    merged: frozenset[int] = frozenset()  # column indexes whose value was filled from a merged cell above

    def is_blank(self) -> bool:
        return not any(c.strip() for c in self.cells)


@dataclass
class Sheet:
    """One table: a CSV file, or one worksheet of a workbook (``name`` is None for a CSV)."""

    name: str | None
    rows: list[Row]
    # Merged ranges spanning several columns, as (first line, last line, "B3:D3"): the importer
    # reports those below the title rows once it knows where the header is.
    merged_ranges: list[tuple[int, int, str]] = field(default_factory=list)


def read_table(source: Path | str | bytes | BinaryIO, filename: str | None = None) -> list[Sheet]:
    """Every table in the file: one for a CSV, one per worksheet for an XLSX.

    ``source`` is a path, or the bytes of an uploaded file with its ``filename``
    (the web console); the format is told by the content first (an XLSX is a
    zip), then by the name.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SheetError(f"找不到文件 {path}") from None
        except OSError as exc:
            raise SheetError(f"无法读取文件 {path}（{exc.strerror or exc}）") from None
    elif isinstance(source, bytes):
        data = source
    else:
        data = source.read()
    name = (filename or "").lower()
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(data)
    if name.endswith(".xls") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError("这是旧版 Excel（.xls）文件。请在 Excel 里“另存为” .xlsx 或 CSV 后再导入。")
    if name.endswith((".xlsx", ".xlsm")):
        raise SheetError("这个 .xlsx 文件打不开，可能已损坏。请在 Excel 里重新保存后再导入。")
    return [_read_csv(data)]


# -- CSV ----------------------------------------------------------------------------------

def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or GBK/GB18030: what Excel and WPS write."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetError("文件编码无法识别。请在 Excel 里另存为“CSV UTF-8”或 .xlsx 后再导入。") from None


def _read_csv(data: bytes) -> Sheet:
    text = decode_text(data)
    if "\x00" in text:
        raise SheetError("这不是 CSV 或 Excel 文件。请导入 .csv 或 .xlsx 文件。")
    sample = [line for line in text.splitlines()[:20] if line.strip()]
    delimiter = max(",\t;", key=lambda d: sum(line.count(d) for line in sample)) if sample else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [Row(line, [cell.strip() for cell in record]) for line, record in enumerate(reader, 1)]
    except csv.Error as exc:
        raise SheetError(f"CSV 格式有误：{exc}") from None
    return Sheet(None, rows)


# -- XLSX ---------------------------------------------------------------------------------

def _read_xlsx(data: bytes) -> list[Sheet]:
    import zipfile

    from openpyxl import load_workbook

    try:
        # Not read-only: merged ranges and number formats are needed. data_only: a formula's last value.
        book = load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SheetError(f"这个 Excel 文件打不开（{type(exc).__name__}）。请在 Excel 里重新保存为 .xlsx 后再导入。") from None
    sheets = []
    for ws in book.worksheets:
        if ws.sheet_state != "visible":
            continue  # hidden sheets hold lookup lists, not data the cadre sees
        sheets.append(_read_worksheet(ws))
    book.close()
    return sheets


def _read_worksheet(ws) -> Sheet:  # type: ignore[no-untyped-def]
    fill: dict[tuple[int, int], str] = {}
    merged_ranges: list[tuple[int, int, str]] = []
    for rng in ws.merged_cells.ranges:
        top = cell_text(ws.cell(rng.min_row, rng.min_col).value, ws.cell(rng.min_row, rng.min_col).number_format)
        if rng.min_col == rng.max_col:
            for r in range(rng.min_row + 1, rng.max_row + 1):
                fill[(r, rng.min_col)] = top
        else:
            merged_ranges.append((rng.min_row, rng.max_row, rng.coord))
    width = ws.max_column or 0
    rows: list[Row] = []
    for r, cells in enumerate(ws.iter_rows(min_row=1, max_row=ws.max_row or 0, max_col=width), 1):
        values = [cell_text(c.value, c.number_format) for c in cells]
        merged = set()
        for col in range(1, width + 1):
            if (r, col) in fill:
                values[col - 1] = fill[(r, col)]
                merged.add(col - 1)
        rows.append(Row(r, values, frozenset(merged)))
    return Sheet(ws.title, rows, merged_ranges)


def cell_text(value: object, number_format: str | None = "General") -> str:
    """A cell as the text the cadre meant, keeping every digit of numbers typed as numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int):
        return _pad(str(value), number_format)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 10**_EXACT_DIGITS:
            return _pad(str(int(value)), number_format)
        return f"{value:.15g}".upper()  # 5.20123199001011E+17 or 4.5: the validators say what is wrong
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if value.time() != time() else value.strftime("%Y-%m-%d")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value).strip()


def _pad(digits: str, number_format: str | None) -> str:
    """Leading zeros Excel shows through a ``000000`` number format are part of the value."""
    if number_format and _ZERO_FORMAT.match(number_format) and not digits.startswith("-"):
        return digits.zfill(len(number_format))
    return digits


def column_letter(index: int) -> str:
    """0-based column index → Excel letter, for messages ("第 3 行 E 列")."""
    from openpyxl.utils import get_column_letter  # openpyxl costs a web worker ~9 MB until a sheet is read

    return get_column_letter(index + 1)


def text_not_formulas(book: Any) -> None:
    """Cells whose text starts with "=" are formulas to openpyxl, and to the cadre's Excel a household's
    comment like ``=HYPERLINK(…)`` would run: our exports write no formulas, so every such cell is text."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
