"""Notices to the cadres' WeCom (企业微信) group robot, as markdown messages.

The group has many members (and sometimes contractors), so whatever is posted
there is masked here as well as by the callers: a notice that quotes a
household's words without masking them cannot leak a phone or ID number.
"""

from __future__ import annotations

import logging

import httpx

from storage.privacy import mask_text

log = logging.getLogger(__name__)

WECOM_MARKDOWN_LIMIT = 4096  # bytes, WeCom's limit for markdown content


class WeComError(Exception):
    pass


class WeComRobot:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def send_markdown(self, content: str) -> None:
        """Post a markdown notice (personal numbers masked); raises WeComError so the queue can retry it.

        Masking comes before truncation, so a number cut at the byte limit is
        still recognised whole.
        """
        content = mask_text(content)
        encoded = content.encode("utf-8")
        if len(encoded) > WECOM_MARKDOWN_LIMIT:
            content = encoded[: WECOM_MARKDOWN_LIMIT - 3].decode("utf-8", "ignore") + "…"
        payload = {"msgtype": "markdown", "markdown": {"content": content}}
        try:
            response = httpx.post(self.url, json=payload, timeout=self.timeout)
            response.raise_for_status()
            result = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeComError(f"wecom robot unreachable: {type(exc).__name__}") from exc
        if result.get("errcode", 0) != 0:
            raise WeComError(f"wecom robot errcode={result.get('errcode')} {result.get('errmsg', '')}")
