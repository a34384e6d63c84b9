"""Following the account (directly or by scanning a QR code), and scanning again.

A household's QR code (scene ``hh_…``, printed on its policy handbook) binds
the follower to that household on the same scan: the follow (``qrscene_…``)
or, for someone who already follows, the SCAN event. Other scenes (a
village's poster) are only recorded.
"""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from handlers.binding import after_binding, bind_reply
from handlers.texts import WELCOME
from storage import binding, followers

WELCOME_BACK = "欢迎回来！有政策问题可以直接问我，也可以点下方菜单。"


@router.event("subscribe", "subscribe_scan")
def on_subscribe(ctx: Context) -> str:
    scene = ctx.event_key if ctx.event == "subscribe_scan" else None
    followers.mark_subscribed(ctx.session, ctx.openid, scene=scene)
    ctx.conversation.clear()
    bound = _bind_scene(ctx, scene)
    return WELCOME if bound is None else WELCOME + "\n\n" + bound


@router.event("scan")
def on_scan(ctx: Context) -> str:
    """An existing follower scanned a scene QR code (a village's poster, a household's label)."""
    if ctx.event_key:
        followers.get_or_create(ctx.session, ctx.openid).scene = ctx.event_key
    bound = _bind_scene(ctx, ctx.event_key)
    return WELCOME_BACK if bound is None else bound


def _bind_scene(ctx: Context, scene: str | None) -> str | None:
    """The binding reply if ``scene`` is a household's QR code, else None."""
    if not binding.is_household_scene(scene):
        return None
    result = binding.bind_by_scene(ctx.session, ctx.openid, scene or "")
    after_binding(ctx, result)
    return bind_reply(result)
