"""Notices to the cadres' WeCom (企业微信) group robots, as markdown messages.

A group has many members (and sometimes contractors), so whatever is posted
there is masked here as well as by the callers: a notice that quotes a
household's words without masking them cannot leak a phone or ID number.

Which group hears what, the queue of notices and WeCom's 20-a-minute limit
are ``bot.notices``; this module is one robot and one HTTP call per message.
"""

from __future__ import annotations

import logging

import httpx

from storage.privacy import mask_text

log = logging.getLogger(__name__)

WECOM_MARKDOWN_LIMIT = 4096  # bytes, WeCom's limit for markdown content
RATE_LIMITED = 45009  # WeCom: this robot sent more than 20 messages this minute


class WeComError(Exception):
    """The robot did not take the message; ``errcode`` is WeCom's answer (None: not reached)."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


def split_markdown(content: str, limit: int = WECOM_MARKDOWN_LIMIT) -> list[str]:
    """``content`` as pieces of at most ``limit`` UTF-8 bytes, cut between lines where possible.

    WeCom refuses (or we would have to truncate) a longer message; splitting
    loses nothing. Mask before splitting, so no number is cut in two unmasked.
    """
    if len(content.encode("utf-8")) <= limit:
        return [content]
    pieces: list[str] = []
    current = ""
    for line in content.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate.encode("utf-8")) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line.encode("utf-8")) > limit:  # one line longer than a message: cut by characters
            cut = line.encode("utf-8")[:limit].decode("utf-8", "ignore")
            pieces.append(cut)
            line = line[len(cut):]
        current = line
    if current:
        pieces.append(current)
    return pieces


class WeComRobot:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def send_markdown(self, content: str) -> int:
        """Post a markdown notice (personal numbers masked); returns the messages it took.

        Raises :class:`WeComError` (with WeCom's ``errcode``, 45009 when over
        the rate) so the sender can keep the notice and try again. Masking comes
        before splitting, so a number at a cut is still recognised whole; a
        notice over 4096 bytes goes as several messages, never truncated.
        """
        pieces = split_markdown(mask_text(content))
        for piece in pieces:
            self._post(piece)
        return len(pieces)

    def _post(self, content: str) -> None:
        payload = {"msgtype": "markdown", "markdown": {"content": content}}
        try:
            response = httpx.post(self.url, json=payload, timeout=self.timeout)
            response.raise_for_status()
            result = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeComError(f"wecom robot unreachable: {type(exc).__name__}") from exc
        errcode = result.get("errcode", 0)
        if errcode != 0:
            raise WeComError(f"wecom robot errcode={errcode} {result.get('errmsg', '')}".strip(), errcode)
