"""“0” / “人工”: a person takes over.

The request goes into the queue cadres work through (`sisong unanswered
list`), with the follower's last question when there is one, inside the
message's unit of work; so does the notice to the household's WeCom group
(``bot.notices``: the village's group, else the area's, the team's, the
township's), sent once the unit of work has committed. The household's helper
is told privately too when WeChat allows it.
"""

from __future__ import annotations

from bot.context import Context
from bot.notices import announce_question
from bot.router import router
from knowledge.store.unanswered import NO_QUESTION, queue_unanswered

__all__ = ["NO_QUESTION", "handover", "request_person"]


@router.keyword("0", "人工", "转人工", "找人", "人工服务", overrides_state=True)
def handover(ctx: Context) -> str:
    return request_person(ctx)


def request_person(ctx: Context) -> str:
    """Queue the follower for a person; every way of asking for one ends here."""
    last_question = ctx.conversation.get("last_question")
    item_id = queue_unanswered(ctx.session, ctx.openid, last_question or NO_QUESTION)
    announce_question(ctx, "有住户请求人工帮助", last_question, item_id)
    ctx.conversation.set(handover_requested=True)
    return "好的，已经记下了，工作人员会尽快联系您。您也可以先把问题写清楚发过来。"
