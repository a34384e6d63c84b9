"""The custom menu's CLICK keys (see ``bot/menu.json``); JOBS is ``handlers/jobs.py``."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.texts import HELP


@router.click("POLICY_QA")
def policy(ctx: Context) -> str:
    return "请直接打字或发语音问我政策，比如：\n“房子漏雨能补钱不”\n“娃儿读大学有补助没”\n“看病能先不给钱吗”"


@router.click("SURVEY")
def survey(ctx: Context) -> str:
    return "现在没有进行中的满意度调查。对帮扶工作有什么意见或建议，可以直接留言，我们会转给工作人员。"


@router.event("click")
def unknown_click(ctx: Context) -> str:
    """A key from an older menu still on someone's phone."""
    return HELP
