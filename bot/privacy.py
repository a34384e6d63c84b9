"""Masking of personal data before anything reaches a log line.

Households' phone numbers, ID numbers, bank cards and openids must never appear
in clear in logs (which cadres and contractors read).
"""

from __future__ import annotations

import re

_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_BANK_CARD = re.compile(r"(?<!\d)(\d{4})\d{8,11}(\d{4})(?!\d)")
_OPENID = re.compile(r"\bo[A-Za-z0-9_-]{20,40}\b")


def short_openid(openid: str | None) -> str:
    """Enough of an openid to follow one conversation in the logs, not to identify a person."""
    if not openid:
        return "-"
    return openid[:4] + "…" + openid[-4:] if len(openid) > 10 else openid[:2] + "…"


def mask_text(text: str) -> str:
    """Mask ID numbers, phone numbers, bank-card numbers and stray openids inside free text."""
    text = _ID_NUMBER.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    text = _PHONE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    text = _BANK_CARD.sub(lambda m: m.group(1) + " **** " + m.group(2), text)
    text = _OPENID.sub(lambda m: short_openid(m.group(0)), text)
    return text
