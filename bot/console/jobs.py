"""岗位 (送岗位, issue 9): postings, pushes with live progress, sign-ups and the funnel, as pages and /api/v1.

Every route is thin: it calls what ``sisong jobs`` calls (``storage.jobs`` for
postings, sign-ups, outcomes and the funnel; ``bot.jobs.start_push`` to write
a push; ``bot.jobs.send_in_background`` to wake the senders), passing the
account's ``Scope``. Those functions refuse what the account may not do
(``OutOfScope`` / ``ReadOnly`` become 403 in ``bot.console.errors``): a village
cadre pushing to another village, or reading its sign-ups, is refused below
the route, so hiding a checkbox on the page is a convenience only.

A push is sent by the queue's consumers (``sisong serve`` / ``sisong worker``),
never in the request: the request writes the delivery rows and returns, and
the page polls ``GET /api/v1/jobs/pushes/{id}`` every 2 s (``static/jobs.js``)
until every row is settled.

Lists never show a whole phone number (as on the 农户 page): the sign-up list
links to the household's own page, where the number is shown to call.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep, Writer, form_csrf
from bot.console.templating import render
from bot.console.uploads import form_flag, read_multipart
from storage import jobs as service
from storage.accounts import Principal
from storage.clock import iso_local
from storage.households import ensure_township, mask_phone
from storage.import_rows import nfkc
from storage.models.jobs import CLOSED, DRAFT, EXPIRED, FULL, OPEN, OUTCOME_LABELS, POSTING_LABELS
from storage.models.org import Area, Village
from storage.pushes import Progress, Targets, TargetError

if TYPE_CHECKING:
    from bot.services import Services

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["岗位"])

MAX_ID = 2_147_483_647  # the columns are 32-bit integers: a larger number is simply not found
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
TOO_LARGE = "文件太大了（最多 5 MB）。岗位表一般很小，请检查是不是选错了文件。"
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="岗位编号")]
PushId = Annotated[int, Path(ge=1, le=MAX_ID, description="推送编号（推送时返回的 push）")]
BADGES = {OPEN: "ok", FULL: "warn", DRAFT: "", EXPIRED: "bad", CLOSED: "bad"}
NOT_FOUND = "没有这个岗位，可能编号不对。"


# -- shared by pages and API ----------------------------------------------------------------------

def _township(session: Session, services: "Services") -> int:
    return ensure_township(session, services.settings.township).id


def _view(services: "Services", job_id: int) -> service.PostingView:
    with services.db.session() as session:
        view = service.posting_view(session, _township(session, services), job_id, services.settings.timezone)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return view


def _unprocessable(exc: Exception) -> HTTPException:
    return HTTPException(422, str(exc))


def _create(services: "Services", user: Principal, data: service.JobInput, draft: bool) -> int:
    with services.db.session() as session:
        posting = service.add_posting(session, _township(session, services), data, draft=draft, actor=user,
                                      scope=user.scope, zone=services.settings.timezone)
        return posting.id


def _close(services: "Services", user: Principal, job_id: int) -> None:
    _view(services, job_id)  # 404 before "already closed"
    try:
        with services.db.session() as session:
            service.close_posting(session, _township(session, services), job_id, actor=user, scope=user.scope)
    except service.JobError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


def _push(services: "Services", user: Principal, job_id: int, targets: Targets) -> tuple[int, int, dict[str, int]]:
    """Write the push (scope-checked in ``storage.jobs.create_job_push``) and wake the senders.

    Returns (push id, recipients, skipped by reason). A closed, expired or full
    posting is a 409; unknown or missing targets a 422.
    """
    from bot.jobs import send_in_background, start_push

    _view(services, job_id)
    try:
        _, created = start_push(services, job_id, targets, actor=user, scope=user.scope)
    except TargetError as exc:
        raise _unprocessable(exc) from None
    except service.JobError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    send_in_background(services)
    return created.push.id, created.recipients, dict(created.skipped)


def _targets(villages: list[str], areas: list[str], everyone: bool, labour_only: bool) -> Targets:
    """What the form or the JSON chose, cleaned as the CLI cleans its options (NFKC, no blanks, no repeats)."""
    def clean(names: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(nfkc(n) for n in names if nfkc(n)))

    return Targets(clean(villages), clean(areas), everyone, labour_only)


def _progress(services: "Services", user: Principal, push_id: int) -> Progress:
    with services.db.session() as session:
        state = service.push_progress(session, _township(session, services), push_id, scope=user.scope,
                                      user_id=user.id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "没有这次推送，可能编号不对。")
    return state


def _signups(services: "Services", user: Principal, job_id: int) -> list[service.SignupView]:
    """The sign-ups of the households this account sees, phones masked (the household page has them whole)."""
    _view(services, job_id)
    with services.db.session() as session:
        views = service.signups_of(session, _township(session, services), job_id, scope=user.scope)
    return [replace(v, phone=mask_phone(v.phone) if v.phone else None) for v in views]


def _outcome(services: "Services", user: Principal, job_id: int, number: str, outcome: str) -> str:
    _view(services, job_id)
    try:
        with services.db.session() as session:
            row = service.record_outcome(session, _township(session, services), job_id, number, outcome,
                                         actor=user, scope=user.scope)
            return row.outcome or ""
    except service.JobError as exc:
        raise _unprocessable(exc) from None


def _funnel(services: "Services", user: Principal, job_id: int | None, by_village: bool) -> list[service.FunnelRow]:
    if job_id is not None:
        _view(services, job_id)
    with services.db.session() as session:
        return service.funnel(session, _township(session, services), job_id, by_village=by_village,
                              scope=user.scope)


def target_choices(services: "Services", user: Principal) -> dict[str, Any]:
    """The villages and areas this account may push to, for the targeting form.

    Only villages the account covers whole (``Scope.covers_village``), and an
    area only when every village in it is covered; 全镇 only for the township.
    The service checks the same again on submit.
    """
    with services.db.session() as session:
        township_id = _township(session, services)
        villages = list(session.execute(select(Village.id, Village.name, Village.area_id)
                                        .where(Village.township_id == township_id).order_by(Village.id)))
        areas = list(session.execute(select(Area.id, Area.name).where(Area.township_id == township_id)
                                     .order_by(Area.id)))
    scope = user.scope
    mine = [(name, area_id) for vid, name, area_id in villages if scope.covers_village(vid)]
    area_names = []
    for area_id, name in areas:
        members = [vid for vid, _, a in villages if a == area_id]
        if members and all(scope.covers_village(v) for v in members):
            area_names.append(name)
    return {"village_choices": [name for name, _ in mine], "area_choices": area_names,
            "can_push_all": scope.everything}


# -- API models -----------------------------------------------------------------------------------

class JobErrorOut(BaseModel):
    detail: str = Field(description="中文说明")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": JobErrorOut, "description": "没有登录"},
    403: {"model": JobErrorOut, "description": "不在您负责的范围内，或账号只能查看"},
    404: {"model": JobErrorOut, "description": "没有这个编号"},
    409: {"model": JobErrorOut, "description": "岗位的状态不允许（已关闭、已截止、已招满）"},
    422: {"model": JobErrorOut, "description": "填写的内容不对"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


class JobIn(BaseModel):
    title: str = Field(min_length=1, max_length=64, description="岗位名称，如 电子厂普工")
    employer: str = Field(min_length=1, max_length=64, description="用工单位")
    location: str = Field(min_length=1, max_length=64, description="工作地点")
    salary: str = Field(min_length=1, max_length=64, description="薪资，照写，如 4500-6000元/月")
    headcount: int = Field(ge=1, le=service.MAX_HEADCOUNT, description="招聘人数")
    contact: str = Field(min_length=1, max_length=128, description="联系人和电话（报名成功后告诉住户）")
    requirements: str = Field("", max_length=500, description="岗位要求（年龄、技能…）")
    deadline: str | None = Field(None, max_length=32, description="报名截止日期 YYYY-MM-DD；不填就是招满为止")
    draft: bool = Field(False, description="先存为草稿，推送时再发布")


class JobOut(BaseModel):
    id: int
    title: str
    employer: str
    location: str
    salary: str
    headcount: int
    requirements: str
    contact: str
    deadline: str | None = Field(description="报名截止日期（YYYY-MM-DD），null 为招满为止")
    status: Literal["draft", "open", "full", "expired", "closed"]
    status_label: str = Field(description="草稿、已发布、已满、已截止、已关闭")
    signed: int = Field(description="已报名的户数（不含排队）")
    waiting: int = Field(description="排队的户数")
    created_at: str | None
    published_at: str | None
    closed_at: str | None


class JobList(BaseModel):
    items: list[JobOut] = Field(description="岗位，新的在前")


class JobFunnelRow(BaseModel):
    job: int
    title: str
    village: str | None = Field(None, description="按村统计时的村名")
    pushed: int = Field(description="推送人数（不含跳过的）")
    delivered: int = Field(description="送达：微信已接收")
    signed_up: int = Field(description="报名：已报名 + 排队")
    hired: int
    waiting: int
    rejected: int
    no_show: int
    unconfirmed: int = Field(description="待确认：不知道住户有没有收到，不会再发")
    failed: int


class JobProgressOut(BaseModel):
    push: int
    job: int
    recipients: int = Field(description="这次推送的对象人数")
    sent: int = Field(description="微信已接收")
    delivered: int = Field(description="其中模板消息回执说已送达的")
    failed: int = Field(description="失败（含无法送达）")
    unreachable: int = Field(description="无法送达（超过 48 小时又没有模板）")
    unconfirmed: int = Field(description="待确认")
    skipped: int = Field(description="跳过：之前推送过、已取消关注、已退订等")
    pending: int = Field(description="还在等待发送")
    finished: bool


class JobPushOut(BaseModel):
    push: int
    created_at: str | None
    actor: str = Field(description="推送人")
    targets: str = Field(description="推送范围（中文）")
    progress: JobProgressOut


class JobDetailOut(BaseModel):
    job: JobOut
    villages: list[str] = Field(description="推送过的村")
    pushes: list[JobPushOut] = Field(description="您能看到的推送，新的在前")
    funnel: list[JobFunnelRow] = Field(description="按村：推送 → 送达 → 报名 → 录用（您范围内的村）")


class JobPushIn(BaseModel):
    villages: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=500, description="村名")
    areas: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=100, description="片区名")
    all: bool = Field(False, description="全镇（只有镇管理员）")
    labour_only: bool = Field(False, description="只推劳动力人数大于 0 的户")


class JobPushStarted(BaseModel):
    job: int
    push: int
    recipients: int = Field(description="这次推送的对象人数（不含之前推过的）")
    skipped: dict[str, int] = Field(description="推送时跳过的人数，按原因：already、unsubscribed、opted_out、not_following")
    progress_url: str = Field(description="查看进度的接口")


class JobSignupOut(BaseModel):
    job: int
    number: str = Field(description="户编号")
    head_name: str = Field(description="户主")
    village: str
    hamlet: str | None = Field(description="组")
    phone: str | None = Field(description="遮住中间几位；完整号码在农户页")
    status: Literal["signed", "waiting", "cancelled"]
    status_label: str
    position: int | None = Field(description="排队第几位")
    via: str = Field(description="chat 住户自己报名，cadre 干部代报")
    signed_at: str | None
    outcome: Literal["hired", "rejected", "no_show"] | None
    outcome_label: str | None = Field(description="录用、未录用、未到岗")
    outcome_at: str | None


class JobSignupList(BaseModel):
    items: list[JobSignupOut] = Field(description="已报名的在前，再是排队的（您范围内的户）")


class JobOutcomeIn(BaseModel):
    household: str = Field(min_length=1, max_length=64, description="户编号")
    outcome: str = Field(min_length=1, max_length=16, description="录用、未录用 或 未到岗")


class JobOutcomeOut(BaseModel):
    job: int
    household: str
    outcome: Literal["hired", "rejected", "no_show"]
    outcome_label: str


class JobReportOut(BaseModel):
    by: Literal["job", "village"]
    rows: list[JobFunnelRow]


class JobImportRowError(BaseModel):
    line: int | None = Field(description="Excel 里的行号；整个文件或表头的问题时为 null")
    sheet: str | None
    reason: str
    columns: list[dict[str, str]]


class JobImportOut(BaseModel):
    detail: str = Field(description="一句话结果")
    ok: bool
    dry_run: bool
    rows: int = Field(description="检查通过的岗位数")
    created: list[int] = Field(description="新增岗位的编号（只检查时为空）")
    existing: list[int] = Field(default_factory=list, description="表里与还没关闭的岗位相同、没有重复添加的岗位编号")
    errors: list[JobImportRowError]
    warnings: list[str]


def _job_out(view: service.PostingView, zone: str) -> dict[str, Any]:
    return view.to_json(zone)


def _progress_out(state: Progress) -> dict[str, Any]:
    data = state.to_json()
    return {"job": state.ref_id, **{k: data[k] for k in ("push", "recipients", "sent", "delivered", "failed",
                                                           "unreachable", "unconfirmed", "skipped", "pending",
                                                           "finished")}}


def _describe(raw: str) -> str:
    from bot.jobs import _targets_of

    return _targets_of(raw).describe()


# -- API ------------------------------------------------------------------------------------------

@api.get("/jobs", response_model=JobList, responses=_errors(401, 422), summary="岗位列表")
def api_list(services: ServicesDep, user: CurrentUser,
             status_: Annotated[Literal["draft", "open", "full", "expired", "closed"] | None,
                                Query(alias="status", description="只看一种状态")] = None) -> dict[str, Any]:
    """All postings, newest first (postings are township-wide; every account sees them)."""
    with services.db.session() as session:
        views = service.list_postings(session, _township(session, services),
                                      statuses=[status_] if status_ else None, zone=services.settings.timezone)
    return {"items": [_job_out(v, services.settings.timezone) for v in views]}


@api.post("/jobs", response_model=JobOut, status_code=201, responses=_errors(401, 403, 422), summary="新增岗位")
def api_create(services: ServicesDep, user: ApiCsrf, body: JobIn) -> dict[str, Any]:
    """A new posting, published at once (or a draft with ``draft``); the same rules as ``sisong jobs add``."""
    data = service.JobInput(title=body.title, employer=body.employer, location=body.location, salary=body.salary,
                            headcount=body.headcount, contact=body.contact, requirements=body.requirements,
                            deadline=body.deadline)
    try:
        job_id = _create(services, user, data, body.draft)
    except service.JobError as exc:
        raise _unprocessable(exc) from None
    return _job_out(_view(services, job_id), services.settings.timezone)


_IMPORT_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV 或 .xlsx 文件，最多 5 MB"},
        "dry_run": {"type": "boolean", "default": True, "description": "true（默认）只检查并报告，不写入"},
        "draft": {"type": "boolean", "default": False, "description": "导入为草稿"}}}}}}


@api.post("/jobs/import", response_model=JobImportOut, summary="导入岗位（默认只检查）",
          responses={**_errors(401, 403), 422: {"model": JobImportOut, "description": "有行出错：什么也没导入"},
                     413: {"description": "文件太大"}, 415: {"description": "不是 multipart/form-data"}},
          openapi_extra={"requestBody": _IMPORT_BODY})
async def api_import(request: Request, services: ServicesDep, user: ApiCsrf, _writer: Writer) -> Response:
    """Check (``dry_run``, the default) or import postings; the same rules and report as ``sisong jobs import``.

    All or nothing: 422 with every bad row in ``errors`` when any row is wrong.
    """
    form = await read_multipart(request, field_name="file", max_bytes=MAX_UPLOAD_BYTES, too_big=TOO_LARGE)
    if not form.has_file:
        raise HTTPException(422, "填写的内容不对：file：必须填写。")
    upload = form.file
    report = await run_in_threadpool(
        _import, services, user, upload.data if upload else b"", upload.name if upload else "",
        form_flag(form.fields, "dry_run", True), form_flag(form.fields, "draft", False))
    return JSONResponse({"detail": _import_summary(report), **report.to_json()},
                        status_code=200 if report.ok else 422)


def _import(services: "Services", user: Principal, data: bytes, filename: str, dry_run: bool,
            draft: bool) -> service.JobImportReport:
    with services.db.session() as session:
        report = service.import_postings(session, _township(session, services), data, filename=filename or None,
                                         dry_run=dry_run, draft=draft, actor=user, scope=user.scope,
                                         zone=services.settings.timezone)
        if not report.ok:
            session.rollback()
        return report




def _import_summary(report: service.JobImportReport) -> str:
    if not report.ok:
        rows = len({(e.sheet, e.line) for e in report.errors})
        return f"有 {rows} 处问题，没有导入任何内容。请改好后重新上传。"
    if report.dry_run:
        return f"检查通过（没有写入）：{report.rows} 个岗位。"
    again = f"，{len(report.existing)} 个已经有了（没有重复添加）" if report.existing else ""
    return f"导入完成：新增 {len(report.created)} 个岗位{again}。"


@api.get("/jobs/report", response_model=JobReportOut, summary="送岗位统计（可下载 Excel）",
         responses={**_errors(401, 404, 422), 200: {"content": {
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}})
def api_report(services: ServicesDep, user: CurrentUser,
               job: Annotated[int | None, Query(ge=1, le=MAX_ID, description="只看这个岗位")] = None,
               by: Annotated[Literal["job", "village"], Query(description="village：按岗位和村")] = "job",
               format_: Annotated[Literal["json", "xlsx"], Query(alias="format")] = "json") -> Any:
    """推送 → 送达 → 报名 → 录用, per posting (or per posting and village), over the caller's villages.

    ``format=xlsx`` downloads the same as ``sisong jobs report --xlsx``: a 统计
    sheet and a 报名名单 sheet (the caller's households, phones masked).
    """
    rows = _funnel(services, user, job, by == "village")
    if format_ == "json":
        return {"by": by, "rows": [r.to_json() for r in rows]}
    names: list[service.SignupView] = []
    for posting_id in dict.fromkeys(r.job for r in rows):
        names.extend(_signups(services, user, posting_id))
    with tempfile.TemporaryDirectory() as tmp:
        path = service.export_xlsx(FilePath(tmp) / "report.xlsx", rows, names, zone=services.settings.timezone)
        content = path.read_bytes()
    filename = "送岗位统计.xlsx" if job is None else f"岗位{job}统计.xlsx"
    return Response(content, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=report.xlsx; filename*=UTF-8''{quote(filename)}",
                             "Cache-Control": "no-store"})


@api.get("/jobs/pushes/{push_id}", response_model=JobProgressOut, responses=_errors(401, 403, 404),
         summary="推送进度")
def api_progress(services: ServicesDep, user: CurrentUser, push_id: PushId) -> dict[str, Any]:
    """How far a push is: recipients, sent, failed, 待确认, skipped, still pending; ``finished`` when settled."""
    return _progress_out(_progress(services, user, push_id))


@api.get("/jobs/{job_id}", response_model=JobDetailOut, responses=_errors(401, 404), summary="一个岗位")
def api_get(services: ServicesDep, user: CurrentUser, job_id: JobId) -> dict[str, Any]:
    """The posting, the villages it went to, the pushes the caller may follow, and the funnel by village."""
    return _detail(services, user, job_id)


def _detail(services: "Services", user: Principal, job_id: int) -> dict[str, Any]:
    zone = services.settings.timezone
    view = _view(services, job_id)
    with services.db.session() as session:
        township_id = _township(session, services)
        names = dict(session.execute(select(Village.id, Village.name).where(Village.township_id == township_id)).all())
        pushes = service.pushes_of(session, township_id, job_id, scope=user.scope, user_id=user.id)
        push_rows = [{"push": p.id, "created_at": iso_local(p.created_at, zone), "actor": p.actor,
                      "targets": _describe(p.targets), "progress": _progress_out(state)} for p, state in pushes]
    return {"job": _job_out(view, zone), "villages": [names[v] for v in view.village_ids if v in names],
            "pushes": push_rows, "funnel": [r.to_json() for r in _funnel(services, user, job_id, True)]}


@api.post("/jobs/{job_id}/close", response_model=JobOut, responses=_errors(401, 403, 404, 409), summary="关闭岗位")
def api_close(services: ServicesDep, user: ApiCsrf, job_id: JobId) -> dict[str, Any]:
    """住户看不到了，不能再报名；还没发出的推送不再发。"""
    _close(services, user, job_id)
    return _job_out(_view(services, job_id), services.settings.timezone)


@api.post("/jobs/{job_id}/push", response_model=JobPushStarted, status_code=202, responses=ERRORS,
          summary="推送岗位")
def api_push(services: ServicesDep, user: ApiCsrf, job_id: JobId, body: JobPushIn) -> dict[str, Any]:
    """Push to the bound followers of these villages / areas (or 全镇), each follower once per posting.

    Village and area cadres may push only to villages they cover (403
    otherwise); 全镇 is for the township's accounts. Sending happens in the
    background: follow ``progress_url``.
    """
    push_id, recipients, skipped = _push(services, user, job_id,
                                         _targets(body.villages, body.areas, body.all, body.labour_only))
    return {"job": job_id, "push": push_id, "recipients": recipients, "skipped": skipped,
            "progress_url": f"/api/v1/jobs/pushes/{push_id}"}


@api.get("/jobs/{job_id}/signups", response_model=JobSignupList, responses=_errors(401, 404),
         summary="报名名单")
def api_signups(services: ServicesDep, user: CurrentUser, job_id: JobId) -> dict[str, Any]:
    """The households of the caller's scope that signed up (or wait), with outcomes; phones masked."""
    zone = services.settings.timezone
    return {"items": [v.to_json(zone) for v in _signups(services, user, job_id)]}


@api.post("/jobs/{job_id}/outcome", response_model=JobOutcomeOut, responses=_errors(401, 403, 404, 422),
          summary="记录报名结果")
def api_outcome(services: ServicesDep, user: ApiCsrf, job_id: JobId, body: JobOutcomeIn) -> dict[str, Any]:
    """录用 / 未录用 / 未到岗 for a household that signed up (one of the caller's households)."""
    key = _outcome(services, user, job_id, body.household, body.outcome)
    return {"job": job_id, "household": nfkc(body.household), "outcome": key, "outcome_label": OUTCOME_LABELS[key]}


# -- pages ----------------------------------------------------------------------------------------

FORM_FIELDS = ("title", "employer", "location", "salary", "headcount", "contact", "requirements", "deadline")


def _list_page(request: Request, services: "Services", user: Principal, code: int = 200,
               flashes: list[tuple[str, str]] | None = None, **context: Any) -> Response:
    with services.db.session() as session:
        views = service.list_postings(session, _township(session, services), zone=services.settings.timezone)
    return render(request, "jobs.html", user, code, postings=views, badges=BADGES, flashes=flashes or [],
                  form=context.pop("form", {}), report=context.pop("report", None), **context)


@pages.get("/jobs", response_class=HTMLResponse)
def list_page(request: Request, services: ServicesDep, user: PageUser) -> Response:
    """岗位: the postings (status, deadline, places), and forms to add or import postings."""
    return _list_page(request, services, user)


@pages.post("/jobs", response_class=HTMLResponse)
def create_form(
    request: Request, services: ServicesDep, user: Csrf,
    title: Annotated[str, Form(max_length=200)] = "", employer: Annotated[str, Form(max_length=200)] = "",
    location: Annotated[str, Form(max_length=200)] = "", salary: Annotated[str, Form(max_length=200)] = "",
    headcount: Annotated[str, Form(max_length=20)] = "", contact: Annotated[str, Form(max_length=300)] = "",
    requirements: Annotated[str, Form(max_length=2000)] = "", deadline: Annotated[str, Form(max_length=32)] = "",
    draft: Annotated[bool, Form()] = False,
) -> Response:
    """Add a posting; on a mistake show the page again with every problem and what was typed."""
    form = {"title": title, "employer": employer, "location": location, "salary": salary, "headcount": headcount,
            "contact": contact, "requirements": requirements, "deadline": deadline, "draft": draft}
    data = service.JobInput(title=title, employer=employer, location=location, salary=salary,
                            headcount=headcount or "", contact=contact, requirements=requirements,
                            deadline=deadline or None)
    try:
        job_id = _create(services, user, data, draft)
    except service.JobError as exc:
        return _list_page(request, services, user, 422, [("error", str(exc))], form=form, open_create=True)
    return RedirectResponse(f"/console/jobs/{job_id}?done=created", status.HTTP_303_SEE_OTHER)


@pages.post("/jobs/import", response_class=HTMLResponse)
async def import_form(request: Request, services: ServicesDep, user: PageUser, _writer: Writer) -> Response:
    """Import postings from an XLSX/CSV: every row checked; one bad row and nothing is written."""
    form = await read_multipart(request, field_name="file", max_bytes=MAX_UPLOAD_BYTES, too_big=TOO_LARGE)
    form_csrf(user, form.fields.get("csrf", ""))
    upload = form.file
    if upload is None or not upload.data:
        return _list_page(request, services, user, 400, [("error", "请先选择要导入的文件（.xlsx 或 .csv）。")],
                          open_import=True)
    draft = form_flag(form.fields, "draft", False)
    dry_run = form_flag(form.fields, "dry_run", False)
    report = await run_in_threadpool(_import, services, user, upload.data, upload.name, dry_run, draft)
    kind = "ok" if report.ok else "error"
    return _list_page(request, services, user, 200 if report.ok else 422, [(kind, _import_summary(report))],
                      report=report, filename=upload.name, open_import=not report.ok)


def _detail_page(request: Request, services: "Services", user: Principal, job_id: int, code: int = 200,
                 flashes: list[tuple[str, str]] | None = None, watch: int | None = None) -> Response:
    detail = _detail(services, user, job_id)
    view = _view(services, job_id)
    signups = _signups(services, user, job_id)
    watched = None
    if watch is not None:
        watched = next((p for p in detail["pushes"] if p["push"] == watch), None)
    if watched is None:  # the newest push still sending, so a reload keeps showing it
        watched = next((p for p in detail["pushes"] if not p["progress"]["finished"]), None)
    can_push = user.scope.writable and view.status in (DRAFT, OPEN)
    return render(request, "jobs_detail.html", user, code, view=view, detail=detail, signups=signups,
                  watched=watched, badges=BADGES, flashes=flashes or [], can_push=can_push,
                  can_write=user.scope.writable, outcome_labels=OUTCOME_LABELS, posting_labels=POSTING_LABELS,
                  **(target_choices(services, user) if can_push else {}))


_DONE = {"created": "岗位已发布。下面可以选村推送。", "draft": "已存为草稿（推送时自动发布）。",
         "closed": "岗位已关闭：住户看不到了，还没发出的推送不再发。", "outcome": "结果已记录。"}


@pages.get("/jobs/{job_id}", response_class=HTMLResponse)
def detail_page(request: Request, services: ServicesDep, user: PageUser, job_id: JobId,
                done: Annotated[Literal["created", "draft", "closed", "outcome", "pushed"] | None, Query()] = None,
                push: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    """One posting: details, targeting and push, live progress, results per village, sign-ups."""
    flashes = []
    if done == "created" and _view(services, job_id).status == DRAFT:
        done = "draft"
    if done in _DONE:
        flashes.append(("ok", _DONE[done]))
    return _detail_page(request, services, user, job_id, flashes=flashes, watch=push)


def _refused(request: Request, services: "Services", user: Principal, job_id: int, exc: HTTPException) -> Response:
    """The posting again with the reason, for refusals the cadre can fix on the page (not 403/404)."""
    if exc.status_code in (status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND):
        raise exc
    return _detail_page(request, services, user, job_id, exc.status_code, [("error", str(exc.detail))])


@pages.post("/jobs/{job_id}/close")
def close_form(request: Request, services: ServicesDep, user: Csrf, job_id: JobId) -> Response:
    try:
        _close(services, user, job_id)
    except HTTPException as exc:
        return _refused(request, services, user, job_id, exc)
    return RedirectResponse(f"/console/jobs/{job_id}?done=closed", status.HTTP_303_SEE_OTHER)


@pages.post("/jobs/{job_id}/push")
def push_form(
    request: Request, services: ServicesDep, user: Csrf, job_id: JobId,
    village: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    area: Annotated[list[str], Form()] = [],  # noqa: B006
    everyone: Annotated[bool, Form(alias="all")] = False,
    labour_only: Annotated[bool, Form()] = False,
) -> Response:
    """Start a push and come back to the posting, which then shows its progress live."""
    try:
        push_id, _, _ = _push(services, user, job_id, _targets(village, area, everyone, labour_only))
    except HTTPException as exc:
        return _refused(request, services, user, job_id, exc)
    return RedirectResponse(f"/console/jobs/{job_id}?push={push_id}#push-progress", status.HTTP_303_SEE_OTHER)


@pages.post("/jobs/{job_id}/outcome")
def outcome_form(request: Request, services: ServicesDep, user: Csrf, job_id: JobId,
                 household: Annotated[str, Form(max_length=64)] = "",
                 outcome: Annotated[str, Form(max_length=16)] = "") -> Response:
    try:
        _outcome(services, user, job_id, household, outcome)
    except HTTPException as exc:
        return _refused(request, services, user, job_id, exc)
    return RedirectResponse(f"/console/jobs/{job_id}?done=outcome#signups", status.HTTP_303_SEE_OTHER)
