"""满意度调查 (四问一查) in the chat: starting, answering, pausing; the logic is ``bot.survey.conversation``."""

from __future__ import annotations

from bot.context import Context
from bot.router import router
from bot.survey import conversation
from bot.survey.conversation import DECLINE_WORDS, START_WORDS, STATE


@router.keyword(*sorted(START_WORDS), overrides_state=True)
@router.click("SURVEY")
def start(ctx: Context) -> str:
    """"开始" (also mid-survey: resumes at the same question) and the menu's 满意度调查."""
    return conversation.begin(ctx)


@router.keyword(*sorted(DECLINE_WORDS), overrides_state=True)
def decline(ctx: Context) -> str:
    return conversation.decline(ctx)


@router.state(STATE)
def answer(ctx: Context) -> str:
    return conversation.step(ctx)


@router.durable_step(conversation.probe)
def answer_or_start(ctx: Context) -> str:
    """The database says a survey is under way (or the follower is replying to its invitation)."""
    from storage import surveys

    if surveys.in_progress(ctx.session, ctx.openid) is not None:
        return conversation.step(ctx)
    return conversation.begin(ctx)
