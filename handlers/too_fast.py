"""A follower sending faster than ``SISONG_FOLLOWER_RATE``: say so once, then stay quiet."""

from __future__ import annotations

from bot.context import Context
from bot.router import router


@router.too_fast
def too_fast(ctx: Context) -> str | None:
    if ctx.services.state.claim("too-fast:" + ctx.openid, "1", 60):
        return "您发得有点快，请歇一会儿再发，我们都会看到的。"
    return None
