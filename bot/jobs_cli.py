"""``sisong jobs …``: job postings, pushes, sign-ups and the funnel, for cadres (docs/jobs.md).

Thin: each command calls the service function the chat and the console call
(``storage.jobs``, ``bot.jobs``) and prints the result in Chinese, or JSON for
scripts. Sign-up lists carry names and phones in clear: this is the cadres'
own tool (a cadre calls the household); nothing here logs them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from bot.cli_common import AsJson, console, database, emit, errors, fail, say, services, settings, township_id
from storage.import_rows import RowError, nfkc

jobs_app = typer.Typer(help="送岗位：岗位、推送、报名和统计（见 docs/jobs.md）。", no_args_is_help=True)

JobId = Annotated[int, typer.Argument(help="岗位编号", show_default=False)]
_say, _emit, _fail, _settings, _db, _services, _township_id = say, emit, fail, settings, database, services, township_id


def _guarded(fn):  # type: ignore[no-untyped-def]
    """JobError / TargetError / OutOfScope become one red line and exit code 1."""
    from storage.jobs import JobError
    from storage.pushes import TargetError
    from storage.scope import OutOfScope, ReadOnly

    try:
        return fn()
    except (JobError, TargetError, OutOfScope, ReadOnly) as exc:
        _fail(str(exc))


# -- add / import / list / show / close ---------------------------------------------------------------


@jobs_app.command("add")
def jobs_add(
    title: Annotated[str, typer.Option("--title", help="岗位名称，如 电子厂普工", show_default=False)],
    employer: Annotated[str, typer.Option("--employer", help="用工单位", show_default=False)],
    location: Annotated[str, typer.Option("--location", help="工作地点", show_default=False)],
    salary: Annotated[str, typer.Option("--salary", help="薪资，如 4500-6000元/月", show_default=False)],
    headcount: Annotated[int, typer.Option("--headcount", help="招聘人数", show_default=False)],
    contact: Annotated[str, typer.Option("--contact", help="报名联系人和电话（报名后告诉住户）", show_default=False)],
    deadline: Annotated[Optional[str], typer.Option("--deadline", help="报名截止日期 YYYY-MM-DD（过了自动截止）")] = None,
    requirements: Annotated[str, typer.Option("--requirements", help="岗位要求（年龄、技能…）")] = "",
    draft: Annotated[bool, typer.Option("--draft", help="先存为草稿，推送时再发布")] = False,
    as_json: AsJson = False,
) -> None:
    """新增一个岗位（默认直接发布：住户回复“岗位”就能看到）。--json 输出 {"id": 编号}。"""
    from storage.jobs import JobInput, add_posting

    data = JobInput(title=title, employer=employer, location=location, salary=salary, headcount=headcount,
                    contact=contact, requirements=requirements, deadline=deadline)
    settings = _settings()

    def run() -> int:
        with _db().session() as session:
            posting = add_posting(session, _township_id(session), data, draft=draft, zone=settings.timezone)
            return posting.id

    posting_id = _guarded(run)
    if as_json:
        _emit({"id": posting_id})
    else:
        _say(f"已{'存为草稿' if draft else '发布'}岗位，编号 {posting_id}。推送：sisong jobs push {posting_id} --village 村名")


@jobs_app.command("import")
def jobs_import(
    file: Annotated[Path, typer.Argument(help="CSV 或 Excel（.xlsx）文件", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只检查，不写入")] = False,
    draft: Annotated[bool, typer.Option("--draft", help="导入为草稿")] = False,
    as_json: AsJson = False,
) -> None:
    """从表格导入岗位：每一行都检查，有一行出错就全部不导入，并列出每一行的问题。"""
    from storage.jobs import import_postings

    settings = _settings()
    with _db().session() as session:
        report = import_postings(session, _township_id(session), file, dry_run=dry_run, draft=draft,
                                 zone=settings.timezone)
        if not report.ok:
            session.rollback()
    if as_json:
        _emit(report.to_json())
    elif not report.ok:
        _print_errors(report.errors)
    for warning in report.warnings:
        if not as_json:
            _say(f"提示：{warning}", "yellow", err=True)
    if not report.ok:
        raise typer.Exit(1)
    if not as_json:
        if dry_run:
            _say(f"检查通过（没有写入）：{report.rows} 个岗位。")
        else:
            ids = report.created
            span = f"，编号 {ids[0]}–{ids[-1]}" if ids else ""
            again = f"；{len(report.existing)} 个岗位已经有了（编号 {'、'.join(map(str, report.existing[:10]))}），没有重复添加" \
                if report.existing else ""
            _say(f"导入完成：新增 {len(ids)} 个岗位{span}{again}。")


def _print_errors(found: list[RowError]) -> None:
    for error in found:
        _say(str(error), "red", err=True)
    rows = len({(e.sheet, e.line) for e in found})
    _say(f"共 {rows} 处问题，没有导入任何内容。请在 Excel 里改好后重新导入。", "bold", err=True)


_STATUS_WORDS = {"草稿": "draft", "已发布": "open", "已满": "full", "已截止": "expired", "已关闭": "closed"}


@jobs_app.command("list")
def jobs_list(
    status: Annotated[Optional[str], typer.Option("--status", help="只看一种状态：草稿/已发布/已满/已截止/已关闭")] = None,
    as_json: AsJson = False,
) -> None:
    """列出岗位（新的在前）：编号、状态、名额、报名人数。--json 每个岗位一行 JSON。"""
    from storage.jobs import list_postings

    settings = _settings()
    wanted = None
    if status:
        code = _STATUS_WORDS.get(nfkc(status), nfkc(status))
        if code not in _STATUS_WORDS.values():
            _fail(f"没有「{status}」这种状态，可以是：{'、'.join(_STATUS_WORDS)}。", 2)
        wanted = [code]
    with _db().session() as session:
        views = list_postings(session, _township_id(session), statuses=wanted, zone=settings.timezone)
    if as_json:
        for view in views:
            _emit(view.to_json(settings.timezone))
        return
    if not views:
        _say("还没有岗位。用 sisong jobs add 或 sisong jobs import 文件 添加。")
        return
    table = Table(title=f"岗位（共 {len(views)} 个）", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("编号", "岗位", "单位", "地点", "薪资", "招", "报名", "排队", "截止", "状态"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(str(v.id), v.title, v.employer, v.location, v.salary, str(v.headcount), str(v.signed),
                      str(v.waiting), v.deadline.isoformat() if v.deadline else "", v.status_label)
    console.print(table, markup=False)


@jobs_app.command("show")
def jobs_show(job: JobId, as_json: AsJson = False) -> None:
    """查看一个岗位的全部信息。"""
    from storage.jobs import posting_view

    settings = _settings()
    with _db().session() as session:
        view = posting_view(session, _township_id(session), job, settings.timezone)
    if view is None:
        _fail(f"没有编号为 {job} 的岗位。")
        return
    if as_json:
        _emit(view.to_json(settings.timezone))
        return
    for label, value in (("编号", view.id), ("岗位", view.title), ("单位", view.employer), ("地点", view.location),
                         ("薪资", view.salary), ("招聘人数", view.headcount), ("已报名", view.signed),
                         ("排队", view.waiting), ("要求", view.requirements or "（无）"), ("联系", view.contact),
                         ("截止", view.deadline.isoformat() if view.deadline else "（招满为止）"),
                         ("状态", view.status_label)):
        _say(f"{label}：{value}")


@jobs_app.command("close")
def jobs_close(job: JobId, as_json: AsJson = False) -> None:
    """关闭岗位：住户看不到了，不能再报名；还没发出的推送不再发。"""
    from storage.jobs import close_posting

    def run() -> str:
        with _db().session() as session:
            return close_posting(session, _township_id(session), job).title

    title = _guarded(run)
    if as_json:
        _emit({"id": job, "status": "closed"})
    else:
        _say(f"已关闭岗位 {job}（{title}）。")


# -- push ---------------------------------------------------------------------------------------------


@jobs_app.command("push")
def jobs_push(
    job: JobId,
    village: Annotated[Optional[list[str]], typer.Option("--village", help="推给这个村（可写多次）")] = None,
    area: Annotated[Optional[list[str]], typer.Option("--area", help="推给这个片区的所有村（可写多次）")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="推给全镇")] = False,
    labour_only: Annotated[bool, typer.Option("--labour-only", help="只推劳动力人数大于 0 的户")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="等发完再退出，只输出结果（不显示进度条）")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="交给后台服务发送，马上退出，并给出查看进度的命令")] = False,
    as_json: AsJson = False,
) -> None:
    """把岗位推送给选定村的已绑定住户（每人只收到一次；再推同一岗位只发给新增的人）。

    默认显示进度条直到发完；--wait 不显示进度，发完输出结果（--json 输出
    {"job","recipients","sent","failed","skipped"}）；--detach 交给后台服务发送。
    """
    from bot.jobs import send_in_background, start_push
    from storage.pushes import Targets

    if wait and detach:
        _fail("--wait 和 --detach 只能选一个。", 2)
    targets = Targets(tuple(dict.fromkeys(nfkc(v) for v in village or () if nfkc(v))),
                      tuple(dict.fromkeys(nfkc(a) for a in area or () if nfkc(a))), everyone, labour_only)
    services = _services()
    try:
        posting, created = _guarded(lambda: start_push(services, job, targets))
        push_id = created.push.id
        if not as_json or not wait:
            skipped = "、".join(f"{_skip_label(k)} {n}" for k, n in created.skipped.items())
            _say(f"岗位 {job}（{posting.title}）推送 {push_id}：{targets.describe()}，对象 {created.recipients} 人"
                 + (f"；跳过 {sum(created.skipped.values())} 人（{skipped}）" if skipped else "") + "。",
                 err=as_json)
        if detach:
            send_in_background(services)
            _say(f"已交给后台服务发送（sisong serve 或 sisong worker 要在运行）。查看进度：sisong jobs watch {push_id}",
                 err=as_json)
            if as_json:
                _emit({"job": job, "push": push_id, "recipients": created.recipients, "detached": True})
            return
        _drain_foreground(services, push_id, show_bar=not wait)
        _print_result(services, job, push_id, as_json)
    finally:
        services.close()


def _skip_label(key: str) -> str:
    from storage.pushes import SKIP_LABELS

    return SKIP_LABELS.get(key, key)


def _progress(services, push_id: int):  # type: ignore[no-untyped-def]
    from storage.pushes import progress

    with services.db.session() as session:
        return progress(session, push_id)


def _drain_foreground(services, push_id: int, *, show_bar: bool) -> None:  # type: ignore[no-untyped-def]
    """Send this push from this process until every row is settled (a bar on stderr unless --wait)."""
    pusher = services.pusher
    if not show_bar:
        try:
            pusher.drain(wait_for={push_id})
        except KeyboardInterrupt:
            _interrupted(pusher, push_id)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("推送 {task.fields[push]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("已发出 {task.fields[sent]} 失败 {task.fields[failed]} 待确认 {task.fields[unconfirmed]}"),
                  TimeElapsedColumn(), console=errors, transient=False) as bar:
        first = _progress(services, push_id)
        task = bar.add_task("push", total=first.recipients if first else 0, push=push_id, sent=0, failed=0,
                            unconfirmed=0)

        def tick() -> None:
            state = _progress(services, push_id)
            if state is not None:
                bar.update(task, completed=state.done, sent=state.sent, failed=state.failed,
                           unconfirmed=state.unconfirmed)

        try:
            pusher.drain(wait_for={push_id}, on_tick=tick)
        except KeyboardInterrupt:
            _interrupted(pusher, push_id)
        tick()


def _interrupted(pusher, push_id: int) -> None:  # type: ignore[no-untyped-def]
    pusher.stop()
    _say(f"已中断。没发完的由后台服务（sisong serve / sisong worker）接着发；查看：sisong jobs watch {push_id}",
         "yellow", err=True)
    raise typer.Exit(130)


def _parked(db, push_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Every unsettled row of the push waits more than half an hour (a used-up daily quota): stop watching."""
    from datetime import timedelta

    from bot.push import BACKOFF_MAX
    from storage.models.base import utcnow
    from storage.pushes import only_waiting_past

    return only_waiting_past(db, [push_id], utcnow() + timedelta(seconds=BACKOFF_MAX))


def _print_result(services, job: int, push_id: int, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    state = _progress(services, push_id)
    assert state is not None
    _report(services.db, state, as_json, job=job)


def _report(db, state, as_json: bool, *, job: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """The push's result (`--json`: the contract's keys and the finer counts); rows still waiting are said."""
    if as_json:
        _emit({"job": state.ref_id if job is None else job, **state.to_json()})
        return
    counts = (f"对象 {state.recipients} 人，已发出 {state.sent}，失败 {state.failed}，"
              f"待确认 {state.unconfirmed}，跳过 {state.skipped}")
    if state.waiting:
        from storage.clock import local
        from storage.pushes import next_due_at

        resume = next_due_at(db, [state.push_id])
        _say(f"推送 {state.push_id}：{counts}；还有 {state.waiting} 人要等到 {local(resume, _settings().timezone)} "
             f"以后，由后台服务自动接着发（多半是今天的微信发送额度用完了）。查看：sisong jobs watch {state.push_id}",
             "yellow")
        return
    _say(f"推送 {state.push_id} 完成：{counts}。")
    if state.unconfirmed:
        _say("“待确认”是发送时微信没有答复（或发送进程中断），不知道住户是否收到；为了不重复打扰，不会再发。", "yellow")


@jobs_app.command("watch")
def jobs_watch(
    push: Annotated[int, typer.Argument(help="推送编号（jobs push 输出的）", show_default=False)],
    as_json: AsJson = False,
) -> None:
    """看一次推送的进度，直到发完（发送由 sisong serve / sisong worker 进行）。"""
    db = _db()
    from storage.pushes import progress

    def read():  # type: ignore[no-untyped-def]
        with db.session() as session:
            return progress(session, push)

    state = read()
    if state is None:
        _fail(f"没有编号为 {push} 的推送。")
        return
    if not as_json:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn(f"推送 {push}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=errors) as bar:
            task = bar.add_task("push", total=state.recipients, completed=state.done)
            still, last_done = time.monotonic(), state.done
            while not state.finished and not _parked(db, push):
                time.sleep(0.5)
                state = read()
                bar.update(task, completed=state.done)
                if state.done != last_done:
                    still, last_done = time.monotonic(), state.done
                elif time.monotonic() - still > 15:
                    _say("15 秒没有进展：请确认 sisong serve 或 sisong worker 在运行（也可能在等微信限流后重试）。",
                         "yellow", err=True)
                    still = time.monotonic()
    else:
        while not state.finished and not _parked(db, push):
            time.sleep(0.5)
            state = read()
    _report(db, state, as_json)


# -- sign-ups and outcomes ----------------------------------------------------------------------------


@jobs_app.command("signups")
def jobs_signups(
    job: JobId,
    include_cancelled: Annotated[bool, typer.Option("--all", help="也列出已取消的")] = False,
    as_json: AsJson = False,
) -> None:
    """报名名单：户编号、户主、村组、电话、状态（已报名/排队中）、结果。--json 每户一行。"""
    from storage.jobs import signups_of
    from storage.models.jobs import OUTCOME_LABELS, SIGNUP_LABELS

    settings = _settings()
    views = _guarded(lambda: _signups(signups_of, job, include_cancelled))
    if as_json:
        for view in views:
            _emit(view.to_json(settings.timezone))
        return
    if not views:
        _say(f"岗位 {job} 还没有人报名。")
        return
    from storage.clock import local

    table = Table(title=f"岗位 {job} 报名名单（{len(views)} 户）", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("户编号", "户主", "村组", "电话", "状态", "报名时间", "结果"):
        table.add_column(column, overflow="fold")
    for v in views:
        state = SIGNUP_LABELS[v.status] + (f" 第{v.position}位" if v.position else "")
        table.add_row(v.number, v.head_name, v.village + (v.hamlet or ""), v.phone or "", state,
                      local(v.signed_at, settings.timezone), OUTCOME_LABELS.get(v.outcome or "", ""))
    console.print(table, markup=False)


def _signups(fn, job: int, include_cancelled: bool):  # type: ignore[no-untyped-def]
    with _db().session() as session:
        return fn(session, _township_id(session), job, include_cancelled=include_cancelled)


@jobs_app.command("outcome")
def jobs_outcome(
    job: JobId,
    number: Annotated[str, typer.Argument(help="户编号", show_default=False)],
    outcome: Annotated[str, typer.Argument(help="录用、未录用 或 未到岗", show_default=False)],
    as_json: AsJson = False,
) -> None:
    """记录一户报名的结果：录用、未录用 或 未到岗（用于统计）。"""
    from storage.jobs import record_outcome
    from storage.models.jobs import OUTCOME_LABELS

    def run() -> str:
        with _db().session() as session:
            return record_outcome(session, _township_id(session), job, number, outcome).outcome or ""

    key = _guarded(run)
    if as_json:
        _emit({"job": job, "number": nfkc(number), "outcome": key, "outcome_label": OUTCOME_LABELS[key]})
    else:
        _say(f"已记录：岗位 {job}，户 {nfkc(number)}，{OUTCOME_LABELS[key]}。")


@jobs_app.command("signup")
def jobs_signup(
    job: JobId,
    number: Annotated[str, typer.Argument(help="户编号", show_default=False)],
    as_json: AsJson = False,
) -> None:
    """干部替一户报名（住户不会用微信时）；和住户自己报名一样，一户一个岗位只算一次。"""
    from bot.jobs import announce_signup
    from storage import jobs as service
    from storage.households import household_by_number

    services = _services()
    try:
        with services.db.session() as session:
            township = _township_id(session)
            household = household_by_number(session, township, nfkc(number))
            if household is None:
                _fail(f"没有户编号为 {number} 的户。")
                return
            result = service.signup(session, job, household, via="cadre", zone=services.settings.timezone)
            notice = None
            if result.status in (service.NEW_SIGNED, service.NEW_WAITING) and result.posting is not None:
                notice = announce_signup(session, services, result.posting, household, result)
        if notice is not None:
            notice.dispatch(services)
    finally:
        services.close()
    words = {service.NEW_SIGNED: "已报名", service.NEW_WAITING: f"已满，排队第 {result.position} 位",
             service.ALREADY_SIGNED: "这户已经报过名了", service.ALREADY_WAITING: f"这户已在排队（第 {result.position} 位）",
             service.NOT_OPEN: "这个岗位不能报名了（已关闭或已截止）", service.NO_SUCH: "没有这个岗位"}
    if as_json:
        _emit({"job": job, "number": nfkc(number), "result": result.status, "position": result.position or None})
    else:
        _say(f"岗位 {job}，户 {nfkc(number)}：{words[result.status]}。")
    if result.status in (service.NOT_OPEN, service.NO_SUCH):
        raise typer.Exit(1)


# -- the funnel ---------------------------------------------------------------------------------------


@jobs_app.command("report")
def jobs_report(
    job: Annotated[Optional[int], typer.Argument(help="岗位编号（不写就是所有岗位）", show_default=False)] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="village：按村分开统计")] = None,
    xlsx: Annotated[Optional[Path], typer.Option("--xlsx", help="同时导出 Excel 文件（含报名名单）")] = None,
    as_json: AsJson = False,
) -> None:
    """统计：推送 → 送达 → 报名 → 录用，按岗位（--by village 按岗位和村）。"""
    from storage.jobs import export_xlsx, funnel, signups_of

    if by not in (None, "village", "村"):
        _fail("--by 只能是 village（按村）。", 2)
    settings = _settings()

    def run():  # type: ignore[no-untyped-def]
        with _db().session() as session:
            township = _township_id(session)
            rows = funnel(session, township, job, by_village=by is not None)
            names = []
            if xlsx is not None:
                for posting_id in dict.fromkeys(r.job for r in rows):
                    names.extend(signups_of(session, township, posting_id))
            return rows, names

    rows, names = _guarded(run)
    if xlsx is not None:
        export_xlsx(xlsx, rows, names, zone=settings.timezone)
    if as_json:
        _emit({"by": "village" if by else "job", "rows": [r.to_json() for r in rows]})
    else:
        if not rows:
            _say("还没有推送或报名记录。" if by else "还没有岗位。")
        else:
            table = Table(title="送岗位统计", box=box.SIMPLE_HEAD, pad_edge=False)
            columns = ["编号", "岗位"] + (["村"] if by else []) + ["推送", "送达", "报名", "排队", "录用", "待确认", "失败"]
            for column in columns:
                table.add_column(column, overflow="fold")
            for r in rows:
                cells = [str(r.job), r.title] + ([r.village or ""] if by else []) + [
                    str(r.pushed), str(r.delivered), str(r.signed_up), str(r.waiting), str(r.hired),
                    str(r.unconfirmed), str(r.failed)]
                table.add_row(*cells)
            console.print(table, markup=False)
    if xlsx is not None:
        _say(f"已导出：{xlsx}", err=as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(jobs_app())
