"""``sisong survey …``: 四问一查 campaigns, figures, export, cases and visit checks (docs/survey.md).

Thin: each command calls the service function the chat and the console call
(``storage.surveys``, ``bot.survey``) and prints Chinese, or JSON for scripts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.cli_common import AsJson, database, emit, fail, say, services, settings, township_id
from storage.import_rows import nfkc

survey_app = typer.Typer(help="四问一查：满意度调查、统计、导出、问题线索和走访（见 docs/survey.md）。", no_args_is_help=True)

CampaignId = Annotated[int, typer.Argument(help="调查编号", show_default=False)]
CaseId = Annotated[int, typer.Argument(help="问题线索编号", show_default=False)]
_say, _emit, _fail, _settings, _db, _services, _township_id = say, emit, fail, settings, database, services, township_id


def _guarded(fn):  # type: ignore[no-untyped-def]
    """SurveyError / TargetError / OutOfScope / QuestionnaireError: one red line, exit code 1."""
    from bot.survey.questionnaire import QuestionnaireError
    from storage.pushes import TargetError
    from storage.scope import OutOfScope, ReadOnly
    from storage.surveys import SurveyError

    try:
        return fn()
    except (SurveyError, TargetError, OutOfScope, ReadOnly, QuestionnaireError) as exc:
        _fail(str(exc))


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(nfkc(value).strip())
    except ValueError:
        _fail(f"{what}要写成 年-月-日，比如 2026-12-01。")
    return None


# -- campaigns -------------------------------------------------------------------------------------


@survey_app.command("start")
def survey_start(
    village: Annotated[Optional[list[str]], typer.Option("--village", help="邀请这个村的户（可写多次）")] = None,
    area: Annotated[Optional[list[str]], typer.Option("--area", help="邀请这个片区的所有村（可写多次）")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="邀请全镇")] = False,
    title: Annotated[Optional[str], typer.Option("--title", help="调查名称（默认用问卷的标题）")] = None,
    as_json: AsJson = False,
) -> None:
    """发起满意度调查：每个已绑定微信的户邀请一次（48 小时内发客服消息，否则发模板消息）。

    --json 输出 {"id","invited"}（还有 "unreachable"：联系不上的户数）。
    """
    from bot.survey.campaigns import start_campaign
    from storage.pushes import Targets

    targets = Targets(tuple(dict.fromkeys(nfkc(v) for v in village or () if nfkc(v))),
                      tuple(dict.fromkeys(nfkc(a) for a in area or () if nfkc(a))), everyone)
    services = _services()
    try:
        created = _guarded(lambda: start_campaign(services, targets, title=title))
    finally:
        services.close()
    if as_json:
        _emit({"id": created.campaign.id, "invited": created.invited, "unreachable": created.unreachable})
        return
    _say(f"已发起调查 {created.campaign.id}（{created.campaign.title}）：{targets.describe()}，邀请 {created.invited} 户"
         + (f"，其中 {created.unreachable} 户联系不上（没关注或已取关）" if created.unreachable else "") +
         "。邀请由后台服务（sisong serve / sisong worker）发出，夜里不发。")


@survey_app.command("list")
def survey_list(as_json: AsJson = False) -> None:
    """所有调查：编号、名称、邀请户数、答完户数、是否已结束。"""
    from storage import surveys
    from storage.clock import iso_local

    db = _db()
    zone = _settings().timezone
    with db.session() as session:
        rows = []
        for camp in surveys.campaigns(session, _township_id(session)):
            whole = surveys.total(surveys.stats(session, camp.id))
            rows.append({"id": camp.id, "title": camp.title, "invited": whole["invited"],
                         "responses": whole["responses"], "closed": camp.closed_at is not None,
                         "created_at": iso_local(camp.created_at, zone)})
    if as_json:
        for row in rows:
            _emit(row)
        return
    if not rows:
        _say("还没有调查。发起：sisong survey start --village 村名")
    for row in rows:
        _say(f"{row['id']}  {row['title']}  邀请 {row['invited']} 户，答完 {row['responses']} 户"
             + ("（已结束）" if row["closed"] else ""))


@survey_app.command("close")
def survey_close(campaign: CampaignId) -> None:
    """结束调查：住户不能再答，也不再提醒；结果保留。"""
    from storage import surveys

    db = _db()
    with db.session() as session:
        _guarded(lambda: surveys.close_campaign(session, _township_id(session), campaign))
    _say(f"调查 {campaign} 已结束。")


# -- figures and export ------------------------------------------------------------------------------


@survey_app.command("stats")
def survey_stats(
    campaign: CampaignId,
    by: Annotated[Optional[str], typer.Option("--by", help="按 village（村）、area（片区）、team（先锋队）或 helper（帮扶责任人）分组")] = None,
    as_json: AsJson = False,
) -> None:
    """统计：邀请、答完、认识工作队、认识帮扶人、满意、基本满意、不满意，答卷率和满意率。

    --json：{"id", "by", <by>: {组名: {invited, responses, know_team, know_helper, satisfied,
    basically_satisfied, dissatisfied, response_rate, satisfaction_rate}}, "total": {…}}。
    """
    from storage import surveys

    if by is not None and by not in surveys.GROUPINGS:
        _fail(f"--by 只能是 {'、'.join(surveys.GROUPINGS)}。", 2)
    db = _db()
    with db.session() as session:
        _guarded(lambda: surveys.campaign(session, _township_id(session), campaign))
        groups = surveys.stats(session, campaign, by)
    whole = surveys.total(groups)
    if as_json:
        payload: dict[str, object] = {"id": campaign, "by": by}
        if by is not None:
            payload[by] = {name: surveys.public(figures) for name, figures in groups.items()}
        payload["total"] = surveys.public(whole)
        _emit(payload)
        return
    names = {"village": "村", "area": "片区", "team": "先锋队", "helper": "帮扶责任人"}
    for name, figures in ({**groups, "合计": whole} if by else {"合计": whole}).items():
        label = f"{names.get(by or '', '')} {name}".strip() if by and name != "合计" else name
        _say(f"{label}：邀请 {figures['invited']}，答完 {figures['responses']}（{figures['response_rate']:.0%}），"
             f"认识工作队 {figures['know_team']}，认识帮扶人 {figures['know_helper']}，满意 {figures['satisfied']}，"
             f"基本满意 {figures['basically_satisfied']}，不满意 {figures['dissatisfied']}，"
             f"满意率 {figures['satisfaction_rate']:.1%}")


@survey_app.command("export")
def survey_export(
    campaign: CampaignId,
    output: Annotated[Path, typer.Option("--output", help="写到这个 .xlsx 文件", show_default=False)],
) -> None:
    """导出 Excel：每户一行的答卷（户主姓名打码）、各村汇总（含答卷率、满意率）、走访记录。"""
    from bot.survey.export import export_campaign

    if output.suffix.lower() != ".xlsx":
        _fail("--output 要以 .xlsx 结尾。", 2)
    db = _db()
    with db.session() as session:
        count = _guarded(lambda: export_campaign(session, _township_id(session), campaign, output,
                                                 zone=_settings().timezone))
    _say(f"已导出 {count} 户到 {output}。")


# -- cases ----------------------------------------------------------------------------------------------


@survey_app.command("cases")
def survey_cases(
    status: Annotated[Optional[str], typer.Option("--status", help="open（待分派）、assigned（处理中）或 closed（已办结）")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="只看过了期限还没办结的")] = False,
    as_json: AsJson = False,
) -> None:
    """问题线索：答“不满意”或“不认识帮扶责任人”的户。没办结的在前，超期的最前。"""
    from storage import surveys
    from storage.jobs import today

    if status is not None and status not in ("open", "assigned", "closed"):
        _fail("--status 只能是 open、assigned 或 closed。", 2)
    db = _db()
    zone = _settings().timezone
    with db.session() as session:
        cases = surveys.list_cases(session, _township_id(session), status=status, overdue=overdue, on=today(zone))
    if as_json:
        for case in cases:
            _emit(case.to_json(zone))
        return
    if not cases:
        _say("没有问题线索。")
    for case in cases:
        payload = case.to_json(zone)
        _say(f"{case.id}  [{payload['status_label']}{'，已超期' if case.overdue else ''}] {case.village} "
             f"{case.number} {payload['head']}户：{payload['reason_label']}"
             + (f"（“{case.comment}”）" if case.comment else "")
             + (f"；交给 {case.assignee}，{case.due_on} 前" if case.assignee else ""),
             "red" if case.overdue else None)


@survey_app.command("assign")
def survey_assign(
    case: CaseId,
    to: Annotated[str, typer.Option("--to", help="交给哪位干部（姓名）", show_default=False)],
    due: Annotated[str, typer.Option("--due", help="限期 年-月-日", show_default=False)],
) -> None:
    """分派问题线索给干部，并定好办结期限。"""
    from bot.survey.campaigns import assign_case

    due_on = _date(due, "--due")
    assert due_on is not None
    services = _services()
    try:
        _guarded(lambda: assign_case(services, case, to, due_on))
    finally:
        services.close()
    _say(f"线索 {case} 已交给 {to}，{due_on.isoformat()} 前办结。")


@survey_app.command("resolve")
def survey_resolve(
    case: CaseId,
    action: Annotated[str, typer.Option("--action", help="做了什么（办理情况）", show_default=False)],
    reply: Annotated[Optional[str], typer.Option("--reply", help="告诉这一户的话，如“已经安排干部上门了解了”")] = None,
) -> None:
    """办结问题线索；写了 --reply 就把这句话发给这一户（白天发，每户只发一次）。"""
    from bot.survey.campaigns import tell_household
    from storage import surveys

    db = _db()
    with db.session() as session:
        _guarded(lambda: surveys.close_case(session, _township_id(session), case, action, reply=reply))
    told = 0
    if reply:
        services = _services()
        try:
            told = tell_household(services, case)
        finally:
            services.close()
    _say(f"线索 {case} 已办结。" + ("已安排告诉这一户。" if told else ""))


# -- visits ------------------------------------------------------------------------------------------------


@survey_app.command("visit")
def survey_visit(
    household: Annotated[str, typer.Option("--household", help="户编号", show_default=False)],
    cadre: Annotated[str, typer.Option("--cadre", help="走访干部姓名", show_default=False)],
    ok: Annotated[Optional[list[str]], typer.Option("--ok", help="达标的项（吃穿不愁、义务教育、基本医疗、住房安全、饮水安全；可写多次）")] = None,
    not_ok: Annotated[Optional[list[str]], typer.Option("--not-ok", help="不达标的项（可写多次）")] = None,
    all_ok: Annotated[bool, typer.Option("--all-ok", help="五项都达标")] = False,
    on: Annotated[Optional[str], typer.Option("--date", help="走访日期 年-月-日（默认今天）")] = None,
    notes: Annotated[str, typer.Option("--notes", help="生产生活和思想状况")] = "",
    as_json: AsJson = False,
) -> None:
    """记录一次走访（一查：两不愁三保障）。每一项都要说明达标还是不达标。"""
    from storage import surveys
    from storage.jobs import today
    from storage.models.surveys import CHECKS

    labels = {label: key for key, label in CHECKS}
    checks: dict[str, bool] = {key: True for key, _ in CHECKS} if all_ok else {}
    for names, value in ((ok or [], True), (not_ok or [], False)):
        for raw in names:
            for name in (n.strip() for n in nfkc(raw).replace("，", ",").replace("、", ",").split(",")):
                if not name:
                    continue
                if name not in labels:
                    _fail(f"没有“{name}”这一项。可以写：{'、'.join(labels)}。", 2)
                checks[labels[name]] = value
    visited_on = _date(on, "--date") or today(_settings().timezone)
    db = _db()
    with db.session() as session:
        visit = _guarded(lambda: surveys.add_visit(session, _township_id(session), surveys.VisitInput(
            household, cadre, visited_on, checks, notes)))
        visit_id = visit.id
    if as_json:
        _emit({"id": visit_id, "household": household, "date": visited_on.isoformat(), "checks": checks})
        return
    failing = [label for key, label in CHECKS if not checks.get(key, True)]
    _say(f"已记录 {household} 户 {visited_on.isoformat()} 的走访" +
         (f"，不达标：{'、'.join(failing)}" if failing else "，五项都达标") + "。")


def register(app: typer.Typer) -> None:
    app.add_typer(survey_app, name="survey")
