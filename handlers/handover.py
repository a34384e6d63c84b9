"""“0” / “人工”: a person takes over.

The request goes into the queue cadres work through (`sisong unanswered
list`), with the follower's last question when there is one, inside the
message's unit of work; the cadres' WeCom group is told once it has committed.
"""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from knowledge.store.unanswered import queue_unanswered
from storage.privacy import mask_text, short_openid

NO_QUESTION = "（请求人工帮助）"


@router.keyword("0", "人工", "转人工", "找人", "人工服务", overrides_state=True)
def handover(ctx: Context) -> str:
    return request_person(ctx)


def request_person(ctx: Context) -> str:
    """Queue the follower for a person; every way of asking for one ends here."""
    last_question = ctx.conversation.get("last_question")
    queue_unanswered(ctx.session, ctx.openid, last_question or NO_QUESTION)
    lines = [f"### 有住户请求人工帮助\n> 住户：{short_openid(ctx.openid)}"]
    if last_question:
        lines.append(f"> 最近的问题：{mask_text(last_question)}")
    notice = "\n".join(lines)
    ctx.after_commit(lambda: ctx.services.queue.notify_cadres(notice))
    ctx.conversation.set(handover_requested=True)
    return "好的，已经记下了，工作人员会尽快联系您。您也可以先把问题写清楚发过来。"
