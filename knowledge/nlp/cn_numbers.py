"""Chinese numerals in headings (第十二条, 二十一、) to integers.

Only needed to order articles and to warn about gaps or duplicates in a
handbook's numbering; labels themselves are always kept as written.
"""

from __future__ import annotations

DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000}
NUMERAL_CHARS = "".join(DIGITS) + "".join(UNITS) + "0123456789０１２３４５６７８９"


def parse_cn_number(text: str) -> int | None:
    """``"十二"`` -> 12, ``"一百零三"`` -> 103, ``"12"`` -> 12; None if not a numeral."""
    text = text.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not text:
        return None
    if text.isdigit():
        return int(text)
    total, current = 0, 0
    for char in text:
        if char in DIGITS:
            current = DIGITS[char]
        elif char in UNITS:
            total += (current or 1) * UNITS[char]
            current = 0
        else:
            return None
    return total + current
