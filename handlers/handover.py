"""“0” / “人工”: a person takes over.

The request goes into the queue cadres work through (`sisong unanswered
list`), with the follower's last question when there is one, and the cadres'
WeCom group is told at once when a robot is configured.
"""

from __future__ import annotations

from bot.context import Context
from storage.privacy import mask_text, short_openid
from bot.router import router
from handlers.policy_qa import knowledge_base

NO_QUESTION = "（请求人工帮助）"


@router.keyword("0", "人工", "转人工", "找人", "人工服务", overrides_state=True)
def handover(ctx: Context) -> str:
    return request_person(ctx)


def request_person(ctx: Context) -> str:
    last_question = ctx.conversation.get("last_question")
    knowledge_base(ctx.services).record_unanswered(ctx.openid, last_question or NO_QUESTION)
    lines = [f"### 有住户请求人工帮助\n> 住户：{short_openid(ctx.openid)}"]
    if last_question:
        lines.append(f"> 最近的问题：{mask_text(last_question)}")
    ctx.services.queue.notify_cadres("\n".join(lines))
    ctx.conversation.set(handover_requested=True)
    return "好的，已经记下了，工作人员会尽快联系您。您也可以先把问题写清楚发过来。"
