"""Pictures, videos, links and locations: thank the follower and say what we can read."""

from __future__ import annotations

from bot.context import Context
from bot.router import router

_CAN_READ = "我现在只看得懂文字和语音，请用文字或语音告诉我您想问什么。需要人帮忙，回复“0”。"


@router.message("image", "video", "shortvideo", "link")
def media(ctx: Context) -> str:
    return "收到了，谢谢！" + _CAN_READ


@router.message("location")
def location(ctx: Context) -> str:
    label = getattr(ctx.message, "label", None) or "您的位置"
    return f"收到{label}。" + _CAN_READ
