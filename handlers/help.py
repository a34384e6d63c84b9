"""“帮助” / “菜单”: what the account can do."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.texts import HELP


@router.keyword("帮助", "菜单", "help", "?", "？", "你好", "您好", overrides_state=True)
def help_text(ctx: Context) -> str:
    return HELP
