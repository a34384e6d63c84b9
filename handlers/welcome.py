"""Following the account (directly or by scanning a village's QR code), and scanning again."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.texts import WELCOME
from storage import followers


@router.event("subscribe", "subscribe_scan")
def on_subscribe(ctx: Context) -> str:
    scene = ctx.event_key if ctx.event == "subscribe_scan" else None
    followers.mark_subscribed(ctx.session, ctx.openid, scene=scene)
    ctx.conversation.clear()
    return WELCOME


@router.event("scan")
def on_scan(ctx: Context) -> str:
    """An existing follower scanned a scene QR code (e.g. a village's poster)."""
    if ctx.event_key:
        followers.get_or_create(ctx.session, ctx.openid).scene = ctx.event_key
    return "欢迎回来！有政策问题可以直接问我，也可以点下方菜单。"
