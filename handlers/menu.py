"""The custom menu's CLICK keys (see ``bot/menu.json``); JOBS is ``handlers/jobs.py``, SURVEY ``handlers/survey.py``."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.texts import HELP


@router.click("POLICY_QA")
def policy(ctx: Context) -> str:
    return "请直接打字或发语音问我政策，比如：\n“房子漏雨能补钱不”\n“娃儿读大学有补助没”\n“看病能先不给钱吗”"


@router.event("click")
def unknown_click(ctx: Context) -> str:
    """A key from an older menu still on someone's phone."""
    return HELP
