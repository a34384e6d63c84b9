"""Free text that no keyword or conversation step claimed."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.texts import HELP


@router.text
def free_text(ctx: Context) -> str:
    ctx.conversation.set(last_question=(ctx.text or "")[:200])
    return "收到您的留言了。\n" + HELP
