"""送岗位 on the WeChat side: what a push of a posting says, starting one, and who hears of what.

``storage.jobs`` holds the operations on postings and sign-ups; this module
adds what needs the services: the push purpose "job" (the customer-service
text and the template for outside the 48-hour window), starting a push (rows
+ the township group told + the senders kicked), and the notices and
messages that follow a sign-up. The words households read are short, kind
and concrete, for elderly readers on a phone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.notices import Notice, notify
from bot.push import register
from bot.push_content import Content, parse_template_fields, template_data
from knowledge.store.unanswered import window_open
from storage import jobs, pushes
from storage.households import ensure_township
from storage.models.jobs import FULL, OPEN, JobPosting, JobSignup
from storage.models.org import Household
from storage.privacy import mask_name
from storage.pushes import PushCreated, Targets
from storage.scope import EVERYTHING, Scope

if TYPE_CHECKING:
    from bot.services import Services
    from storage.accounts import Principal
    from storage.models.accounts import User

log = logging.getLogger(__name__)

SIGNUP_HINT = "回复1报名 回复岗位看更多"  # a template keyword line: ≤ 20 characters


def _date(posting: JobPosting) -> str:
    return f"{posting.deadline.month}月{posting.deadline.day}日" if posting.deadline else ""


def facts(posting: JobPosting) -> dict[str, str]:
    """The posting's facts by name, for the template's keyword lines (``SISONG_WECHAT_TEMPLATE_JOB_FIELDS``)."""
    return {
        "title": posting.title, "employer": posting.employer, "location": posting.location,
        "salary": posting.salary, "headcount": f"招{posting.headcount}人", "contact": posting.contact,
        "deadline": f"{_date(posting)}截止" if posting.deadline else "招满为止",
        "signup": SIGNUP_HINT, "requirements": posting.requirements or "无特别要求", "id": str(posting.id),
    }


def push_text(posting: JobPosting) -> str:
    """The customer-service message of a push (inside the 48-hour window): the whole posting, short."""
    lines = [f"【岗位推荐】{posting.title}", f"单位：{posting.employer}", f"地点：{posting.location}",
             f"工资：{posting.salary}",
             f"招{posting.headcount}人" + (f"，{_date(posting)}截止" if posting.deadline else "")]
    if posting.requirements:
        req = posting.requirements
        lines.append(f"要求：{req if len(req) <= 60 else req[:59] + '…'}")
    lines.append(f"想报名请回复：1（岗位编号 {posting.id}）")
    lines.append("回复“岗位”看更多岗位；不想再收岗位消息，回复“退订岗位”。")
    return "\n".join(lines)


def detail_text(view: jobs.PostingView, mine: str | None = None) -> str:
    """A posting in full, for "回复编号看详情"."""
    lines = [f"【岗位 {view.id}】{view.title}", f"单位：{view.employer}", f"地点：{view.location}",
             f"工资：{view.salary}"]
    if view.status == FULL:
        lines.append(f"人数：招{view.headcount}人，已招满，可以排队等空位")
    else:
        lines.append(f"人数：招{view.headcount}人，还有{view.places_left}个名额")
    if view.requirements:
        lines.append(f"要求：{view.requirements}")
    if view.deadline:
        lines.append(f"截止：{view.deadline.year}年{view.deadline.month}月{view.deadline.day}日")
    if mine == "signed":
        lines.append(f"您家已经报名了。联系：{view.contact}\n要取消，回复“取消报名 {view.id}”。")
    elif mine == "waiting":
        lines.append(f"您家正在排队。联系：{view.contact}\n要取消，回复“取消报名 {view.id}”。")
    else:
        lines.append(f"想报名，回复“报名 {view.id}”。")
    return "\n".join(lines)


def list_line(view: jobs.PostingView, mine: str | None = None) -> str:
    tail = ""
    if mine == "signed":
        tail = "（已报名）"
    elif mine == "waiting":
        tail = "（排队中）"
    elif view.status == FULL:
        tail = "（已满，可排队）"
    return f"{view.id}. {view.title}｜{view.location}｜{view.salary}{tail}"


# -- the push purpose ------------------------------------------------------------------------------


@dataclass
class JobPurpose:
    """Pushes of job postings (kind "job"): see ``bot.push.Purpose``."""

    kind: str = jobs.KIND

    def contents(self, services: "Services", session: Session, ref_ids: set[int]) -> dict[int, Content | None]:
        settings = services.settings
        on = jobs.today(settings.timezone)
        fields = parse_template_fields(settings.wechat_template_job_fields)
        out: dict[int, Content | None] = {}
        for posting in session.scalars(select(JobPosting).where(JobPosting.id.in_(list(ref_ids)))):
            if jobs.effective_status(posting, on) != OPEN:
                out[posting.id] = None  # closed, expired or full since the push: the rest is not sent
                continue
            template = None
            if settings.wechat_template_job:
                template = (settings.wechat_template_job, template_data(facts(posting), fields))
            out[posting.id] = Content(text=push_text(posting), template=template, facts=facts(posting))
        return out

    def result_notice(self, services: "Services", session: Session, push_id: int) -> Notice | None:
        progress = pushes.progress(session, push_id)
        if progress is None:
            return None
        posting = session.get(JobPosting, progress.ref_id)
        from storage.models.pushes import Push

        push = session.get(Push, push_id)
        targets = _targets_of(push.targets if push else "{}")
        lines = ["### 岗位推送完成",
                 f"> 岗位：{posting.title if posting else '?'}（编号 {progress.ref_id}，推送 {push_id}）",
                 f"> 范围：{targets.describe()}",
                 f"> 推送 {progress.recipients} 人：已发出 {progress.sent}，失败 {progress.failed}，"
                 f"待确认 {progress.unconfirmed}，跳过 {progress.skipped}",
                 f"> 统计：`sisong jobs report {progress.ref_id} --by village`"]
        return notify(session, services, "\n".join(lines))


register(JobPurpose())


def _targets_of(raw: str) -> Targets:
    import json

    try:
        data = json.loads(raw or "{}")
    except ValueError:
        data = {}
    return Targets(tuple(data.get("villages") or ()), tuple(data.get("areas") or ()), bool(data.get("all")),
                   bool(data.get("labour_only")))


# -- starting a push -------------------------------------------------------------------------------


def start_push(services: "Services", posting_id: int, targets: Targets, *,
               actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> tuple[JobPosting, PushCreated]:
    """Write the push and its delivery rows, tell the township group; nothing is sent yet.

    The caller sends: ``Pusher.drain(wait_for=…)`` in the foreground (the
    CLI), or :func:`send_in_background` (a queue task; the sweeper also
    kicks any process whose rows are due).
    """
    settings = services.settings
    with services.db.session() as session:
        township = ensure_township(session, settings.township)
        posting, created = jobs.create_job_push(session, township.id, posting_id, targets, actor=actor, scope=scope,
                                                zone=settings.timezone)
        skipped = "、".join(f"{pushes.SKIP_LABELS.get(k, k)} {n}" for k, n in created.skipped.items())
        lines = ["### 开始推送岗位", f"> 岗位：{posting.title}（编号 {posting.id}，推送 {created.push.id}）",
                 f"> 范围：{targets.describe()}",
                 f"> 对象 {created.recipients} 人" + (f"（跳过：{skipped}）" if skipped else ""),
                 f"> 推送人：{created.push.actor}"]
        notice = notify(session, services, "\n".join(lines))
        session.flush()
        session.expunge(posting)
        session.expunge(created.push)
    notice.dispatch(services)
    log.info("push created", extra={"push": created.push.id, "recipients": created.recipients})
    return posting, created


def send_in_background(services: "Services") -> None:
    """Kick the senders through the queue (another process's consumer, or a thread here)."""
    services.queue.push_kick()


# -- after a sign-up -------------------------------------------------------------------------------


def _place(household: Household) -> str:
    return household.village.name + (household.hamlet.name if household.hamlet is not None else "")


def announce_signup(session: Session, services: "Services", posting: JobPosting, household: Household,
                    result: jobs.SignupResult) -> Notice:
    """The village's group (masked) and the household's helper (privately, if reachable) hear of it."""
    signed = session.scalar(select(func.count()).select_from(JobSignup).where(
        JobSignup.posting_id == posting.id, JobSignup.status == "signed")) or 0
    state = (f"已报名（{signed}/{posting.headcount}）" if result.status == jobs.NEW_SIGNED
             else f"排队第 {result.position} 位（已满 {posting.headcount} 人）")
    helper = household.helper
    who = f"> 住户：{mask_name(household.head_name)}（户编号 {household.number}）"
    if helper is not None:
        who += f"（帮扶责任人：{helper.name}" + (f" <@{helper.wecom_userid}>）" if helper.wecom_userid else "）")
    markdown = "\n".join([
        "### 有住户报名岗位", f"> 岗位：{posting.title}（编号 {posting.id}，{posting.employer}）",
        f"> 村组：{_place(household)}", who, f"> 状态：{state}",
        f"> 名单：`sisong jobs signups {posting.id}`"])
    helper_text = (f"【四送助手】您帮扶的户{household.head_name}（户编号 {household.number}，{_place(household)}）"
                   f"报名了岗位：{posting.title}（编号 {posting.id}，{posting.employer}），{state}。"
                   + (f"户里电话：{household.phone}。" if household.phone else ""))
    return notify(session, services, markdown, household=household, helper_text=helper_text)


def announce_promotion(session: Session, services: "Services", posting: JobPosting, promoted: JobSignup) -> list:
    """The first household waiting got the freed place: tell them (if WeChat allows) and their group.

    Returns the effects to run after the commit.
    """
    household = session.get(Household, promoted.household_id)
    effects: list = []
    if household is None:
        return effects
    markdown = "\n".join([
        "### 排队的住户补上了岗位名额", f"> 岗位：{posting.title}（编号 {posting.id}）",
        f"> 村组：{_place(household)}", f"> 住户：{mask_name(household.head_name)}（户编号 {household.number}）",
        "> 有人取消报名，排在第一位的这户补上了。如联系不上这户，请帮忙转告。"])
    notice = notify(session, services, markdown, household=household)
    effects.append(lambda: notice.dispatch(services))
    openid = promoted.openid
    if openid and window_open(session, openid):
        text = (f"好消息：您排队的岗位“{posting.title}”（编号 {posting.id}）有空位了，已经为您报上名。\n"
                f"请尽快联系：{posting.contact}")
        effects.append(lambda: services.queue.send_text(openid, text))
    return effects


__all__ = ["EVERYTHING", "JobPurpose", "announce_promotion", "announce_signup", "detail_text", "facts",
           "list_line", "push_text", "send_in_background", "start_push"]
