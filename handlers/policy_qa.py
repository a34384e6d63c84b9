"""送政策: a household's question in their own words, answered from the policy handbook.

Free text (and recognised voice) comes here unless a keyword or a conversation
step claimed it. Answers cite the handbook article; what the handbook does not
say is queued for a person, and a notice for the household's WeCom group
(``bot.notices``), both in the message's unit of work; the notice goes out
once that has committed.
"""

from __future__ import annotations

from bot.context import Context
from bot.notices import announce_question
from bot.router import router
from bot.services import Services
from handlers import STARTUP, WARM_UP
from handlers.handover import request_person
from knowledge.service import ensure_sample_loaded
from knowledge.store.unanswered import queue_unanswered
from storage.privacy import mask_text


def load_knowledge(services: Services) -> None:
    """At start: the sample handbook on an empty database, then this process's index."""
    ensure_sample_loaded(services.db)
    services.knowledge.reload()


def warm_up(services: Services) -> None:
    """One real question through segmenter, synonyms and index, before the first household's."""
    services.knowledge.answer("危房改造补助标准是多少")


STARTUP.append(load_knowledge)
WARM_UP.append(warm_up)

# Replies that are not about a policy topic keep the follower's last real question.
_NOT_A_QUESTION = {"detail", "smalltalk", "clarify", "handover"}


@router.text
def ask(ctx: Context) -> str:
    """Answer from the handbook. "详细" comes here too: the whole article, paged by the pipeline."""
    question = ctx.text or ""
    answer = ctx.services.knowledge.answer(question, ctx.conversation.get("topic"))
    if answer.kind == "handover":  # "零", "找人工" and other ways of asking for a person
        return request_person(ctx)
    ctx.conversation.set(topic=answer.topic)
    if answer.kind not in _NOT_A_QUESTION:
        # Conversation state lives in Redis: it keeps the question masked like every store.
        ctx.conversation.set(last_question=mask_text(question[:200]))
    if answer.handover and answer.kind == "unanswerable":
        item_id = queue_unanswered(ctx.session, ctx.openid, question)
        announce_question(ctx, "有住户的问题没答上来", question, item_id)
    return answer.text
