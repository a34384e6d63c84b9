"""Heading markers Chinese policy documents use: 第X章, 第X节, 第X条, 一、, （一）, 1.

Detected on the text itself so structure survives any format, including PDFs
and plain text where no heading styles exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.nlp.cn_numbers import NUMERAL_CHARS, parse_cn_number

_N = f"[{NUMERAL_CHARS}]+"
_SEP = r"[\s\u3000:：、.．]*"
_CN = "[一二三四五六七八九十百]+"

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("chapter", re.compile(rf"^(第{_N}[章编])(?!之){_SEP}(.*)$", re.S)),
    ("section", re.compile(rf"^(第{_N}节){_SEP}(.*)$", re.S)),
    ("article", re.compile(rf"^(第{_N}条)(?!之){_SEP}(.*)$", re.S)),
    ("paren_item", re.compile(rf"^([（(]{_CN}[）)])[\s\u3000]*(.*)$", re.S)),
    ("cn_item", re.compile(rf"^({_CN}[、．.])[\s\u3000]*(.*)$", re.S)),
    ("num_item", re.compile(r"^(\d{1,3}[.．、])(?!\d)[\s\u3000]*(.*)$", re.S)),
)


@dataclass(frozen=True)
class Marker:
    kind: str  # chapter | section | article | paren_item | cn_item | num_item
    label: str  # as written: 第十二条, （一）, 一、, 1.
    number: int | None
    rest: str  # text after the label on the same line


def find_marker(text: str) -> Marker | None:
    text = text.strip()
    for kind, pattern in PATTERNS:
        match = pattern.match(text)
        if match:
            label = match.group(1)
            digits = re.sub(r"^第|[章编节条]$|[（()）、．.]", "", label)
            return Marker(kind, label, parse_cn_number(digits), match.group(2).strip())
    return None


def starts_with_marker(text: str) -> bool:
    return find_marker(text) is not None


# A policy document's own title inside a compilation: "云溪县农村低保和临时救助工作规程",
# "关于做好2025年……工作的通知", "……实施方案（试行）". Compilations (政策文件汇编) put several
# such documents one after another, each numbered 一、（一）1. afresh.
DOCUMENT_TITLE = re.compile(
    r"^(?!.*[。；;，,：:！？!?]$).{4,70}?"
    r"(通知|实施方案|工作方案|方案|办法|细则|实施意见|意见|规定|规程|指南|须知|决定|规划|措施|制度|通告|公告|政策问答|问答)"
    r"([（(](试行|修订|暂行|\d{4}年修订|征求意见稿)[）)])?$"
)
# The issuing number under a title: 云住建发〔2025〕8号, 县政办发[2024]3号.
DOCUMENT_NUMBER = re.compile(r"^[\u4e00-\u9fff]{1,12}[〔\[【(（]\s*\d{4}\s*[〕\]】)）]\s*\d{1,4}\s*号$")


def looks_like_document_title(text: str) -> bool:
    """A line that names a policy document (and is not a numbered heading inside one)."""
    text = text.strip()
    return find_marker(text) is None and bool(DOCUMENT_TITLE.match(text))
