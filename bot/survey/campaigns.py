"""四问一查 on the WeChat side: starting a campaign, what its invitation and reminder say, the alerts a
finished response raises, and the message a household gets when its case is closed.

``storage.surveys`` holds the operations (one implementation for the chat, the
CLI and the console); this module adds what needs the services. Every message
to households goes through the push engine (``bot.push``): exactly once per
follower and purpose, the channel chosen when it is sent (a customer-service
message inside the 48-hour window, else the template
``SISONG_WECHAT_TEMPLATE_SURVEY``), and never in ``SISONG_QUIET_HOURS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.notices import Notice, helper_openid, notify, supervisor_groups
from bot.push import register
from bot.push_content import Content, parse_template_fields, template_data
from bot.survey.questionnaire import DEFAULT_PATH, Questionnaire, loads
from storage import pushes, surveys
from storage.clock import quiet_until
from storage.households import ensure_township
from storage.models.base import utcnow
from storage.models.org import Household
from storage.models.surveys import REASON_LABELS, SurveyCampaign, SurveyCase, SurveyResponse
from storage.privacy import mask_name
from storage.pushes import Targets
from storage.scope import EVERYTHING, Scope

if TYPE_CHECKING:
    from datetime import date

    from bot.services import Services
    from storage.accounts import Principal
    from storage.models.accounts import User

log = logging.getLogger(__name__)

KIND, REMIND_KIND, REPLY_KIND = surveys.KIND, surveys.REMIND_KIND, "survey_reply"
START_HINT = "回复“开始”参加"  # a template keyword line: ≤ 20 characters


def questionnaire_text(services: "Services") -> str:
    """The questionnaire a new campaign asks: SISONG_SURVEY_QUESTIONNAIRE, else the shipped one."""
    path = services.settings.survey_questionnaire
    return Path(path).read_text(encoding="utf-8") if path else DEFAULT_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=32)
def questionnaire_of(text: str) -> Questionnaire:
    """A campaign's own questionnaire (its snapshot), parsed once per process."""
    return loads(text)


def campaign_questionnaire(campaign: SurveyCampaign) -> Questionnaire:
    return questionnaire_of(campaign.questionnaire)


# -- what households read ------------------------------------------------------------------------------


def invitation_text(campaign: SurveyCampaign, questionnaire: Questionnaire) -> str:
    count = len([q for q in questionnaire.questions if q.ask_if is None])
    return (f"【{campaign.title}】\n您好！镇里想听听您对帮扶工作的看法，一共{count}个问题，一两分钟就好。\n"
            f"回复“开始”参加；中途回复“退出”可以先停下，以后再接着答。")


def reminder_text(campaign: SurveyCampaign) -> str:
    return (f"【{campaign.title}】\n您好！之前请您做的满意度调查还没有做完。"
            f"回复“开始”就可以接着答，一两分钟就好。谢谢您！")


def _template(services: "Services", facts: dict[str, str]) -> tuple[str, dict] | None:
    settings = services.settings
    if not settings.wechat_template_survey:
        return None
    return settings.wechat_template_survey, template_data(facts, parse_template_fields(
        settings.wechat_template_survey_fields))


@dataclass
class InvitationPurpose:
    """The invitation (kind "survey"): one per household, not at night."""

    kind: str = KIND
    quiet: bool = True

    def contents(self, services: "Services", session: Session, ref_ids: set[int]) -> dict[int, Content | None]:
        out: dict[int, Content | None] = {}
        for camp in session.scalars(select(SurveyCampaign).where(SurveyCampaign.id.in_(sorted(ref_ids)))):
            if camp.closed_at is not None:
                out[camp.id] = None
                continue
            questionnaire = campaign_questionnaire(camp)
            count = len([q for q in questionnaire.questions if q.ask_if is None])
            facts = {"title": camp.title, "count": f"共{count}题，一两分钟", "signup": START_HINT}
            out[camp.id] = Content(text=invitation_text(camp, questionnaire), template=_template(services, facts),
                                   facts=facts)
        return out

    def result_notice(self, services: "Services", session: Session, push_id: int) -> Notice | None:
        progress = pushes.progress(session, push_id)
        camp = session.get(SurveyCampaign, progress.ref_id) if progress is not None else None
        if progress is None or camp is None:
            return None
        lines = ["### 满意度调查邀请已发完", f"> 调查：{camp.title}（编号 {camp.id}）",
                 f"> 邀请 {progress.recipients} 户：已发出 {progress.sent}，失败 {progress.failed}，"
                 f"待确认 {progress.unconfirmed}，跳过 {progress.skipped}",
                 f"> 结果：`sisong survey stats {camp.id} --by village`"]
        return notify(session, services, "\n".join(lines))


@dataclass
class ReminderPurpose:
    """The one reminder (kind "survey_remind") to households that have not finished."""

    kind: str = REMIND_KIND
    quiet: bool = True

    def contents(self, services: "Services", session: Session, ref_ids: set[int]) -> dict[int, Content | None]:
        out: dict[int, Content | None] = {}
        for camp in session.scalars(select(SurveyCampaign).where(SurveyCampaign.id.in_(sorted(ref_ids)))):
            facts = {"title": f"{camp.title}（提醒）", "count": "还没做完，接着答就行", "signup": START_HINT}
            out[camp.id] = None if camp.closed_at is not None else Content(
                text=reminder_text(camp), template=_template(services, facts), facts=facts)
        return out

    def result_notice(self, services: "Services", session: Session, push_id: int) -> Notice | None:
        return None


@dataclass
class ReplyPurpose:
    """What the household is told when its case is closed (kind "survey_reply", ref = the case)."""

    kind: str = REPLY_KIND
    quiet: bool = True

    def contents(self, services: "Services", session: Session, ref_ids: set[int]) -> dict[int, Content | None]:
        out: dict[int, Content | None] = {}
        for row in session.scalars(select(SurveyCase).where(SurveyCase.id.in_(sorted(ref_ids)))):
            if not row.reply:
                out[row.id] = None
                continue
            facts = {"title": "您反映的问题有了回复", "count": row.reply, "signup": "有问题请回复0找人工"}
            out[row.id] = Content(text=f"您好！您在满意度调查里反映的问题，{row.reply}\n还有不满意的地方，"
                                       f"可以回复“0”找工作人员。", template=_template(services, facts), facts=facts)
        return out

    def result_notice(self, services: "Services", session: Session, push_id: int) -> Notice | None:
        return None


register(InvitationPurpose())
register(ReminderPurpose())
register(ReplyPurpose())


# -- starting ---------------------------------------------------------------------------------------------


def start_campaign(services: "Services", targets: Targets, *, title: str | None = None,
                   actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> surveys.CampaignCreated:
    """Create the campaign, its responses and invitations; tell the township group; wake the senders."""
    settings = services.settings
    text = questionnaire_text(services)
    questionnaire = questionnaire_of(text)
    with services.db.session() as session:
        township = ensure_township(session, settings.township)
        created = surveys.create_campaign(
            session, township.id, targets, title=title or questionnaire.title, questionnaire=text,
            questionnaire_key=questionnaire.key, fingerprint=questionnaire.fingerprint(),
            remind_after=int(settings.survey_remind_after), actor=actor, scope=scope)
        lines = ["### 开始满意度调查", f"> 调查：{created.campaign.title}（编号 {created.campaign.id}）",
                 f"> 范围：{targets.describe()}", f"> 邀请 {created.invited} 户" +
                 (f"，其中 {created.unreachable} 户联系不上" if created.unreachable else ""),
                 f"> 发起人：{created.campaign.actor}"]
        notice = notify(session, services, "\n".join(lines))
        session.flush()
        session.expunge(created.campaign)
        session.expunge(created.push.push)
    notice.dispatch(services)
    services.queue.push_kick()
    return created


def queue_reminders(services: "Services") -> int:
    """One reminder per household that has not finished, once the campaign's delay is over, never at
    night (rows are only written in the day; each is unique per follower, so never twice)."""
    settings = services.settings
    now = utcnow()
    if quiet_until(now, settings.quiet_hours, settings.timezone) is not None:
        return 0
    queued = 0
    with services.db.session() as session:
        for camp, found in surveys.due_for_reminder(session, now):
            created = pushes.create_push(session, kind=REMIND_KIND, ref_id=camp.id,
                                         targets=Targets(everyone=True), found=found, actor="系统提醒")
            surveys.mark_reminded(session, camp.id, [c.household_id for c in found])
            queued += created.recipients
    if queued:
        services.queue.push_kick()
        log.info("survey reminders queued", extra={"recipients": queued})
    return queued


# -- after a response ---------------------------------------------------------------------------------------


def _answer_lines(questionnaire: Questionnaire, answers: dict) -> list[str]:
    lines = []
    for question in questionnaire.questions:
        if question.key not in answers:
            continue
        value = answers[question.key]
        if value is None:
            shown = "（没有回答）"
        elif isinstance(value, str):
            shown = value
        else:
            shown = "、".join(question.option(code).label for code in value)
        lines.append(f"> {question.text.format_map({'helper': '帮扶责任人'})} **{shown}**")
    return lines


def alert_cases(session: Session, services: "Services", response: SurveyResponse, cases: list[SurveyCase],
                questionnaire: Questionnaire) -> Notice | None:
    """The supervisors' WeCom markdown alert for a response that raised cases (in the unit of work)."""
    if not cases:
        return None
    household = session.get(Household, response.household_id)
    if household is None:
        return None
    answers = surveys.answers_of(response)
    place = (household.village.name if household.village else "") + (
        household.hamlet.name if household.hamlet else "")
    helper = household.helper.name if household.helper else "（未指定）"
    reasons = "、".join(REASON_LABELS.get(c.reason, c.reason) for c in cases)
    lines = [f"### 满意度调查：{reasons}", f"> {place} {mask_name(household.head_name)}户（{household.number}）",
             f"> 帮扶责任人：{helper}", *_answer_lines(questionnaire, answers),
             f"> 线索编号：{'、'.join(str(c.id) for c in cases)}（`sisong survey cases`，分派后限期办结）"]
    targets = supervisor_groups(session, household, fallback_url=services.settings.wecom_robot_url)
    return notify(session, services, "\n".join(lines), household=household, targets=targets)


def assign_case(services: "Services", case_id: int, cadre_name: str, due_on: "date", *,
                actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> SurveyCase:
    """Hand a case to a cadre with a deadline (``storage.surveys.assign_case``), and tell them: the group
    covering the household hears of it, and the cadre privately if their WeChat is bound and reachable."""
    from storage.jobs import today
    from storage.models.org import Cadre

    zone = services.settings.timezone
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        row = surveys.assign_case(session, township.id, case_id, cadre_name, due_on, actor=actor, scope=scope,
                                  on=today(zone))
        household = session.get(Household, row.household_id)
        cadre = session.get(Cadre, row.assignee_id) if row.assignee_id else None
        reason = REASON_LABELS.get(row.reason, row.reason)
        place = household.village.name if household is not None and household.village else ""
        number = household.number if household is not None else ""
        due = f"{due_on.month}月{due_on.day}日"
        markdown = (f"### 满意度调查线索已分派\n> 线索 {row.id}：{place} {number} 户（{reason}）\n"
                    f"> 交给：{cadre.name if cadre else cadre_name}，{due}前办结\n"
                    f"> 办结：工作台“问题线索”，或 `sisong survey resolve {row.id} --action …`")
        notice = notify(session, services, markdown, household=household)
        openid = helper_openid(session, cadre)
        if openid:
            notice.helper_openid = openid
            notice.helper_text = (f"您有一条满意度调查的问题线索要处理：{place}{number}户（{reason}），"
                                  f"请在{due}前办结，办好后在工作台“问题线索”里写明做了什么。")
        session.flush()
        session.expunge(row)
    notice.dispatch(services)
    return row


def tell_household(services: "Services", case_id: int) -> int:
    """Queue the closed case's reply to the follower who answered (push engine: once, in the day)."""
    with services.db.session() as session:
        row = session.get(SurveyCase, case_id)
        response = session.get(SurveyResponse, row.response_id) if row is not None else None
        if row is None or not row.reply or response is None or not response.openid:
            return 0
        found = [pushes.Candidate(response.openid, response.household_id, response.village_id or 0, None)]
        created = pushes.create_push(session, kind=REPLY_KIND, ref_id=row.id, targets=Targets(everyone=True),
                                     found=found, actor=row.closed_by or "命令行")
    if created.recipients:
        services.queue.push_kick()
    return created.recipients


__all__ = ["InvitationPurpose", "KIND", "REMIND_KIND", "REPLY_KIND", "ReminderPurpose", "ReplyPurpose",
           "alert_cases", "assign_case", "campaign_questionnaire", "invitation_text", "queue_reminders", "questionnaire_of",
           "questionnaire_text", "start_campaign", "tell_household"]
