"""送政策: a household's question in their own words, answered from the policy handbook.

Free text (and recognised voice) comes here unless a keyword or a conversation
step claimed it. Answers cite the handbook article; what the handbook does not
say is queued for a person and the cadres' WeCom group is told.
"""

from __future__ import annotations

from bot.context import Context
from bot.privacy import mask_text, short_openid
from bot.router import router
from bot.services import Services
from bot.textfit import MORE_HINT
from handlers import STARTUP
from knowledge.service import KnowledgeBase, ensure_sample_loaded

KB_KEY = "knowledge_base"


def load_knowledge(services: Services) -> None:
    """At start: the sample handbook on an empty database, then this process's index."""
    ensure_sample_loaded(services.db)
    services.extras[KB_KEY] = KnowledgeBase.open(services.db)


STARTUP.append(load_knowledge)


def knowledge_base(services: Services) -> KnowledgeBase:
    kb = services.extras.get(KB_KEY)
    if kb is None:
        kb = services.extras[KB_KEY] = KnowledgeBase.open(services.db)
    return kb  # type: ignore[no-any-return]


@router.text
def ask(ctx: Context) -> str:
    question = ctx.text or ""
    answer = knowledge_base(ctx.services).ask(ctx.openid, question, ctx.conversation.get("topic"))
    ctx.conversation.set(topic=answer.topic, last_question=question[:200])
    if answer.handover and answer.kind == "unanswerable":
        ctx.services.queue.notify_cadres(
            "### 有住户的问题没答上来\n"
            f"> 问题：{mask_text(question[:300])}\n"
            f"> 住户：{short_openid(ctx.openid)}\n"
            "请在待答问题里回复（sisong unanswered list），转成常见问题后会自动发给提问的住户。"
        )
    return answer.text


@router.keyword("详细", "看全文", "全文", "详细内容", "详细点")
def details(ctx: Context) -> str:
    """The whole article behind the last answer, paged under WeChat's limit."""
    topic = ctx.conversation.get("topic")
    if not topic:
        return "请先问一个政策问题，再回复“详细”看全文。"
    pages = knowledge_base(ctx.services).article_pages(topic)
    if not pages:
        return "这条政策没有更多内容了。有其他问题可以直接问我。"
    ctx.conversation.set(more_pages=pages[1:])
    return pages[0] + MORE_HINT if len(pages) > 1 else pages[0]
