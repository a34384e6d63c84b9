"""The survey as a conversation: one household member answering the questionnaire, a message at a time.

State lives in the household's response row (``storage.surveys``), written at
every step with its version checked, so it survives days, restarts and Redis;
the follower's Conversation only carries a hint ("survey") so the router finds
the step without a query. When the hint is gone (its TTL ran out, Redis was
down) the router's durable probe (:func:`probe`) asks the database.

One step, given the question being asked:

* the message is read (``bot.survey.understanding``): an answer is recorded
  and the next question asked (``Questionnaire.next_after``); a weak reading
  is confirmed first ("您是说『基本满意』吗？回复1是 2不是"); "跳过" skips an
  optional question; "退出" pauses (resume with "开始", days later too);
* anything else: if it is a policy question the handbook answers, the answer
  and then "我们接着第3题…"; otherwise the question again with its options, at
  most twice; the third time nothing is recorded for that question, the
  helper is asked to call, and the survey goes on.

Answers of one campaign never carry into another: each campaign has its own
response row. The first family member to start owns the response while it
runs; another member is told someone is answering (or has answered).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.survey.campaigns import KIND, alert_cases, campaign_questionnaire
from bot.survey.questionnaire import Question, Questionnaire
from bot.survey.understanding import question_part, read_answer, read_yes_no
from storage import pushes, surveys
from storage.clock import local
from storage.models.base import utcnow
from storage.models.org import Household
from storage.models.surveys import COMPLETED, DECLINED, IN_PROGRESS, INVITED, PAUSED, SurveyCampaign, SurveyResponse

if TYPE_CHECKING:
    from bot.context import Context

log = logging.getLogger(__name__)

STATE = "survey"
START_WORDS = frozenset({"开始", "开始调查", "满意度调查", "满意度", "调查", "参加", "参加调查", "我参加",
                         "继续调查", "接着答", "开始答题", "答题"})
# Replying to the invitation with these also starts it, if the invitation is the latest push the follower got.
DECLINE_WORDS = frozenset({"不参加", "不想参加", "不参加调查", "我不参加", "不做调查", "不想做调查", "不要调查"})
REPLY_WORDS = frozenset({"1", "１", "好", "好的", "可以", "行", "要得", "嗯", "来", "开始吧", "好嘛"})
TAKE_OVER_AFTER = timedelta(minutes=30)  # another member may go on with a response left this long
# A bare answer to a question asked this long ago is not taken: the question is shown again first.
STALE_STEP = timedelta(hours=12)
_BARE_NUMBER = re.compile(r"^\s*[0-9０-９]{1,6}\s*[。.]?\s*$")
MAX_RETRIES = 2  # a question is asked again at most twice
ANSWERED_KINDS = {"article", "faq"}  # policy answers the survey may interleave


# -- routing ----------------------------------------------------------------------------------------------


def probe(ctx: "Context") -> bool:
    """The router's durable check, when the conversation carries no step: is this follower in a survey?

    Short texts only (answers are short; a long text is a question or a
    comment, and a comment is asked with the hint set). One indexed read, and
    none while no campaign is open (``surveys.any_open``).
    """
    text = (ctx.text or "").strip()
    if not text or len(text) > 30 or not surveys.any_open(ctx.session):
        return False
    response_id = surveys.in_progress(ctx.session, ctx.openid)
    if response_id is not None:
        response = ctx.session.get(SurveyResponse, response_id)
        return response is not None and response.openid == ctx.openid and not _meant_for_a_job(ctx, response)
    if text in REPLY_WORDS:
        return _invited_last(ctx)
    return False


def _meant_for_a_job(ctx: "Context", response: SurveyResponse) -> bool:
    """A bare number after a job push that came since the survey's last step is the push's ("回复1报名"),
    not an answer to the survey question asked before it."""
    if not _BARE_NUMBER.match(ctx.text or ""):
        return False
    since = response.updated_at or response.invited_at
    return pushes.last_sent(ctx.session, ctx.openid, "job", since) is not None


def _invited_last(ctx: "Context") -> bool:
    """An unanswered invitation is the newest push this follower got (a "1" after a job push signs up)."""
    response = surveys.response_for(ctx.session, ctx.openid, statuses=(INVITED,))
    if response is None:
        return False
    since = utcnow() - timedelta(days=7)
    invited = pushes.last_sent(ctx.session, ctx.openid, KIND, since)
    if invited is None or invited[0] != response.campaign_id:
        return False
    if float(ctx.conversation.get("jobs_listed_at") or 0) > invited[1].timestamp():
        return False  # a job list came after the invitation: its numbers are the list's
    job = pushes.last_sent(ctx.session, ctx.openid, "job", since)
    return job is None or job[1] <= invited[1]


# -- helpers ----------------------------------------------------------------------------------------------


def _helper_name(ctx: "Context", response: SurveyResponse) -> str:
    household = ctx.session.get(Household, response.household_id)
    if household is not None and household.helper is not None:
        return household.helper.name
    return "（村里安排的干部）"


def _number(questionnaire: Questionnaire, question: Question) -> int:
    return [q.key for q in questionnaire.questions].index(question.key) + 1


def _ask(ctx: "Context", response: SurveyResponse, questionnaire: Questionnaire, question: Question,
         lead: str = "") -> str:
    ctx.conversation.enter(STATE)
    n = _number(questionnaire, question)
    body = question.prompt(helper=_helper_name(ctx, response))
    return f"{lead}第{n}题：{body}"


def _save(ctx: "Context", response: SurveyResponse, **values: Any) -> bool:
    try:
        surveys.save_step(ctx.session, response, **values)
        return True
    except surveys.StaleStep:
        log.info("survey step written by another message first", extra={"response": response.id})
        return False


RACED = "您刚才的回答已经收到了，请看上一条消息，按那里的问题回复。"


# -- starting and resuming ----------------------------------------------------------------------------------


def begin(ctx: "Context") -> str:
    """"开始", the menu's 满意度调查, or a reply to the invitation: start, resume, or say why not.
    A household that said it would not take part may still change its mind."""
    response = surveys.response_for(ctx.session, ctx.openid, statuses=(INVITED, IN_PROGRESS, PAUSED, DECLINED))
    if response is None:
        done = surveys.latest_finished(ctx.session, ctx.openid)
        if done is not None:
            return _already_done(ctx, done)
        household = ctx.session.scalar(_household_query(ctx.openid))
        if household is None:
            return ("满意度调查要先绑定您家的信息。请向帮扶干部要“绑定码”，然后回复：绑定 绑定码；"
                    "也可以扫政策汇编上的二维码。")
        return "现在没有需要您做的满意度调查。谢谢您！有问题可以直接问我。"
    campaign = ctx.session.get(SurveyCampaign, response.campaign_id)
    assert campaign is not None
    questionnaire = campaign_questionnaire(campaign)
    if _someone_else_answering(ctx, response):
        return "您家里另一位正在答这份调查，答完就好，不用重复答。谢谢您！"
    answers = surveys.answers_of(response)
    if response.step is not None:
        question = questionnaire.question(response.step)
        lead = "好的，我们接着答。" if answers else ""
    else:  # a first start, or a household that said 不参加 after some answers: the first unanswered question
        question = questionnaire.next_after(None, answers)
        while question is not None and question.key in answers:
            question = questionnaire.next_after(question.key, answers)
        lead = f"谢谢您参加{campaign.title}！一共{len(questionnaire.questions)}题以内，回复数字就行，说话也可以。\n"
    if question is None:  # nothing left to ask: a response paused after its last answer
        return _finish(ctx, response, questionnaire, answers)
    if not _save(ctx, response, status=IN_PROGRESS, step=question.key, openid=ctx.openid, pending=None,
                 started_at=response.started_at or utcnow()):
        return RACED
    return _ask(ctx, response, questionnaire, question, lead)


def decline(ctx: "Context") -> str:
    """"不参加": the household's response is 已拒绝 (no reminder); "开始" later still starts it."""
    response = surveys.response_for(ctx.session, ctx.openid, statuses=(INVITED, PAUSED, IN_PROGRESS))
    if response is None:
        return "好的。有问题随时可以问我。"
    if _someone_else_answering(ctx, response):
        return "您家里另一位正在答这份调查，答完就好，不用重复答。谢谢您！"
    if not _save(ctx, response, status=DECLINED, step=None, pending=None, openid=ctx.openid):
        return RACED
    ctx.conversation.enter(None)
    return "好的，不打扰您了。以后想参加，回复“开始”就行。谢谢您！"


def _someone_else_answering(ctx: "Context", response: SurveyResponse) -> bool:
    """Another member of the household is answering this response now (wrote within TAKE_OVER_AFTER)."""
    return (response.status == IN_PROGRESS and response.openid not in (None, ctx.openid)
            and response.updated_at is not None and utcnow() - response.updated_at < TAKE_OVER_AFTER)


def _household_query(openid: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from storage.models.org import HouseholdBinding

    return select(Household).join(HouseholdBinding, HouseholdBinding.household_id == Household.id).where(
        HouseholdBinding.openid == openid)


def _already_done(ctx: "Context", response: SurveyResponse) -> str:
    zone = ctx.services.settings.timezone
    when = local(response.completed_at, zone, "%m月%d日").lstrip("0").replace("月0", "月")
    if response.openid == ctx.openid:
        return f"您{when}已经答完这份调查了，谢谢您！有问题可以直接问我。"
    tail = (response.openid or "")[-4:]
    return f"您家已经由另一个微信（尾号{tail}）在{when}答完了，不用再答。谢谢您！"


# -- one step ------------------------------------------------------------------------------------------------


def step(ctx: "Context") -> str:
    """The follower's message while a question is being asked."""
    response = surveys.response_for(ctx.session, ctx.openid, statuses=(IN_PROGRESS,))
    if response is None:
        ctx.conversation.enter(None)
        from handlers.policy_qa import ask

        return ask(ctx)  # the survey ended meanwhile (closed, or finished by another member)
    if _someone_else_answering(ctx, response):
        ctx.conversation.enter(None)
        return "您家里另一位正在答这份调查，答完就好，不用重复答。谢谢您！"
    if _meant_for_a_job(ctx, response):
        ctx.conversation.enter(None)
        from handlers.jobs import bare_number

        return bare_number(ctx)
    campaign = ctx.session.get(SurveyCampaign, response.campaign_id)
    assert campaign is not None
    questionnaire = campaign_questionnaire(campaign)
    if response.step is None:
        return begin(ctx)
    question = questionnaire.question(response.step)
    answers = surveys.answers_of(response)
    text = (ctx.text or "").strip()
    if response.updated_at is not None and utcnow() - response.updated_at > STALE_STEP:
        # Days later a bare "2" may mean anything: show where we were, and take the next reply as the answer.
        if not _save(ctx, response, pending=None, openid=ctx.openid):
            return RACED
        return _ask(ctx, response, questionnaire, question, "您上次的调查还没答完，我们接着答。\n")
    if response.pending:
        yes = read_yes_no(text)
        if yes is True:
            return _record(ctx, response, questionnaire, question, answers, tuple(json.loads(response.pending)))
        if yes is False:
            if not _save(ctx, response, pending=None, openid=ctx.openid):
                return RACED
            return _ask(ctx, response, questionnaire, question, "好的，请您再选一次。\n")
    reading = read_answer(question, text)
    if reading.outcome == "answer":
        asked = question_part(text) if question.kind != "text" else None
        policy = _policy_answer(ctx, asked) if asked else None
        # "认识，低保补贴什么时候发？": the answer is recorded and the question answered too.
        prefix = f"{policy}\n\n您的回答记下了。" if policy is not None else ""
        return _record(ctx, response, questionnaire, question, answers,
                       reading.text if question.kind == "text" else reading.codes,
                       lead="\n" if prefix else "好的。\n", prefix=prefix)
    if reading.outcome == "confirm":
        if not _save(ctx, response, pending=json.dumps(list(reading.codes)), openid=ctx.openid):
            return RACED
        ctx.conversation.enter(STATE)
        return reading.confirm_prompt(question)
    if reading.outcome == "skip" and question.optional:
        return _record(ctx, response, questionnaire, question, answers, None)
    if reading.outcome == "quit":
        if not _save(ctx, response, status=PAUSED, pending=None):
            return RACED
        ctx.conversation.enter(None)
        n = _number(questionnaire, question)
        return f"好的，先停在第{n}题。想接着答的时候，回复“开始”就行，过几天也可以。谢谢您！"
    return _unclear(ctx, response, questionnaire, question, answers, text)


def _unclear(ctx: "Context", response: SurveyResponse, questionnaire: Questionnaire, question: Question,
             answers: dict[str, Any], text: str) -> str:
    answer = _policy_answer(ctx, text)
    if answer is not None:
        n = _number(questionnaire, question)
        ctx.conversation.enter(STATE)
        return f"{answer}\n\n我们接着第{n}题：{question.prompt(helper=_helper_name(ctx, response))}"
    tries = response.tries + 1
    if tries <= MAX_RETRIES:
        if not _save(ctx, response, tries=tries, pending=None, openid=ctx.openid):
            return RACED
        return _ask(ctx, response, questionnaire, question, "不好意思，没太明白您的意思。\n")
    _ask_helper_to_call(ctx, response, questionnaire, question)
    return _record(ctx, response, questionnaire, question, answers, None,
                   lead="这一题我们先跳过，稍后请帮扶干部打电话问您。\n")


def _policy_answer(ctx: "Context", text: str) -> str | None:
    """A policy question asked mid-survey, answered from the handbook (None: not one it can answer)."""
    if len(text) < 4:
        return None
    try:
        answer = ctx.services.knowledge.answer(text, None)
    except Exception:  # noqa: BLE001 - the survey goes on without it
        log.warning("policy answer mid-survey failed", exc_info=True)
        return None
    return answer.text if answer.kind in ANSWERED_KINDS else None


def _ask_helper_to_call(ctx: "Context", response: SurveyResponse, questionnaire: Questionnaire,
                        question: Question) -> None:
    from bot.notices import notify

    household = ctx.session.get(Household, response.household_id)
    if household is None:
        return
    n = _number(questionnaire, question)
    place = household.village.name if household.village else ""
    markdown = (f"### 满意度调查：请打电话问一下\n> {place} {household.number} 户第{n}题没答上来"
                f"（{question.text.format_map({'helper': '帮扶责任人'})}）")
    notice = notify(ctx.session, ctx.services, markdown, household=household,
                    helper_text=f"您帮扶的 {household.number} 户在满意度调查第{n}题没答上来，请打电话问一下。")
    ctx.after_commit(lambda: notice.dispatch(ctx.services))


def _record(ctx: "Context", response: SurveyResponse, questionnaire: Questionnaire, question: Question,
            answers: dict[str, Any], value: Any, lead: str = "好的。\n", prefix: str = "") -> str:
    answers = {**answers, question.key: value}
    following = questionnaire.next_after(question.key, answers)
    if following is None:
        done = _finish(ctx, response, questionnaire, answers)
        return f"{prefix}\n{done}" if prefix and done != RACED else done
    if not _save(ctx, response, answers=answers, step=following.key, tries=0, pending=None, openid=ctx.openid):
        return RACED
    return prefix + _ask(ctx, response, questionnaire, following, lead)


def _finish(ctx: "Context", response: SurveyResponse, questionnaire: Questionnaire,
            answers: dict[str, Any]) -> str:
    if not _save(ctx, response, answers=answers, step=None, tries=0, pending=None, status=COMPLETED,
                 completed_at=utcnow(), openid=ctx.openid):
        return RACED
    ctx.conversation.enter(None)
    ctx.session.refresh(response)
    cases = surveys.raise_cases(ctx.session, response)
    notice = alert_cases(ctx.session, ctx.services, response, cases, questionnaire)
    if notice is not None:
        ctx.after_commit(lambda: notice.dispatch(ctx.services))
    thanks = "问卷答完了，谢谢您的支持！"
    if cases:
        thanks += "您反映的情况，我们会请工作人员尽快了解、处理。"
    return thanks + "有问题随时可以问我。"


__all__ = ["DECLINE_WORDS", "START_WORDS", "STATE", "begin", "decline", "probe", "step"]
