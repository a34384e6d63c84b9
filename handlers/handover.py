"""“0” / “人工”: a person takes over. The cadres' WeCom group is told at once."""

from __future__ import annotations

from bot.context import Context
from bot.privacy import short_openid
from bot.router import router


@router.keyword("0", "人工", "转人工", "找人", "人工服务", overrides_state=True)
def handover(ctx: Context) -> str:
    last_question = ctx.conversation.get("last_question")
    lines = [f"### 有住户请求人工帮助\n> 住户：{short_openid(ctx.openid)}"]
    if last_question:
        lines.append(f"> 最近的问题：{last_question}")
    ctx.services.queue.notify_cadres("\n".join(lines))
    ctx.conversation.set(handover_requested=True)
    return "好的，已经通知工作人员，会尽快联系您。您也可以先把问题写清楚发过来。"
