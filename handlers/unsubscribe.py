"""Unfollowing: mark the follower; keep their history. WeChat shows no reply, so send none."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from storage import followers


@router.event("unsubscribe")
def on_unsubscribe(ctx: Context) -> None:
    followers.mark_unsubscribed(ctx.session, ctx.openid)
    ctx.conversation.clear()
    return None
