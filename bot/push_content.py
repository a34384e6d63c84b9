"""What one push says: a customer-service text and, for outside the 48-hour window, a template message.

Template messages changed in May 2023: the ``first`` and ``remark`` lines are
gone, colours are ignored, emoji show as □, and each keyword line is cut at 20
characters without an error. So a template carries only short facts, one per
keyword line, and the action ("回复1报名") must itself be a keyword line. Which
keyword of the approved template carries which fact depends on the template
the account got (``thing1``, ``thing2``…), so it is a setting
(``SISONG_WECHAT_TEMPLATE_*_FIELDS``: ``fact:keyword`` pairs). The keyword's
type sets the rules WeChat validates (47003 when broken): ``thing`` ≤ 20
characters, ``phrase`` ≤ 5 Chinese characters, ``character_string`` ≤ 32
without Chinese, ``number``/``amount`` digits; they are applied here, so a
long employer name is cut with "…" by us rather than refused by WeChat.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Keyword-type limits (characters) as WeChat validates them.
_LIMITS = {"thing": 20, "phrase": 5, "character_string": 32, "name": 10, "number": 32, "amount": 11,
           "time": 32, "date": 32, "letter": 32, "symbol": 5, "phone_number": 17, "car_number": 8, "const": 20}
_KEYWORD = re.compile(r"^([a-z_]+?)(\d+)$")


def parse_template_fields(value: str) -> list[tuple[str, str]]:
    """``"title:thing1,employer:thing2"`` → ``[("title", "thing1"), ("employer", "thing2")]``.

    Raises ValueError naming the bad pair (the settings turn it into one line at start).
    """
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        fact, sep, keyword = part.partition(":")
        fact, keyword = fact.strip(), keyword.strip()
        match = _KEYWORD.match(keyword)
        if not sep or not fact or not match or match.group(1) not in _LIMITS:
            raise ValueError(f"bad template field {part!r}: write fact:keyword, e.g. title:thing1 "
                             f"(keyword types: {', '.join(sorted(_LIMITS))})")
        pairs.append((fact, keyword))
    if not pairs:
        raise ValueError("no template fields: write fact:keyword pairs, e.g. title:thing1,employer:thing2")
    return pairs


def _visible(text: str) -> str:
    """Drop what a template shows as □ (emoji, symbols outside the BMP, control characters)."""
    out = []
    for ch in text:
        if ord(ch) > 0xFFFF or unicodedata.category(ch) in ("So", "Cc", "Cf", "Cs", "Co"):
            continue
        out.append(ch)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def keyword_value(text: str, keyword: str) -> str:
    """``text`` made acceptable for this keyword's type: cut to its length (with …), rules applied."""
    kind = (_KEYWORD.match(keyword) or re.match(r"(.*)", keyword)).group(1)  # type: ignore[union-attr]
    value = _visible(text)
    if kind == "character_string":
        value = re.sub(r"[^\x20-\x7e]", "", value).strip()  # no Chinese in a character_string
    elif kind in ("number", "amount"):
        found = re.search(r"\d+(?:\.\d+)?", value)
        value = found.group(0) if found else "0"
    limit = _LIMITS.get(kind, 20)
    if len(value) > limit:
        value = value[: limit - 1] + "…" if kind in ("thing", "const") else value[:limit]
    return value or "-"


def template_data(facts: dict[str, str], fields: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """The template's ``data``: each configured keyword with its fact, made to fit."""
    return {keyword: {"value": keyword_value(facts.get(fact, ""), keyword)} for fact, keyword in fields}


@dataclass(frozen=True)
class Content:
    """What one purpose sends: ``text`` inside the 48-hour window, ``template`` outside it (if any).

    ``template`` is ``(template_id, data)``; None when the account has no such
    template configured (then a follower outside the window is unreachable).
    """

    text: str
    template: tuple[str, dict[str, Any]] | None = None
    url: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
