"""“更多”: the next page of a long answer that did not fit in one message."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from bot.textfit import MORE_HINT


@router.keyword("更多", "下一页", "继续", overrides_state=True)
def more(ctx: Context) -> str:
    pages: list[str] = ctx.conversation.get("more_pages") or []
    if not pages:
        return "没有更多内容了。有其他问题可以直接问我。"
    page, rest = pages[0], pages[1:]
    ctx.conversation.set(more_pages=rest)
    return page + MORE_HINT if rest else page
