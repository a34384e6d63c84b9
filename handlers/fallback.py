"""Anything else WeChat may send (new message or event types): accept quietly."""

from __future__ import annotations

import logging

from bot.context import Context
from bot.router import router

log = logging.getLogger(__name__)


@router.fallback
def unknown(ctx: Context) -> None:
    log.info("unhandled message", extra={"type": ctx.msg_type, "event": ctx.event or ""})
    return None
