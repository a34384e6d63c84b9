"""Voice messages WeChat could not turn into words (recognised ones are routed as text)."""

from __future__ import annotations

from bot.context import Context
from bot.router import router


@router.message("voice")
def unrecognised_voice(ctx: Context) -> str:
    return "不好意思，这条语音我没听清。请再说一遍，说慢一点；也可以打字问我。"
