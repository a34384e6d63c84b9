"""Masking of personal data before anything leaves the process or is stored.

Households' phone numbers, ID numbers, bank cards and openids must never appear
in clear in logs, tracebacks, the cadres' WeCom group, FAQ entries other
households read, the unanswered queue or the command line. ``mask_text`` is the
one function every such path calls, so a format it learns is masked everywhere.

Households type numbers every way a phone keyboard allows: ``+86 138 1234 5678``,
``138-1234-5678``, full-width ``１３８１２３４５６７８``, old 15-digit IDs,
bank cards in groups of four, and voice recognition writes ``一三八一二三四…``.
A regex per format would miss the next one, so the text is read as *runs of
digits with single separators between groups*, and each run is classified by
its digit string. Ordinary numbers (amounts, dates, years, article numbers,
landlines, short codes) are left alone: they are either too short or have no
phone/ID/card shape.
"""

from __future__ import annotations

import re

# Characters that are written differently but mean the same thing here, mapped
# 1:1 (same length), so a position in the normalised text is the same position
# in the original and a match can be replaced there.
_NORMALISE = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},  # full-width ０-９
        "＋": "+",
        "Ｘ": "X",
        "ｘ": "x",
        "．": ".",
        **dict.fromkeys("－‐‑‒–—−﹣", "-"),
        **dict.fromkeys("\u3000\u00a0\u2002\u2003\u2009\u202f", " "),
    }
)
# Spoken digits, as voice recognition writes a dictated number (幺 is "one" on the phone).
_CN_DIGITS = "〇零一二三四五六七八九幺两"
_CN_TO_ASCII = str.maketrans("〇零一二三四五六七八九幺两", "0012345678912")

_D = "0-9" + _CN_DIGITS
# A run: digits, single separators between groups, at least 11 digits (the shortest
# thing masked). The lookahead keeps the common case (short numbers) inside the C
# regex engine.
_RUN = re.compile(rf"\+?(?=(?:[{_D}][ .\-]?){{10}}[{_D}])[{_D}]+(?:[ .\-][{_D}]+)*")
# Groups inside a run: a change of script (1 3 8 / 一三八) also starts a new group.
_GROUP = re.compile(rf"[0-9]+|[{_CN_DIGITS}]+")
# A binding code after "绑定" / "绑定码" (typed, full-width or dictated): a secret, never stored in clear.
_BIND_CODE = re.compile(
    rf"(绑定码?\s*[:：]?\s*)([0-9０-９{_CN_DIGITS}](?:[ \u3000\-－]?[0-9０-９{_CN_DIGITS}])*)"
)
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{20,40}(?![A-Za-z0-9_-])")
_ASCII_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# First two digits of a resident ID: the province (GB/T 2260), 71/81/82/83 included.
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)
_MAX_DIGITS = 19  # longest bank card; phones with 0086 are 15, IDs 18
# Digit counts of something masked: phone 11 (+86: 13, 0086: 15), ID 15/18 (17 + X), card 16-19.
_LENGTHS = frozenset({11, 13, 15, 16, 17, 18, 19})


def short_openid(openid: str | None) -> str:
    """Enough of an openid to follow one conversation in the logs, not to identify a person."""
    if not openid:
        return "-"
    return openid[:4] + "…" + openid[-4:] if len(openid) > 10 else openid[:2] + "…"


def mask_text(text: str) -> str:
    """Mask phone, ID and bank-card numbers and stray openids inside free text.

    * mainland mobiles (11 digits, 1[3-9]…), also after ``+86``/``86``/``0086``:
      ``138****5678`` (the country code goes too, so every way of writing one
      number masks to the same text);
    * resident IDs, 18 digits (last may be X) or old 15-digit ones, plain or in
      groups starting with the 6-digit region; the birth date is hidden:
      ``110101********1234``, ``110101******123``;
    * bank cards, 16–19 digits, plain or in groups of four: ``6222 **** 0123``;
    * openids: ``oAbC…WxYz``;
    * binding codes after "绑定" (``绑定 4721 8390`` -> ``绑定 ********``): a
      code binds a household, so the message log must not keep it.

    Full-width digits, ``＋``, ``－``, ``Ｘ`` and full-width spaces count as their
    ASCII forms, and a run of spoken digits (``一三八…``, with 〇/零/幺/两) counts
    as digits; groups may be separated by one space, dash or dot. Visible digits
    of a masked number are written in ASCII. Masking is idempotent, so text
    masked when stored can be masked again on the way out.
    """
    if not text:
        return text
    if "o" in text:
        text = _OPENID.sub(_short_openid_match, text)
    if "绑" in text:
        text = _BIND_CODE.sub(_mask_bind_code, text)
    norm = text if text.isascii() else text.translate(_NORMALISE)
    pieces: list[str] = []
    last = 0
    for run in _RUN.finditer(norm):
        for start, end, masked in _mask_run(norm, run):
            pieces.append(text[last:start])
            pieces.append(masked)
            last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _mask_bind_code(match: re.Match[str]) -> str:
    """``绑定 4721 8390`` -> ``绑定 ********``; short numbers ("绑定两个…") are words, not codes."""
    code = match.group(2)
    if sum(ch not in " \u3000-－" for ch in code) < 4:
        return match.group(0)
    return match.group(1) + "********"


def _short_openid_match(match: re.Match[str]) -> str:
    return short_openid(match.group(0))


def _mask_run(norm: str, run: re.Match[str]) -> list[tuple[int, int, str]]:
    """Masked spans inside one run, as (start, end, replacement) in text positions.

    A run may hold several numbers (``13812345678 13987654321``) or a number next
    to an ordinary one (``2024-01-15 13812345678``), so groups are tried from the
    left, longest span of groups first.
    """
    groups = [(g.start(), g.end(), g.group()) for g in _GROUP.finditer(norm, run.start(), run.end())]
    plus = norm[run.start()] == "+"
    run_end = run.end()
    x_follows = (
        run_end < len(norm)
        and norm[run_end] in "Xx"
        and groups[-1][2][0] in "0123456789"
        and (run_end + 1 == len(norm) or norm[run_end + 1] not in _ASCII_ALNUM)
    )
    found: list[tuple[int, int, str]] = []
    count = len(groups)
    i = 0
    while i < count:
        # Spans starting at group i with a maskable length; every group has a digit, so at
        # most 19 groups are looked at and a long run costs linear time, not quadratic.
        ends: list[int] = []
        total = 0
        for j in range(i, count):
            total += len(groups[j][2])
            if total > _MAX_DIGITS:
                break
            if total in _LENGTHS:
                ends.append(j)
            if len(groups[j][2]) == 1:
                break  # a 1-digit group can only end a number (a card's last group)
        hit = None
        for j in reversed(ends):
            hit = _classify(groups[i : j + 1], x_follows and j == count - 1)
            if hit is not None:
                break
        if hit is None:
            i += 1
            continue
        masked, took_x, phone = hit
        start = run.start() if phone and plus and i == 0 else groups[i][0]  # "+86 …" goes with the number
        end = groups[j][1] + (1 if took_x else 0)
        found.append((start, end, masked))
        i = j + 1
    return found


def _classify(span: list[tuple[int, int, str]], x_follows: bool) -> tuple[str, bool, bool] | None:
    """(masked form, whether a following X was consumed, whether it is a phone) or None."""
    digits = "".join(g[2] for g in span)
    if not digits.isascii():
        digits = digits.translate(_CN_TO_ASCII)
    sizes = [len(g[2]) for g in span]
    n = len(digits)
    phone = _phone_start(digits, sizes)
    if phone is not None:
        return digits[phone : phone + 3] + "****" + digits[-4:], False, True
    if x_follows and n == 17 and _id_shaped(sizes) and digits[:2] in _PROVINCES:
        return digits[:6] + "********" + digits[-3:] + "X", True, False
    if n == 18 and _id_shaped(sizes):
        return digits[:6] + "********" + digits[-4:], False, False
    if n == 15 and _id_shaped(sizes) and _is_old_id(digits):
        return digits[:6] + "******" + digits[-3:], False, False
    if 16 <= n <= _MAX_DIGITS and _card_shaped(sizes, digits):
        return digits[:4] + " **** " + digits[-4:], False, False
    return None


def _phone_start(digits: str, sizes: list[int]) -> int | None:
    """Index where the 11-digit mobile starts (after a country code), or None."""
    n = len(digits)
    if n == 11:
        code = 0
    elif n == 13 and digits.startswith("86"):
        code = 2
    elif n == 15 and digits.startswith("0086"):
        code = 4
    else:
        return None
    if digits[code] != "1" or digits[code + 1] not in "3456789":
        return None
    if code:
        first = sizes[0] - code
        if first < 0:
            return None  # "0 086…": not how anyone writes a country code
        sizes = ([first] if first else []) + sizes[1:]
    # 138 1234 5678, 1381234 5678, 138-12345678: every group of the number has 3+ digits,
    # which keeps lists of small numbers ("13 8 12 …") from reading as a phone.
    return code if all(s >= 3 for s in sizes) else None


def _id_shaped(sizes: list[int]) -> bool:
    """One group, or the 6-digit region first and then groups of 2+ (110101 19900101 1234)."""
    return len(sizes) == 1 or (sizes[0] == 6 and all(s >= 2 for s in sizes[1:]))


def _is_old_id(digits: str) -> bool:
    """15-digit IDs: region, YYMMDD, 3 digits; checked because plain 15-digit numbers exist."""
    month, day = int(digits[8:10]), int(digits[10:12])
    return digits[:2] in _PROVINCES and 1 <= month <= 12 and 1 <= day <= 31


def _card_shaped(sizes: list[int], digits: str) -> bool:
    """One group, or groups of four with a shorter last one; a list of years is not a card."""
    if len(sizes) == 1:
        return True
    if not all(s == 4 for s in sizes[:-1]) or not 1 <= sizes[-1] <= 4:
        return False
    return not (sizes[-1] == 4 and all(digits[k : k + 2] in ("19", "20") for k in range(0, len(digits), 4)))


def mask_name(name: str | None) -> str:
    """A person's name as another person may see it: the family name and ＊ for the rest."""
    name = (name or "").strip()
    if not name:
        return "-"
    if len(name) == 1:
        return name
    return name[0] + "＊" * (len(name) - 1)
