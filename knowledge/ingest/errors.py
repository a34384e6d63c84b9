"""Import errors that name the file and say, in plain Chinese, what to do about it."""

from __future__ import annotations

from pathlib import Path


class HandbookFileError(Exception):
    """A file cannot be imported; nothing from the batch is written."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}：{reason}")


EMPTY = "文件是空的，没有可导入的内容"
ENCRYPTED = "文件已加密（设置了打开密码），请去掉密码后再导入"
SCANNED = "没有可提取的文字，可能是扫描图片，请提供文字版或先做文字识别（OCR）"
GARBLED = "提取出的文字无法识别（可能是字体编码问题或扫描件），请另存为 .docx 或 .txt 后再导入"
LEGACY_DOC = "这是旧版 Word（.doc）格式，请在 Word 或 WPS 里另存为 .docx 后再导入"
NO_ARTICLES = "没有识别出任何条文"


def corrupt(detail: str) -> str:
    return f"文件已损坏或格式不正确（{detail}），请重新导出后再导入"


def unsupported(suffix: str) -> str:
    return f"不支持的文件格式“{suffix or '无扩展名'}”，请使用 .docx、.pdf、.md 或 .txt"
