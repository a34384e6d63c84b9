"""满意度 (四问一查, issue 10): campaigns with live progress, figures and charts, the Excel download,
问题线索 (assign, resolve) and the 走访 form, as pages and /api/v1.

Every route is thin: it calls what ``sisong survey`` calls (``storage.surveys``
for campaigns, figures, cases and visits; ``bot.survey.campaigns`` to start a
campaign and to tell a household its case was closed; ``bot.survey.export``
for the workbook), passing the account's ``Scope``. Those functions refuse
what the account may not do (``OutOfScope`` / ``ReadOnly`` become 403 in
``bot.console.errors``): a village cadre starting a campaign for another
village, or a 督查 assigning a case, is refused below the route.

Figures are the caller's: a village cadre's stats count their villages, a
帮扶责任人's only their own households (``storage.surveys.stats(scope=…)``).
Invitations are sent by the queue's consumers, never in the request; the
pages poll ``GET /api/v1/surveys`` (``static/surveys.js``) for the progress.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.background import BackgroundTask

from bot.console.deps import ApiCsrf, CaseAssigner, Csrf, CurrentUser, PageUser, ServicesDep, Writer
from bot.console.jobs import target_choices
from bot.console.templating import render
from storage import surveys as service
from storage.accounts import Principal
from storage.clock import iso_local
from storage.households import ensure_township
from storage.import_rows import nfkc
from storage.jobs import today
from storage.models.org import Cadre, Household
from storage.models.surveys import CASE_CLOSED, CASE_LABELS, CHECKS, DISPOSITION_LABELS, SurveyCase
from storage.pushes import Targets, TargetError

if TYPE_CHECKING:
    from bot.services import Services

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["满意度"])

MAX_ID = 2_147_483_647  # 32-bit columns: a larger number is simply not found
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="调查编号")]
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="问题线索编号")]
By = Literal["village", "area", "team", "helper"]
BY_LABELS = {"village": "村", "area": "片区", "team": "先锋队", "helper": "帮扶责任人"}
NO_CAMPAIGN = "没有这个调查，可能编号不对。"
NO_CASE = "没有这条问题线索，可能编号不对。"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- shared by pages and API ----------------------------------------------------------------------

def _township(session: Any, services: "Services") -> int:
    return ensure_township(session, services.settings.township).id


def _unprocessable(exc: Exception) -> HTTPException:
    return HTTPException(422, str(exc))


def _campaign_row(services: "Services", user: Principal, camp: Any, session: Any) -> dict[str, Any]:
    """One campaign with the caller's progress (invited, answered, rates over the caller's households)."""
    whole = service.total(service.stats(session, camp.id, scope=user.scope))
    return {"id": camp.id, "title": camp.title, "actor": camp.actor,
            "created_at": iso_local(camp.created_at, services.settings.timezone),
            "closed": camp.closed_at is not None, "closed_at": iso_local(camp.closed_at, services.settings.timezone),
            "invited": whole["invited"], "responses": whole["responses"], "partial": whole["partial"],
            "response_rate": whole["response_rate"], "satisfaction_rate": whole["satisfaction_rate"]}


def _campaigns(services: "Services", user: Principal) -> list[dict[str, Any]]:
    with services.db.session() as session:
        return [_campaign_row(services, user, camp, session)
                for camp in service.campaigns(session, _township(session, services))]


def _campaign(services: "Services", user: Principal, campaign_id: int) -> dict[str, Any]:
    with services.db.session() as session:
        try:
            camp = service.campaign(session, _township(session, services), campaign_id)
        except service.SurveyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NO_CAMPAIGN) from None
        return _campaign_row(services, user, camp, session)


def _targets(villages: list[str], areas: list[str], everyone: bool) -> Targets:
    """What the form or the JSON chose, cleaned as the CLI cleans its options (NFKC, no blanks, no repeats)."""
    def clean(names: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(nfkc(n) for n in names if nfkc(n)))

    return Targets(clean(villages), clean(areas), everyone)


def _start(services: "Services", user: Principal, targets: Targets, title: str | None) -> service.CampaignCreated:
    """``bot.survey.campaigns.start_campaign`` with the caller's scope; bad targets are a 422."""
    from bot.survey.campaigns import start_campaign
    from bot.survey.questionnaire import QuestionnaireError

    try:
        return start_campaign(services, targets, title=(title or "").strip() or None, actor=user, scope=user.scope)
    except (TargetError, service.SurveyError, QuestionnaireError) as exc:  # a bad questionnaire file: say why
        raise _unprocessable(exc) from None


def _stats(services: "Services", user: Principal, campaign_id: int, by: str | None) -> dict[str, Any]:
    """The same JSON as ``sisong survey stats ID [--by] --json``, over the caller's households."""
    _campaign(services, user, campaign_id)
    with services.db.session() as session:
        groups = service.stats(session, campaign_id, by, scope=user.scope)
    payload: dict[str, Any] = {"id": campaign_id, "by": by}
    if by is not None:
        payload[by] = groups
    payload["total"] = service.total(groups)
    return payload


def _dispositions(services: "Services", user: Principal, campaign_id: int) -> dict[str, int]:
    """已完成 / 部分完成 / 未回复 / 无法送达 / 已拒绝 over the caller's households."""
    with services.db.session() as session:
        if user.scope.everything:
            counts = service.dispositions(session, campaign_id)
        else:
            counts = dict(Counter(r.disposition for r in service.response_rows(session, campaign_id,
                                                                                scope=user.scope)))
    return {key: int(counts.get(key, 0)) for key in DISPOSITION_LABELS}


def _close(services: "Services", user: Principal, campaign_id: int) -> None:
    _campaign(services, user, campaign_id)
    with services.db.session() as session:
        service.close_campaign(session, _township(session, services), campaign_id, actor=user, scope=user.scope)


def _export(services: "Services", user: Principal, campaign_id: int) -> Response:
    """Write the workbook (the caller's households) to a temporary file and stream it; the file goes after."""
    from bot.survey.export import export_campaign

    _campaign(services, user, campaign_id)
    handle, name = tempfile.mkstemp(prefix="sisong-survey-", suffix=".xlsx")
    os.close(handle)
    path = FilePath(name)
    try:
        with services.db.session() as session:
            export_campaign(session, _township(session, services), campaign_id, path, scope=user.scope,
                            zone=services.settings.timezone)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    filename = f"满意度调查{campaign_id}.xlsx"
    return FileResponse(path, media_type=XLSX, background=BackgroundTask(path.unlink, missing_ok=True),
                        headers={"Content-Disposition": f"attachment; filename=survey-{campaign_id}.xlsx; "
                                                        f"filename*=UTF-8''{quote(filename)}",
                                 "Cache-Control": "no-store"})


def _cases(services: "Services", user: Principal, status_: str | None = None,
           overdue: bool = False) -> list[service.CaseView]:
    zone = services.settings.timezone
    with services.db.session() as session:
        return service.list_cases(session, _township(session, services), status=status_, overdue=overdue,
                                  on=today(zone), scope=user.scope)


def _case_exists(services: "Services", case_id: int) -> None:
    """404 for a case number that is not the township's (before the scope check's 403)."""
    with services.db.session() as session:
        row = session.get(SurveyCase, case_id)
        household = session.get(Household, row.household_id) if row is not None else None
        if household is None or household.township_id != _township(session, services):
            raise HTTPException(status.HTTP_404_NOT_FOUND, NO_CASE)


def _case_view(services: "Services", user: Principal, case_id: int) -> service.CaseView:
    zone = services.settings.timezone
    with services.db.session() as session:
        found = service.list_cases(session, _township(session, services), on=today(zone), scope=user.scope,
                                   case_id=case_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_CASE)
    return found[0]


def _date(value: str | None, what: str) -> date:
    text = nfkc(value or "").strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422,
                            f"{what}要写成 年-月-日，比如 2026-12-01。") from None


def _assign(services: "Services", user: Principal, case_id: int, cadre: str, due: str | None) -> None:
    _case_exists(services, case_id)
    due_on = _date(due, "办结期限")
    if due_on < today(services.settings.timezone):
        raise HTTPException(422, "办结期限不能早于今天。")
    if not nfkc(cadre).strip():
        raise HTTPException(422, "请写上交给哪位干部。")
    from bot.survey.campaigns import assign_case

    try:
        assign_case(services, case_id, nfkc(cadre).strip(), due_on, actor=user, scope=user.scope)
    except service.SurveyError as exc:
        raise _unprocessable(exc) from None


def _resolve(services: "Services", user: Principal, case_id: int, action: str, reply: str | None) -> bool:
    """Close the case; after the commit queue the reply to the household. Returns whether it was queued."""
    from bot.survey.campaigns import tell_household

    _case_exists(services, case_id)
    try:
        with services.db.session() as session:
            row = service.close_case(session, _township(session, services), case_id, action, reply=reply,
                                     actor=user, scope=user.scope)
            replied = bool(row.reply)
    except service.SurveyError as exc:
        raise _unprocessable(exc) from None
    return bool(tell_household(services, case_id)) if replied else False


def _visit(services: "Services", user: Principal, number: str, cadre: str, on: str | None,
           checks: dict[str, bool], notes: str) -> int:
    visited_on = _date(on, "走访日期") if on else today(services.settings.timezone)
    if not nfkc(number).strip():
        raise HTTPException(422, "请写上户编号。")
    try:
        with services.db.session() as session:
            visit = service.add_visit(session, _township(session, services), service.VisitInput(
                nfkc(number).strip(), nfkc(cadre).strip(), visited_on, checks, notes), actor=user, scope=user.scope)
            return int(visit.id)
    except service.SurveyError as exc:
        raise _unprocessable(exc) from None


def _cadre_names(services: "Services", user: Principal) -> tuple[list[str], str]:
    """The township's cadres (for the forms' suggestions) and the caller's own cadre name, if linked."""
    with services.db.session() as session:
        township_id = _township(session, services)
        names = list(dict.fromkeys(session.scalars(select(Cadre.name).where(Cadre.township_id == township_id)
                                                   .order_by(Cadre.name))))
        mine = session.get(Cadre, user.cadre_id) if user.cadre_id else None
        return names, (mine.name if mine is not None else "")


# -- API models -----------------------------------------------------------------------------------

class SurveyErrorOut(BaseModel):
    detail: str = Field(description="中文说明")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": SurveyErrorOut, "description": "没有登录"},
    403: {"model": SurveyErrorOut, "description": "不在您负责的范围内，或账号只能查看"},
    404: {"model": SurveyErrorOut, "description": "没有这个编号"},
    422: {"model": SurveyErrorOut, "description": "填写的内容不对"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


class CampaignOut(BaseModel):
    id: int = Field(description="调查编号")
    title: str
    actor: str = Field(description="发起人")
    created_at: str | None
    closed: bool = Field(description="已结束：住户不能再答")
    closed_at: str | None
    invited: int = Field(description="邀请的户数（您范围内）")
    responses: int = Field(description="答完的户数")
    partial: int = Field(description="答了一部分的户数")
    response_rate: float = Field(description="答卷率 = responses / invited（0–1）")
    satisfaction_rate: float = Field(description="满意率 =（满意 + 基本满意）/ responses（0–1）")


class CampaignList(BaseModel):
    items: list[CampaignOut] = Field(description="调查，新的在前")


class CampaignIn(BaseModel):
    villages: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=500, description="村名")
    areas: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=100, description="片区名")
    all: bool = Field(False, description="全镇（只有镇管理员）")
    title: str | None = Field(None, max_length=64, description="调查名称（不填用问卷的标题）")


class CampaignStarted(BaseModel):
    id: int = Field(description="调查编号")
    invited: int = Field(description="邀请的户数（每户一个微信）")
    unreachable: int = Field(description="没有能联系上的微信的户数")


class Figures(BaseModel):
    invited: int
    responses: int = Field(description="答完的户数")
    know_team: int = Field(description="答“认识”驻村工作队的户数")
    know_helper: int = Field(description="答“认识”帮扶责任人的户数")
    satisfied: int
    basically_satisfied: int
    dissatisfied: int
    response_rate: float = Field(description="responses / invited")
    satisfaction_rate: float = Field(description="(satisfied + basically_satisfied) / responses")
    partial: int = Field(description="答了一部分的户数")


class StatsOut(BaseModel):
    """同 ``sisong survey stats ID --by … --json``：分组的键是 by 的值（village、area、team 或 helper）。"""

    model_config = {"extra": "allow"}

    id: int
    by: By | None = Field(description="分组；null 时只有合计")
    total: Figures


class CaseOut(BaseModel):
    id: int
    campaign: int = Field(description="调查编号")
    number: str = Field(description="户编号")
    head: str = Field(description="户主（打码）")
    village: str
    helper: str = Field(description="帮扶责任人")
    reason: Literal["dissatisfied", "unknown_helper"]
    reason_label: str = Field(description="不满意、不认识帮扶责任人")
    status: Literal["open", "assigned", "closed"]
    status_label: str = Field(description="待分派、处理中、已办结")
    assignee: str | None = Field(description="交给的干部")
    due_on: str | None = Field(description="办结期限 YYYY-MM-DD")
    overdue: bool = Field(description="过了期限还没办结")
    action: str = Field(description="办理情况")
    comment: str | None = Field(description="住户说的哪里不满意")
    created_at: str | None
    closed_at: str | None


class CaseList(BaseModel):
    items: list[CaseOut] = Field(description="没办结的在前，超期的最前（您范围内的户）")


class AssignIn(BaseModel):
    cadre: str = Field(min_length=1, max_length=32, description="交给哪位干部（姓名，要在干部名单里）")
    due_on: str = Field(min_length=1, max_length=32, description="办结期限 YYYY-MM-DD，不能早于今天")


class ResolveIn(BaseModel):
    action: str = Field(min_length=1, max_length=2000, description="做了什么（办理情况）")
    reply: str | None = Field(None, max_length=300, description="告诉这一户的话（白天发，只发一次）；不填不发")


class ResolveOut(BaseModel):
    case: CaseOut
    told: bool = Field(description="已安排把 reply 发给这一户")


class VisitIn(BaseModel):
    household: str = Field(min_length=1, max_length=64, description="户编号")
    cadre: str = Field(min_length=1, max_length=32, description="走访干部姓名")
    date: str | None = Field(None, max_length=32, description="走访日期 YYYY-MM-DD（不填为今天）")
    checks: dict[Literal["food_clothing", "education", "medical", "housing", "water"], bool] = Field(
        description="五项是否达标：food_clothing 吃穿不愁、education 义务教育、medical 基本医疗、"
                    "housing 住房安全、water 饮水安全；每项都要填")
    notes: str = Field("", max_length=2000, description="生产生活和思想状况")


class VisitOut(BaseModel):
    id: int = Field(description="走访记录编号")
    household: str
    date: str
    checks: dict[str, bool]


# -- API ------------------------------------------------------------------------------------------

@api.get("/surveys", response_model=CampaignList, responses=_errors(401), summary="满意度调查列表")
def api_list(services: ServicesDep, user: CurrentUser) -> dict[str, Any]:
    """Every campaign of the township, newest first, with the caller's progress (invited, answered, rates)."""
    return {"items": _campaigns(services, user)}


@api.post("/surveys", response_model=CampaignStarted, status_code=201, responses=_errors(401, 403, 422),
          summary="发起满意度调查")
def api_start(services: ServicesDep, user: ApiCsrf, _writer: Writer, body: CampaignIn) -> dict[str, Any]:
    """Invite every bound household of these villages / areas (or 全镇) once, as ``sisong survey start``.

    A village account may start only for its villages (403 naming the one that
    is not); 全镇 is for 镇管理员. Invitations are sent in the background, not
    at night. Returns ``{"id", "invited"}`` (and ``unreachable``).
    """
    created = _start(services, user, _targets(body.villages, body.areas, body.all), body.title)
    return {"id": created.campaign.id, "invited": created.invited, "unreachable": created.unreachable}


@api.get("/surveys/cases", response_model=CaseList, responses=_errors(401, 422), summary="问题线索")
def api_cases(services: ServicesDep, user: CurrentUser,
              status_: Annotated[Literal["open", "assigned", "closed"] | None,
                                 Query(alias="status", description="open 待分派、assigned 处理中、closed 已办结")] = None,
              overdue: Annotated[bool, Query(description="只看过了期限还没办结的")] = False) -> dict[str, Any]:
    """答“不满意”或“不认识帮扶责任人”的户（户主打码），as ``sisong survey cases --json``."""
    zone = services.settings.timezone
    return {"items": [c.to_json(zone) for c in _cases(services, user, status_, overdue)]}


@api.post("/surveys/cases/{case_id}/assign", response_model=CaseOut, responses=_errors(401, 403, 404, 422),
          summary="分派问题线索")
def api_assign(services: ServicesDep, user: ApiCsrf, _assigner: CaseAssigner, case_id: CaseId,
               body: AssignIn) -> dict[str, Any]:
    """交给一位干部并定办结期限（干部要在名单里；期限不能早于今天；已办结的 422）。"""
    _assign(services, user, case_id, body.cadre, body.due_on)
    return _case_view(services, user, case_id).to_json(services.settings.timezone)


@api.post("/surveys/cases/{case_id}/resolve", response_model=ResolveOut, responses=_errors(401, 403, 404, 422),
          summary="办结问题线索")
def api_resolve(services: ServicesDep, user: ApiCsrf, _writer: Writer, case_id: CaseId,
                body: ResolveIn) -> dict[str, Any]:
    """记下做了什么并办结；写了 ``reply`` 就发给这一户（白天发，每户只发一次）。"""
    told = _resolve(services, user, case_id, body.action, body.reply)
    return {"case": _case_view(services, user, case_id).to_json(services.settings.timezone), "told": told}


@api.post("/surveys/visits", response_model=VisitOut, status_code=201, responses=_errors(401, 403, 422),
          summary="记录走访（一查）")
def api_visit(services: ServicesDep, user: ApiCsrf, _writer: Writer, body: VisitIn) -> dict[str, Any]:
    """一次走访：两不愁三保障五项（每项都要说明达标还是不达标），和生产生活、思想状况。"""
    checks = {str(k): bool(v) for k, v in body.checks.items()}
    visit_id = _visit(services, user, body.household, body.cadre, body.date, checks, body.notes)
    on = _date(body.date, "走访日期") if body.date else today(services.settings.timezone)
    return {"id": visit_id, "household": nfkc(body.household).strip(), "date": on.isoformat(), "checks": checks}


@api.get("/surveys/{campaign_id}/stats", response_model=StatsOut, responses=_errors(401, 404, 422),
         summary="调查统计")
def api_stats(services: ServicesDep, user: CurrentUser, campaign_id: CampaignId,
              by: Annotated[By | None, Query(description="village 村、area 片区、team 先锋队、helper 帮扶责任人")] = None,
              ) -> dict[str, Any]:
    """The same JSON as ``sisong survey stats ID --by … --json``, over the households the caller sees."""
    return _stats(services, user, campaign_id, by)


@api.get("/surveys/{campaign_id}/export", responses={**_errors(401, 404), 200: {"content": {XLSX: {}}}},
         summary="下载调查结果（Excel）")
def api_export(services: ServicesDep, user: CurrentUser, campaign_id: CampaignId) -> Response:
    """答卷（每户一行，户主打码）、各村汇总、走访，as ``sisong survey export``; the caller's households."""
    return _export(services, user, campaign_id)


@api.post("/surveys/{campaign_id}/close", response_model=CampaignOut, responses=_errors(401, 403, 404),
          summary="结束调查")
def api_close(services: ServicesDep, user: ApiCsrf, campaign_id: CampaignId) -> dict[str, Any]:
    """住户不能再答，也不再提醒；结果保留。只有镇管理员。"""
    _close(services, user, campaign_id)
    return _campaign(services, user, campaign_id)


# -- pages ----------------------------------------------------------------------------------------

def _list_page(request: Request, services: "Services", user: Principal, code: int = 200,
               flashes: list[tuple[str, str]] | None = None, form: dict[str, Any] | None = None) -> Response:
    choices = target_choices(services, user) if user.scope.writable else {}
    return render(request, "surveys.html", user, code, campaigns=_campaigns(services, user), flashes=flashes or [],
                  form=form or {}, can_start=user.scope.writable, **choices)


@pages.get("/surveys", response_class=HTMLResponse)
def list_page(request: Request, services: ServicesDep, user: PageUser) -> Response:
    """满意度: the campaigns with their progress, and the form to start one."""
    return _list_page(request, services, user)


@pages.post("/surveys", response_class=HTMLResponse)
def start_form(
    request: Request, services: ServicesDep, user: Csrf,
    village: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    area: Annotated[list[str], Form()] = [],  # noqa: B006
    everyone: Annotated[bool, Form(alias="all")] = False,
    title: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Start a campaign and go to its page; a mistake shows the list again with the reason."""
    try:
        created = _start(services, user, _targets(village, area, everyone), title[:64])
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        return _list_page(request, services, user, exc.status_code, [("error", str(exc.detail))],
                          form={"title": title, "villages": village, "areas": area, "all": everyone})
    return RedirectResponse(f"/console/surveys/{created.campaign.id}?done=started", status.HTTP_303_SEE_OTHER)


_DONE = {"started": "调查已发起：邀请由后台发出（夜里不发），下面的数字会自己更新。", "closed": "调查已结束：住户不能再答，结果保留。",
         "assigned": "线索已分派。", "resolved": "线索已办结。", "told": "线索已办结，已安排告诉这一户（白天发）。",
         "visit": "走访已记录。"}


def _cases_page(request: Request, services: "Services", user: Principal, code: int = 200,
                flashes: list[tuple[str, str]] | None = None) -> Response:
    cadres, _ = _cadre_names(services, user)
    return render(request, "surveys_cases.html", user, code, cases=_cases(services, user), flashes=flashes or [],
                  cadres=cadres, can_write=user.scope.writable, can_assign=user.scope.assigns_cases, today=today(services.settings.timezone).isoformat(),
                  closed=CASE_CLOSED, case_labels=CASE_LABELS)


@pages.get("/surveys/cases", response_class=HTMLResponse)
def cases_page(request: Request, services: ServicesDep, user: PageUser,
               done: Annotated[Literal["assigned", "resolved", "told"] | None, Query()] = None) -> Response:
    """问题线索: open and overdue first; assign (cadre, deadline) and resolve (action, reply)."""
    return _cases_page(request, services, user, flashes=[("ok", _DONE[done])] if done else [])


def _case_refused(request: Request, services: "Services", user: Principal, exc: HTTPException) -> Response:
    if exc.status_code in (status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND):
        raise exc
    return _cases_page(request, services, user, exc.status_code, [("error", str(exc.detail))])


@pages.post("/surveys/cases/{case_id}/assign")
def assign_form(request: Request, services: ServicesDep, user: Csrf, _assigner: CaseAssigner, case_id: CaseId,
                cadre: Annotated[str, Form(max_length=64)] = "",
                due_on: Annotated[str, Form(max_length=32)] = "") -> Response:
    try:
        _assign(services, user, case_id, cadre, due_on)
    except HTTPException as exc:
        return _case_refused(request, services, user, exc)
    return RedirectResponse(f"/console/surveys/cases?done=assigned#case-{case_id}", status.HTTP_303_SEE_OTHER)


@pages.post("/surveys/cases/{case_id}/resolve")
def resolve_form(request: Request, services: ServicesDep, user: Csrf, _writer: Writer, case_id: CaseId,
                 action: Annotated[str, Form(max_length=2000)] = "",
                 reply: Annotated[str, Form(max_length=300)] = "") -> Response:
    try:
        told = _resolve(services, user, case_id, action, reply or None)
    except HTTPException as exc:
        return _case_refused(request, services, user, exc)
    done = "told" if told else "resolved"
    return RedirectResponse(f"/console/surveys/cases?done={done}#case-{case_id}", status.HTTP_303_SEE_OTHER)


def _visit_page(request: Request, services: "Services", user: Principal, code: int = 200,
                flashes: list[tuple[str, str]] | None = None, form: dict[str, Any] | None = None) -> Response:
    cadres, mine = _cadre_names(services, user)
    with services.db.session() as session:
        recent = [(v.visited_on.isoformat(), h.number, v.cadre_name,
                   [label for key, label in CHECKS if not getattr(v, key)])
                  for v, h in service.visits(session, _township(session, services), scope=user.scope)[:20]]
    form = form or {"cadre": mine, "date": today(services.settings.timezone).isoformat()}
    return render(request, "surveys_visit.html", user, code, flashes=flashes or [], form=form, cadres=cadres,
                  checks=CHECKS, recent=recent, can_write=user.scope.writable)


@pages.get("/surveys/visit", response_class=HTMLResponse)
def visit_page(request: Request, services: ServicesDep, user: PageUser,
               done: Annotated[Literal["visit"] | None, Query()] = None) -> Response:
    """走访 (一查): a form a cadre fills in on a phone at the household's door."""
    return _visit_page(request, services, user, flashes=[("ok", _DONE[done])] if done else [])


@pages.post("/surveys/visit", response_class=HTMLResponse)
def visit_form(
    request: Request, services: ServicesDep, user: Csrf, _writer: Writer,
    household: Annotated[str, Form(max_length=64)] = "", cadre: Annotated[str, Form(max_length=32)] = "",
    on: Annotated[str, Form(alias="date", max_length=32)] = "", notes: Annotated[str, Form(max_length=2000)] = "",
    food_clothing: Annotated[str, Form(max_length=1)] = "", education: Annotated[str, Form(max_length=1)] = "",
    medical: Annotated[str, Form(max_length=1)] = "", housing: Annotated[str, Form(max_length=1)] = "",
    water: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """Record the visit; on a mistake the form comes back with what was filled in and the reason.

    Each check is a radio pair (1 达标 / 0 不达标); one left unchosen is refused by the service, by name.
    """
    given = {"food_clothing": food_clothing, "education": education, "medical": medical, "housing": housing,
             "water": water}
    checks = {key: value == "1" for key, value in given.items() if value in ("1", "0")}
    try:
        _visit(services, user, household, cadre, on or None, checks, notes)
    except HTTPException as exc:
        if exc.status_code in (status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND):
            raise
        return _visit_page(request, services, user, exc.status_code, [("error", str(exc.detail))],
                           form={"household": household, "cadre": cadre, "date": on, "notes": notes, **given})
    return RedirectResponse("/console/surveys/visit?done=visit", status.HTTP_303_SEE_OTHER)


@pages.get("/surveys/{campaign_id}", response_class=HTMLResponse)
def detail_page(request: Request, services: ServicesDep, user: PageUser, campaign_id: CampaignId,
                by: Annotated[By, Query()] = "village",
                done: Annotated[Literal["started", "closed"] | None, Query()] = None) -> Response:
    """One campaign: dispositions, figures by village / area / team / helper (table and chart), download."""
    camp = _campaign(services, user, campaign_id)
    stats = _stats(services, user, campaign_id, by)
    groups = stats[by]
    chart = {"labels": list(groups), "satisfaction_rate": [groups[g]["satisfaction_rate"] for g in groups],
             "response_rate": [groups[g]["response_rate"] for g in groups]}
    return render(request, "surveys_detail.html", user, camp=camp, stats=stats, groups=groups, by=by,
                  by_labels=BY_LABELS, chart=chart, dispositions=_dispositions(services, user, campaign_id),
                  disposition_labels=DISPOSITION_LABELS, flashes=[("ok", _DONE[done])] if done else [],
                  can_close=user.scope.writable and user.scope.everything and not camp["closed"])


@pages.post("/surveys/{campaign_id}/close")
def close_form(services: ServicesDep, user: Csrf, _writer: Writer, campaign_id: CampaignId) -> Response:
    _close(services, user, campaign_id)
    return RedirectResponse(f"/console/surveys/{campaign_id}?done=closed", status.HTTP_303_SEE_OTHER)
