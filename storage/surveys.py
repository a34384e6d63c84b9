"""四问一查 on the database side: campaigns, each household's response (the survey's durable state),
dispositions, the township's figures, cases for the supervisors, and visit checks.

One implementation per operation: the chat (``handlers/survey.py`` through
``bot.survey.conversation``), the CLI (``bot/survey_cli.py``) and the console
call these functions, in the caller's unit of work. What needs the services
(pushing invitations, WeCom alerts, messages to a household) is ``bot.survey``.

Why the response row is the conversation's state: a survey runs over days
(a household pauses with "退出" and comes back), its answers are the record the
township reports upward, and two quick messages must not both record against
one question. So the step, the reading waiting for confirmation and the
answers live in one row, written at each step with ``version`` checked and
bumped (:func:`save_step`), not in a cache with a TTL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, event, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.accounts import actor_name, audit
from storage.models.base import utcnow
from storage.models.org import Area, Cadre, Household, HouseholdBinding, Team, Village
from storage.models.pushes import DELIVERED, IN_FLIGHT, SENT, UNCONFIRMED, PushDelivery
from storage.models.surveys import (
    CASE_ASSIGNED,
    CASE_CLOSED,
    CASE_OPEN,
    CHECKS,
    COMPLETED,
    DECLINED,
    DISSATISFIED,
    DONE,
    IN_PROGRESS,
    INVITED,
    NO_REPLY,
    PARTIAL,
    PAUSED,
    REFUSED,
    UNKNOWN_HELPER,
    UNREACHABLE,
    SurveyCampaign,
    SurveyCase,
    SurveyResponse,
    VisitCheck,
)
from storage.pushes import Candidate, PushCreated, Targets, candidates, create_push, resolve_villages
from storage.scope import EVERYTHING, OutOfScope, Scope

if TYPE_CHECKING:
    from storage.accounts import Principal
    from storage.models.accounts import User

KIND = "survey"  # the invitation's push kind
REMIND_KIND = "survey_remind"  # the one reminder's push kind
STATS_KEYS = ("invited", "responses", "know_team", "know_helper", "satisfied", "basically_satisfied",
              "dissatisfied", "response_rate", "satisfaction_rate")
GROUPINGS = ("village", "area", "team", "helper")


class SurveyError(ValueError):
    """A campaign, case or visit that cannot be done as asked; the message is Chinese, for a cadre."""


# -- campaigns -------------------------------------------------------------------------------------


@dataclass
class CampaignCreated:
    campaign: SurveyCampaign
    push: PushCreated
    invited: int  # households invited: every bound household targeted (the figures' "invited")
    unreachable: int  # of those, households with no follower who can be reached (无法送达 from the start)


def one_per_household(found: Sequence[Candidate]) -> tuple[list[Candidate], set[int]]:
    """The first reachable follower of each household (a survey is the household's, not each member's),
    and the households none of whose followers can be reached."""
    chosen: dict[int, Candidate] = {}
    seen: set[int] = set()
    for candidate in found:
        seen.add(candidate.household_id)
        if candidate.reason is None and candidate.household_id not in chosen:
            chosen[candidate.household_id] = candidate
    return list(chosen.values()), seen - set(chosen)


def create_campaign(session: Session, township_id: int, targets: Targets, *, title: str, questionnaire: str,
                    questionnaire_key: str, fingerprint: str, remind_after: int,
                    actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> CampaignCreated:
    """A campaign, a response row per targeted household, and the invitation push (one row per household).

    Every bound household of the targets gets a response row, reachable or
    not, so "无法送达" is counted too; the invitation goes to one follower of
    each (the first bound who still follows the account).
    """
    scope.check_writable()
    villages = resolve_villages(session, township_id, targets)
    if villages is None and not scope.everything:
        raise OutOfScope("只有镇管理员可以对全镇发起调查。")
    for village in villages or []:
        if not scope.covers_village(village.id):
            raise OutOfScope(f"{village.name}不在您负责的范围内。")
    campaign = SurveyCampaign(township_id=township_id, title=title[:64], questionnaire=questionnaire,
                              questionnaire_key=questionnaire_key[:32], fingerprint=fingerprint,
                              targets=json.dumps(targets.to_json(), ensure_ascii=False), actor=actor_name(actor),
                              user_id=getattr(actor, "id", None), remind_after=remind_after)
    session.add(campaign)
    session.flush()
    forget_open_cache()
    event.listen(session, "after_commit", lambda _session: forget_open_cache(), once=True)
    found = candidates(session, township_id, [v.id for v in villages] if villages is not None else None,
                       kind=KIND, ref_id=campaign.id, labour_only=False)
    chosen, unreachable = one_per_household(found)
    if not found:
        raise SurveyError("这个范围里还没有绑定微信的农户，没有可以邀请的。")
    created = create_push(session, kind=KIND, ref_id=campaign.id, targets=targets, found=chosen,
                          actor=campaign.actor, user_id=campaign.user_id)
    campaign.push_id = created.push.id
    households = {h.id: h for h in session.scalars(
        select(Household).where(Household.id.in_(sorted({c.household_id for c in found}))))}
    now = utcnow()
    session.execute(SurveyResponse.__table__.insert(), [
        {"campaign_id": campaign.id, "household_id": h.id, "village_id": h.village_id, "helper_id": h.helper_id,
         "team_id": h.team_id, "status": INVITED, "tries": 0, "version": 0, "answers": "{}", "invited_at": now}
        for h in households.values()])
    audit(session, actor, "survey_start", f"调查 {campaign.id}",
           f"{targets.describe()}：邀请 {len(households)} 户，其中 {len(unreachable)} 户无法送达")
    return CampaignCreated(campaign, created, len(households), len(unreachable))


def campaign(session: Session, township_id: int, campaign_id: int) -> SurveyCampaign:
    found = session.get(SurveyCampaign, campaign_id)
    if found is None or found.township_id != township_id:
        raise SurveyError(f"没有编号为 {campaign_id} 的调查。用 sisong survey list 查看。")
    return found


def campaigns(session: Session, township_id: int) -> list[SurveyCampaign]:
    return list(session.scalars(select(SurveyCampaign).where(SurveyCampaign.township_id == township_id)
                                .order_by(SurveyCampaign.id.desc())))


def close_campaign(session: Session, township_id: int, campaign_id: int, *,
                   actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> SurveyCampaign:
    """Stop a campaign: households can no longer answer it; reminders stop; results stay."""
    scope.check_writable()
    if not scope.everything:
        raise OutOfScope("只有镇管理员可以结束调查。")
    found = campaign(session, township_id, campaign_id)
    if found.closed_at is None:
        found.closed_at = utcnow()
        audit(session, actor, "survey_close", f"调查 {campaign_id}")
    return found


# -- a household's response: the conversation's durable state ------------------------------------


def response_for(session: Session, openid: str, *, statuses: Iterable[str] = (INVITED, IN_PROGRESS, PAUSED),
                 campaign_id: int | None = None) -> SurveyResponse | None:
    """The household's response (of the newest open campaign, or ``campaign_id``) that this follower may
    work on: one that is not finished, or (``statuses`` including COMPLETED) the finished one."""
    query = (select(SurveyResponse)
             .join(HouseholdBinding, HouseholdBinding.household_id == SurveyResponse.household_id)
             .join(SurveyCampaign, SurveyCampaign.id == SurveyResponse.campaign_id)
             .where(HouseholdBinding.openid == openid, SurveyCampaign.closed_at.is_(None),
                    SurveyResponse.status.in_(list(statuses)))
             .order_by(SurveyResponse.campaign_id.desc()).limit(1))
    if campaign_id is not None:
        query = query.where(SurveyResponse.campaign_id == campaign_id)
    return session.scalar(query)


# Whether any campaign is open, per process: the message path asks before every short text.
_open_cache: tuple[float, bool] | None = None
OPEN_CACHE_SECONDS = 2.0


def any_open(session: Session) -> bool:
    """Whether a campaign is open (not closed), remembered ``OPEN_CACHE_SECONDS`` in this process.

    The survey's durable probe runs for every short text a follower sends; with no campaign running
    (most of the year) this spares each of them a database read. A campaign opened in another
    process is seen within two seconds, long before its first invitation can be answered; one
    opened in this process is seen at once (:func:`create_campaign` forgets the cache).
    """
    global _open_cache
    now = time.monotonic()
    cached = _open_cache
    if cached is not None and now - cached[0] < OPEN_CACHE_SECONDS:
        return cached[1]
    found = session.scalar(select(SurveyCampaign.id).where(SurveyCampaign.closed_at.is_(None)).limit(1)) is not None
    _open_cache = (now, found)
    return found


def forget_open_cache() -> None:
    global _open_cache
    _open_cache = None


def in_progress(session: Session, openid: str) -> int | None:
    """The id of the response this follower's household is answering now (one indexed read), if any."""
    return session.scalar(
        select(SurveyResponse.id)
        .join(HouseholdBinding, HouseholdBinding.household_id == SurveyResponse.household_id)
        .join(SurveyCampaign, SurveyCampaign.id == SurveyResponse.campaign_id)
        .where(HouseholdBinding.openid == openid, SurveyResponse.status == IN_PROGRESS,
               SurveyCampaign.closed_at.is_(None)).limit(1))


def latest_finished(session: Session, openid: str) -> SurveyResponse | None:
    """The household's newest completed response of an open campaign (to tell a second member it is done)."""
    return response_for(session, openid, statuses=(COMPLETED,))


def answers_of(response: SurveyResponse) -> dict[str, Any]:
    try:
        data = json.loads(response.answers or "{}")
    except ValueError:
        data = {}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}


class StaleStep(RuntimeError):
    """Another message of the same household wrote this response first (its version moved on)."""


FIGURE_KEYS = ("know_team", "know_helper", "satisfaction")


def save_step(session: Session, response: SurveyResponse, *, answers: dict[str, Any] | None = None,
              **values: Any) -> None:
    """Write the response's next state if nobody else did since it was read (``version`` checked, bumped).

    ``answers`` replaces the JSON and the figure columns derived from it.
    Raises :class:`StaleStep` when the version moved: the caller's reply must
    not claim an answer was recorded.
    """
    row = dict(values)
    if answers is not None:
        row["answers"] = json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in answers.items()},
                                    ensure_ascii=False)
        for key in FIGURE_KEYS:
            codes = answers.get(key)
            row[key] = codes[0] if isinstance(codes, tuple) and len(codes) == 1 else None
    row["updated_at"] = utcnow()
    row["version"] = response.version + 1
    done = session.execute(
        update(SurveyResponse).where(SurveyResponse.id == response.id, SurveyResponse.version == response.version)
        .values(**row).execution_options(synchronize_session=False)).rowcount
    if not done:
        raise StaleStep(response.id)
    session.expire(response)


# -- dispositions and the figures -------------------------------------------------------------------


def _reached(campaign_id: int) -> Any:
    """Whether the household's invitation reached WeChat (sent, delivered) or is still on its way."""
    return exists().where(PushDelivery.kind == KIND, PushDelivery.ref_id == campaign_id,
                          PushDelivery.household_id == SurveyResponse.household_id,
                          PushDelivery.status.in_((SENT, DELIVERED, UNCONFIRMED, *IN_FLIGHT)))


def disposition_column(campaign_id: int) -> Any:
    """已完成 / 部分完成 / 已拒绝 / 未回复 / 无法送达, as a SQL expression on SurveyResponse."""
    return case(
        (SurveyResponse.status == COMPLETED, literal(DONE)),
        (SurveyResponse.status == DECLINED, literal(REFUSED)),
        (SurveyResponse.answers != "{}", literal(PARTIAL)),
        (SurveyResponse.status.in_((IN_PROGRESS, PAUSED)), literal(NO_REPLY)),
        (_reached(campaign_id), literal(NO_REPLY)),
        else_=literal(UNREACHABLE),
    )


def dispositions(session: Session, campaign_id: int) -> dict[str, int]:
    each = (select(disposition_column(campaign_id).label("disposition"))
            .where(SurveyResponse.campaign_id == campaign_id).subquery())
    rows = session.execute(select(each.c.disposition, func.count()).group_by(each.c.disposition)).all()
    return {key: int(n) for key, n in rows}


def _group_column(by: str | None) -> tuple[Any, list[Any]]:
    """The label column for ``--by`` and the joins it needs."""
    if by is None:
        return literal("全部"), []
    if by == "village":
        return func.coalesce(Village.name, "（未知村）"), [(Village, Village.id == SurveyResponse.village_id)]
    if by == "area":
        return func.coalesce(Area.name, "（未分片区）"), [(Village, Village.id == SurveyResponse.village_id),
                                                         (Area, Area.id == Village.area_id)]
    if by == "team":
        return func.coalesce(Team.name, "（未分队）"), [(Team, Team.id == SurveyResponse.team_id)]
    if by == "helper":
        return func.coalesce(Cadre.name, "（未指定）"), [(Cadre, Cadre.id == SurveyResponse.helper_id)]
    raise SurveyError(f"--by 只能是 {'、'.join(GROUPINGS)}。")


def stats(session: Session, campaign_id: int, by: str | None = None, *,
          scope: Scope = EVERYTHING) -> dict[str, dict[str, float | int]]:
    """The township's figures, per group (one GROUP BY; fast over 100,000 responses).

    responses = completed; know_team / know_helper = "认识" counts; satisfied,
    basically_satisfied, dissatisfied = counts; response_rate = responses /
    invited; satisfaction_rate = (satisfied + basically_satisfied) / responses.
    Rates are fractions rounded to 4 places (0 when the divisor is 0).
    """
    label, joins = _group_column(by)
    done = SurveyResponse.status == COMPLETED

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    query = select(label, func.count(), count(done), count(and_(done, SurveyResponse.know_team == 1)),
                   count(and_(done, SurveyResponse.know_helper == 1)),
                   count(and_(done, SurveyResponse.satisfaction == 1)),
                   count(and_(done, SurveyResponse.satisfaction == 2)),
                   count(and_(done, SurveyResponse.satisfaction == 3)),
                   count(and_(SurveyResponse.status != COMPLETED, SurveyResponse.answers != "{}")))
    query = query.select_from(SurveyResponse)
    for table, on in joins:
        query = query.outerjoin(table, on)
    query = query.where(SurveyResponse.campaign_id == campaign_id)
    if not scope.everything:
        query = query.join(Household, Household.id == SurveyResponse.household_id).where(scope.households())
    query = query.group_by(label).order_by(label)
    out: dict[str, dict[str, float | int]] = {}
    for name, invited, responses, team, helper, satisfied, basic, dissatisfied, partial in session.execute(query):
        out[str(name)] = figures(int(invited), int(responses or 0), int(team or 0), int(helper or 0),
                                 int(satisfied or 0), int(basic or 0), int(dissatisfied or 0), int(partial or 0))
    return out


def figures(invited: int, responses: int, know_team: int, know_helper: int, satisfied: int, basic: int,
            dissatisfied: int, partial: int = 0) -> dict[str, float | int]:
    return {"invited": invited, "responses": responses, "know_team": know_team, "know_helper": know_helper,
            "satisfied": satisfied, "basically_satisfied": basic, "dissatisfied": dissatisfied,
            "response_rate": round(responses / invited, 4) if invited else 0.0,
            "satisfaction_rate": round((satisfied + basic) / responses, 4) if responses else 0.0,
            "partial": partial}


def public(figures: dict[str, float | int]) -> dict[str, float | int]:
    """The figures under exactly the contract's keys (``stats --json``, the API)."""
    return {key: figures[key] for key in STATS_KEYS}


def total(groups: dict[str, dict[str, float | int]]) -> dict[str, float | int]:
    sums = {key: sum(int(g[key]) for g in groups.values()) for key in
            ("invited", "responses", "know_team", "know_helper", "satisfied", "basically_satisfied",
             "dissatisfied", "partial")}
    return figures(sums["invited"], sums["responses"], sums["know_team"], sums["know_helper"], sums["satisfied"],
                   sums["basically_satisfied"], sums["dissatisfied"], sums["partial"])


@dataclass(frozen=True)
class ResponseRow:
    """One invited household, for the export and the console (cadres see names; masked in the export)."""

    household_id: int
    number: str
    head_name: str
    village: str
    hamlet: str
    helper: str
    disposition: str
    answers: dict[str, Any]
    completed_at: datetime | None
    updated_at: datetime | None


def response_rows(session: Session, campaign_id: int, *, scope: Scope = EVERYTHING) -> list[ResponseRow]:
    from storage.models.org import Hamlet

    query = (select(SurveyResponse, Household.number, Household.head_name, Village.name, Hamlet.name, Cadre.name,
                    disposition_column(campaign_id))
             .join(Household, Household.id == SurveyResponse.household_id)
             .outerjoin(Village, Village.id == Household.village_id)
             .outerjoin(Hamlet, Hamlet.id == Household.hamlet_id)
             .outerjoin(Cadre, Cadre.id == SurveyResponse.helper_id)
             .where(SurveyResponse.campaign_id == campaign_id, scope.households())
             .order_by(Village.name, Household.number))
    return [ResponseRow(r.household_id, number, head, village or "", hamlet or "", helper or "", disposition,
                        answers_of(r), r.completed_at, r.updated_at)
            for r, number, head, village, hamlet, helper, disposition in session.execute(query)]


# -- cases ----------------------------------------------------------------------------------------------


def raise_cases(session: Session, response: SurveyResponse) -> list[SurveyCase]:
    """The cases a finished response raises (不满意, 不认识 the helper), once each (unique per reason)."""
    reasons = []
    if response.satisfaction == 3:
        reasons.append(DISSATISFIED)
    if response.know_helper == 2:
        reasons.append(UNKNOWN_HELPER)
    made = []
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for reason in reasons:
        inserted = session.execute(
            dialect.insert(SurveyCase).values(campaign_id=response.campaign_id, response_id=response.id,
                                              household_id=response.household_id, reason=reason, status=CASE_OPEN,
                                              action="", created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["response_id", "reason"]).returning(SurveyCase.id)).scalar()
        if inserted is not None:
            made.append(session.get(SurveyCase, inserted))
    return made


@dataclass(frozen=True)
class CaseView:
    id: int
    campaign_id: int
    household_id: int
    number: str
    head_name: str
    village: str
    helper: str
    reason: str
    status: str
    assignee: str | None
    due_on: date | None
    overdue: bool
    action: str
    created_at: datetime
    closed_at: datetime | None
    comment: str | None = None

    def to_json(self, zone: str = "Asia/Shanghai") -> dict[str, object]:
        from storage.clock import iso_local
        from storage.models.surveys import CASE_LABELS, REASON_LABELS
        from storage.privacy import mask_name

        return {"id": self.id, "campaign": self.campaign_id, "number": self.number,
                "head": mask_name(self.head_name), "village": self.village, "helper": self.helper,
                "reason": self.reason, "reason_label": REASON_LABELS.get(self.reason, self.reason),
                "status": self.status, "status_label": CASE_LABELS.get(self.status, self.status),
                "assignee": self.assignee, "due_on": self.due_on.isoformat() if self.due_on else None,
                "overdue": self.overdue, "action": self.action, "comment": self.comment,
                "created_at": iso_local(self.created_at, zone), "closed_at": iso_local(self.closed_at, zone)}


def list_cases(session: Session, township_id: int, *, status: str | None = None, overdue: bool = False,
               on: date | None = None, scope: Scope = EVERYTHING, case_id: int | None = None) -> list[CaseView]:
    """Cases, open ones first, overdue first among them (``on``: today on the township's clock)."""
    on = on or date.today()
    assignee = Cadre.__table__.alias("assignee")
    helper = Cadre.__table__.alias("helper")
    query = (select(SurveyCase, Household.number, Household.head_name, Village.name, helper.c.name,
                    assignee.c.name, SurveyResponse.answers)
             .join(Household, Household.id == SurveyCase.household_id)
             .join(SurveyResponse, SurveyResponse.id == SurveyCase.response_id)
             .outerjoin(Village, Village.id == Household.village_id)
             .outerjoin(helper, helper.c.id == Household.helper_id)
             .outerjoin(assignee, assignee.c.id == SurveyCase.assignee_id)
             .where(Household.township_id == township_id, scope.households()))
    if case_id is not None:
        query = query.where(SurveyCase.id == case_id)
    if status is not None:
        query = query.where(SurveyCase.status == status)
    elif overdue:
        query = query.where(SurveyCase.status != CASE_CLOSED)
    out = []
    for row, number, head, village, helper_name, assignee_name, answers in session.execute(query):
        late = row.status != CASE_CLOSED and row.due_on is not None and row.due_on < on
        if overdue and not late:
            continue
        comment = None
        try:
            comment = json.loads(answers or "{}").get("comment")
        except ValueError:
            pass
        out.append(CaseView(row.id, row.campaign_id, row.household_id, number, head, village or "",
                            helper_name or "", row.reason, row.status, assignee_name, row.due_on, late, row.action,
                            row.created_at, row.closed_at, comment if isinstance(comment, str) else None))
    order = {CASE_OPEN: 0, CASE_ASSIGNED: 0, CASE_CLOSED: 1}
    out.sort(key=lambda c: (order.get(c.status, 0), not c.overdue, c.due_on or date.max, c.id))
    return out


def _case(session: Session, township_id: int, case_id: int, scope: Scope) -> SurveyCase:
    row = session.get(SurveyCase, case_id)
    household = session.get(Household, row.household_id) if row is not None else None
    if row is None or household is None or household.township_id != township_id:
        raise SurveyError(f"没有编号为 {case_id} 的问题线索。用 sisong survey cases 查看。")
    scope.check_household(household)
    return row


def find_cadre(session: Session, township_id: int, name: str) -> Cadre:
    found = list(session.scalars(select(Cadre).where(Cadre.township_id == township_id, Cadre.name == name.strip())))
    if not found:
        raise SurveyError(f"没有叫“{name}”的干部。请先用 sisong org import 导入干部名单。")
    if len(found) > 1:
        raise SurveyError(f"有 {len(found)} 位干部叫“{name}”，请在工作台上按电话选择。")
    return found[0]


def assign_case(session: Session, township_id: int, case_id: int, cadre_name: str, due_on: date, *,
                actor: "User | Principal | None" = None, scope: Scope = EVERYTHING,
                on: date | None = None) -> SurveyCase:
    """A supervisor (督查, or an account that may write) hands the case to a cadre with a deadline
    (``on``: today on the township's clock; a deadline before it is refused)."""
    scope.check_assigns_cases()
    if on is not None and due_on < on:
        raise SurveyError("办结期限不能早于今天。")
    row = _case(session, township_id, case_id, scope)
    if row.status == CASE_CLOSED:
        raise SurveyError(f"问题线索 {case_id} 已经办结了。")
    cadre = find_cadre(session, township_id, cadre_name)
    row.assignee_id, row.due_on, row.status, row.assigned_at = cadre.id, due_on, CASE_ASSIGNED, utcnow()
    audit(session, actor, "survey_case_assign", f"线索 {case_id}", f"交给 {cadre.name}，{due_on.isoformat()} 前办结")
    return row


def close_case(session: Session, township_id: int, case_id: int, action: str, *, reply: str | None = None,
               actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> SurveyCase:
    """The cadre records what was done; ``reply`` is what the household is told (sent by ``bot.survey``)."""
    scope.check_writable()
    action = action.strip()
    if not action:
        raise SurveyError("请写明做了什么（办理情况），再办结。")
    row = _case(session, township_id, case_id, scope)
    if row.status == CASE_CLOSED:
        raise SurveyError(f"问题线索 {case_id} 已经办结了。")
    row.status, row.action, row.closed_at, row.closed_by = CASE_CLOSED, action[:2000], utcnow(), actor_name(actor)
    row.reply = (reply or "").strip()[:300] or None
    audit(session, actor, "survey_case_close", f"线索 {case_id}", action[:200])
    return row


# -- visits (一查) ---------------------------------------------------------------------------------------


@dataclass
class VisitInput:
    number: str  # 户编号
    cadre: str
    visited_on: date
    checks: dict[str, bool] = field(default_factory=dict)  # CHECKS keys → 是否达标
    notes: str = ""


def add_visit(session: Session, township_id: int, data: VisitInput, *, actor: "User | Principal | None" = None,
              scope: Scope = EVERYTHING) -> VisitCheck:
    """A cadre's visit with the 两不愁三保障 checklist; every item must be answered."""
    scope.check_writable()
    household = session.scalar(select(Household).where(Household.township_id == township_id,
                                                       Household.number == data.number.strip()))
    if household is None:
        raise SurveyError(f"没有户编号为“{data.number}”的农户。")
    scope.check_household(household)
    missing = [label for key, label in CHECKS if key not in data.checks]
    if missing:
        raise SurveyError(f"请填写：{'、'.join(missing)}（达标 / 不达标）。")
    if data.visited_on > date.today() + timedelta(days=1):
        raise SurveyError("走访日期不能在将来。")
    cadre = session.scalar(select(Cadre).where(Cadre.township_id == township_id, Cadre.name == data.cadre.strip()))
    visit = VisitCheck(household_id=household.id, cadre_id=cadre.id if cadre else None,
                       cadre_name=data.cadre.strip()[:32] or actor_name(actor)[:32], visited_on=data.visited_on,
                       notes=data.notes.strip()[:2000], created_by=actor_name(actor),
                       **{key: bool(data.checks[key]) for key, _ in CHECKS})
    session.add(visit)
    session.flush()
    failing = [label for key, label in CHECKS if not data.checks[key]]
    audit(session, actor, "survey_visit", f"户 {household.number}",
           f"{data.visited_on.isoformat()} {visit.cadre_name}" + (f"；不达标：{'、'.join(failing)}" if failing else ""))
    return visit


def visits(session: Session, township_id: int, *, village_ids: Sequence[int] | None = None,
           scope: Scope = EVERYTHING, since: date | None = None) -> list[tuple[VisitCheck, Household]]:
    query = (select(VisitCheck, Household).join(Household, Household.id == VisitCheck.household_id)
             .where(Household.township_id == township_id, scope.households())
             .order_by(VisitCheck.visited_on.desc(), VisitCheck.id.desc()))
    if village_ids is not None:
        query = query.where(Household.village_id.in_(list(village_ids)))
    if since is not None:
        query = query.where(VisitCheck.visited_on >= since)
    return [(v, h) for v, h in session.execute(query)]


# -- reminders ----------------------------------------------------------------------------------------


def due_for_reminder(session: Session, now: datetime | None = None) -> list[tuple[SurveyCampaign, list[Candidate]]]:
    """Per open campaign past its delay, the households not finished and never reminded, each with the
    follower their invitation went to (who can still be reached)."""
    now = now or utcnow()
    out = []
    for camp in session.scalars(select(SurveyCampaign).where(SurveyCampaign.closed_at.is_(None))):
        if camp.created_at + timedelta(seconds=camp.remind_after) > now:
            continue
        rows = session.execute(
            select(SurveyResponse.household_id, SurveyResponse.village_id, PushDelivery.openid)
            .join(PushDelivery, and_(PushDelivery.kind == KIND, PushDelivery.ref_id == camp.id,
                                     PushDelivery.household_id == SurveyResponse.household_id))
            .where(SurveyResponse.campaign_id == camp.id, SurveyResponse.reminded_at.is_(None),
                   SurveyResponse.status.in_((INVITED, IN_PROGRESS, PAUSED)),
                   PushDelivery.status.in_((SENT, DELIVERED)))).all()
        found = [Candidate(openid, household_id, village_id or 0, None) for household_id, village_id, openid in rows]
        if found:
            out.append((camp, found))
    return out


def mark_reminded(session: Session, campaign_id: int, household_ids: Sequence[int]) -> None:
    if household_ids:
        session.execute(update(SurveyResponse).where(SurveyResponse.campaign_id == campaign_id,
                                                     SurveyResponse.household_id.in_(list(household_ids)))
                        .values(reminded_at=utcnow()).execution_options(synchronize_session=False))


__all__ = [
    "CampaignCreated", "CaseView", "GROUPINGS", "KIND", "REMIND_KIND", "ResponseRow", "STATS_KEYS", "StaleStep",
    "SurveyError", "VisitInput", "add_visit", "answers_of", "assign_case", "campaign", "campaigns",
    "close_campaign", "close_case", "create_campaign", "disposition_column", "dispositions", "due_for_reminder",
    "figures", "in_progress", "public", "latest_finished", "list_cases", "mark_reminded", "one_per_household",
    "raise_cases", "response_for", "response_rows", "save_step", "stats", "total", "visits",
]
