"""农户: the households' pages under /console/households and their API under /api/v1/households.

Every route is thin: it calls the service functions the CLI calls
(``storage.households`` to read, ``storage.org_import`` to import,
``storage.binding`` for codes, ``bot.binding_sheet`` for labels), passing the
account's ``Scope``. Those functions refuse what the account may not see or
change (``OutOfScope`` / ``ReadOnly`` become 403 in ``bot.console.errors``),
so a page that hides a link is a convenience, never the protection.

What is shown of a household: everything to an account whose scope includes
it, except that free text never shows an ID or bank number, and lists (many
households at once, or a script's bulk download) mask phones
(``HouseholdView.shown``). Members' WeChat ids are always shortened.

Importing from a page takes two steps, so nothing is written before the
cadre has read the row-by-row report: the upload is checked (a dry run) and,
when clean, kept server-side under a random key for its uploader only
(``storage.uploads``); 确认导入 applies exactly that content after checking
it again. The API does the same in one call per step: ``dry_run=true`` (the
default) reports, ``dry_run=false`` imports if every row is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep, Writer, form_csrf
from bot.console.templating import render
from bot.console.uploads import form_flag, read_multipart
from knowledge.store.unanswered import STATES, state_of
from storage.accounts import Principal
from storage.clock import iso_local
from storage.households import (
    HouseholdDetail,
    HouseholdPage,
    binding_status,
    ensure_township,
    household_detail,
    mask_phone,
    search_households,
    visible_village,
    visible_villages,
)
from storage.org_import import (
    FIELD_LABELS,
    MAX_UPLOAD_BYTES,
    TOO_LARGE,
    ImportReport,
    apply_households_upload,
    check_households_upload,
    import_households_file,
)

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["农户"])

PER_PAGE = 30  # a page of the list: enough to scroll on a phone, few enough to load on a village's 4G
MAX_PER_PAGE = 200
Search = Annotated[str | None, Query(max_length=64, description="户编号、户主姓名、组、村或电话的一部分；张＊＊ 按姓名样子找")]
VillageName = Annotated[str | None, Query(max_length=64, description="只看这个村（村名）")]


# -- reading ---------------------------------------------------------------------------------------

def _search(services: ServicesDep, user: Principal, *, village: str | None, q: str | None, bound: bool | None,
            page: int, per_page: int | None) -> tuple[HouseholdPage, list[str]]:
    """One page of the households the account sees, and the villages its filter may offer.

    A village the account does not see is a 403 (``visible_village``), not an
    empty list: an empty answer would look like "no households there" to a
    script, which is wrong, and 403 says plainly whose village it is not.
    """
    with services.db.session() as session:
        township_id = ensure_township(session, services.settings.township).id
        village_id = None
        if village and village.strip():
            found = visible_village(session, township_id, village, user.scope)
            if found is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有村「{village.strip()}」。")
            village_id = found.id
        result = search_households(session, township_id, user.scope, village_id=village_id, q=q, bound=bound,
                                   page=page, per_page=per_page)
        return result, visible_villages(session, township_id, user.scope)


def _detail(services: ServicesDep, user: Principal, number: str) -> HouseholdDetail:
    with services.db.session() as session:
        township_id = ensure_township(session, services.settings.township).id
        detail = household_detail(session, township_id, number, user.scope)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有户编号为 {number.strip()} 的户。")
    return detail


def _handover_state(status_value: str, delivery: str | None) -> tuple[str, str]:
    """(key, 中文) of a hand-over, as the 待答问题 page and ``sisong unanswered list`` name it."""
    state = state_of(status_value, delivery)
    return state, STATES[state]


def _bound_filter(value: str | None) -> bool | None:
    return {"1": True, "0": False}.get(value or "")


# -- importing -------------------------------------------------------------------------------------

@dataclass
class _Form:
    """A multipart form as read: the file's bytes and own name, and the other fields."""

    data: bytes
    filename: str
    fields: dict[str, str]
    has_file: bool


async def _read_form(request: Request) -> _Form:
    """The one file (field ``file``) and the form's fields, counted as they arrive (``bot.console.uploads``)."""
    form = await read_multipart(request, field_name="file", max_bytes=MAX_UPLOAD_BYTES, too_big=TOO_LARGE)
    upload = form.file
    return _Form(upload.data if upload else b"", upload.name if upload else "", form.fields, form.has_file)




def _report_view(report: ImportReport) -> dict[str, Any]:
    """What the report template needs beyond the report: column names in Chinese, masked phones."""
    return {
        "changes": [(c.number, "、".join(FIELD_LABELS.get(f, f) for f in c.fields)) for c in report.changes],
        "created_cadres": [f"{name}（{mask_phone(phone)}）" if phone else name
                           for name, phone in report.created_cadres],
        "created_hamlets": [f"{village}{hamlet}" for village, hamlet in report.created_hamlets],
    }


# -- pages -----------------------------------------------------------------------------------------

@pages.get("/households", response_class=HTMLResponse)
def list_page(request: Request, services: ServicesDep, user: PageUser, village: VillageName = None,
              q: Search = None, bound: Annotated[str | None, Query(max_length=1)] = None,
              page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    """农户: search and filter the households the account sees, one phone-sized card each."""
    result, villages = _search(services, user, village=village, q=q, bound=_bound_filter(bound), page=page,
                               per_page=PER_PAGE)
    filters = {k: v for k, v in (("village", village or ""), ("q", q or ""), ("bound", bound or "")) if v}

    def page_url(number: int) -> str:
        return "/console/households?" + urlencode({**filters, "page": number})

    return render(request, "households.html", user, result=result,
                  items=[view.shown(in_list=True) for view in result.items], villages=villages,
                  village=village or "", q=q or "", bound=bound or "",
                  prev_url=page_url(result.page - 1) if result.page > 1 else None,
                  next_url=page_url(result.page + 1) if result.page < result.pages else None)


@pages.get("/households/import", response_class=HTMLResponse)
def import_page(request: Request, user: PageUser) -> Response:
    """The upload form (read-only accounts are told they cannot import)."""
    return render(request, "households_import.html", user, report=None)


@pages.post("/households/import", response_class=HTMLResponse)
async def import_check(request: Request, services: ServicesDep, user: PageUser, _writer: Writer) -> Response:
    """Step 1: check the uploaded file row by row and show the report; keep it if it is clean."""
    form = await _read_form(request)
    form_csrf(user, form.fields.get("csrf", ""))
    create_missing = form_flag(form.fields, "create_missing", False)
    if not form.data and not form.filename:
        return render(request, "households_import.html", user, 400, report=None,
                      flashes=[("error", "请先选择要导入的文件（.xlsx 或 .csv）。")])
    checked = await run_in_threadpool(
        lambda: check_households_upload(services.db, services.settings.township, form.data, form.filename,
                                        scope=user.scope, user_id=user.id, create_missing=create_missing))
    return render(request, "households_import.html", user, report=checked.report, key=checked.key,
                  filename=checked.filename, create_missing=create_missing, **_report_view(checked.report))


@pages.post("/households/import/apply", response_class=HTMLResponse)
def import_apply(request: Request, services: ServicesDep, user: Csrf,
                 key: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Step 2 (确认导入): import exactly the checked file, checked once more; then say what was done."""
    applied = apply_households_upload(services.db, services.settings.township, key, scope=user.scope, actor=user)
    report = applied.report
    return render(request, "households_import.html", user, report=report, key=None, filename=applied.filename,
                  applied=report.ok, **_report_view(report))


@pages.get("/households/binding", response_class=HTMLResponse)
def binding_page(request: Request, services: ServicesDep, user: PageUser) -> Response:
    """绑定情况: per village, how many households have a member bound and how many have a code."""
    return _binding_page(request, services, user)


def _binding_page(request: Request, services: ServicesDep, user: Principal, code: int = 200,
                  flashes: list[tuple[str, str]] | None = None) -> Response:
    with services.db.session() as session:
        rows = binding_status(session, ensure_township(session, services.settings.township).id, user.scope)
    totals = {key: sum(getattr(r, key) for r in rows) for key in ("households", "bound", "coded")}
    return render(request, "households_binding.html", user, code, rows=rows, totals=totals,
                  flashes=flashes or [])


@pages.post("/households/codes", response_class=HTMLResponse)
def codes_page(request: Request, services: ServicesDep, user: Csrf,
               village: Annotated[str, Form(max_length=64)] = "") -> Response:
    """生成绑定码 for the households of a village (those the account sees) that have none."""
    issued = _issue_codes(services, user, village or None)
    where = village or "您负责的户"
    text = f"{where}：新发绑定码 {issued} 户，可以打印标签了。" if issued else f"{where}的户都已经有绑定码了。"
    return _binding_page(request, services, user, flashes=[("ok", text)])


def _issue_codes(services: ServicesDep, user: Principal, village: str | None) -> int:
    from storage.binding import BindingError, issue_codes

    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        try:
            return len(issue_codes(session, township, village, scope=user.scope, actor=user))
        except BindingError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@pages.get("/households/labels", response_class=HTMLResponse)
def labels_page(services: ServicesDep, user: PageUser, village: VillageName = None) -> Response:
    """打印绑定标签: the same A4 sheet ``sisong households codes --out`` writes, for one village (or all seen)."""
    from bot.binding_sheet import sheet_for
    from storage.binding import BindingError, households_in_scope

    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        try:
            households = households_in_scope(session, township, village or None, user.scope)
        except BindingError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        html, _count = sheet_for(households, village or None)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@pages.get("/households/{number}", response_class=HTMLResponse)
def household_page(request: Request, services: ServicesDep, user: PageUser, number: str) -> Response:
    """One household: registration, helper, members bound, what they asked, hand-overs."""
    detail = _detail(services, user, number)
    handovers = [(h, *_handover_state(h.status, h.delivery)) for h in detail.handovers]
    return render(request, "households_detail.html", user, detail=detail, view=detail.view.shown(in_list=False),
                  handovers=handovers)


# -- API -------------------------------------------------------------------------------------------

class HouseholdOut(BaseModel):
    """A household as the API shows it (docs/households.md lists the keys; times ISO 8601 with offset)."""

    number: str
    head_name: str
    village: str
    area: str | None = None
    hamlet: str | None = None
    population: int | None = None
    labourers: int | None = None
    work_intent: str | None = None
    helper_name: str | None = None
    helper_phone: str | None = Field(None, description="列表里遮住中间几位")
    team: str | None = None
    monitored: bool
    lifted: bool
    phone: str | None = Field(None, description="列表里遮住中间几位")
    code_status: str = Field(description="issued 已生成绑定码，none 未生成")
    code_issued_at: str | None = None
    bound_members: int
    created_at: str | None = None
    updated_at: str | None = None


class HouseholdList(BaseModel):
    items: list[HouseholdOut]
    total: int = Field(description="符合条件的户数（所有页）")
    page: int
    per_page: int
    pages: int


class MemberOut(BaseModel):
    openid: str = Field(description="缩短的 openid（只用来区分家里的几个人）")
    via: str = Field(description="code 绑定码，qr 扫码")
    bound_at: str | None
    following: bool


class QuestionOut(BaseModel):
    at: str | None
    member: str
    text: str
    kind: str
    reply: str


class HandOverOut(BaseModel):
    id: int
    at: str | None
    member: str
    question: str
    state: str = Field(description="open / answered_delivered / answered_pending / answered_failed / closed")
    state_label: str
    reply: str | None = None
    replied_by: str | None = None
    answered_at: str | None = None
    closed_at: str | None = None


class HouseholdDetailOut(BaseModel):
    household: HouseholdOut
    members: list[MemberOut]
    questions: list[QuestionOut] = Field(description="家人发来的消息，最新的在前，最多 20 条")
    handovers: list[HandOverOut] = Field(description="转人工的问题，最新的在前")


class VillageBindingOut(BaseModel):
    village: str
    area: str | None
    households: int
    bound: int
    unbound: int
    share: float
    codes_issued: int


class BindingStatusOut(BaseModel):
    villages: list[VillageBindingOut]
    households: int
    bound: int
    codes_issued: int


class CodesIn(BaseModel):
    village: str | None = Field(None, max_length=64, description="村名；不填就是您能看到的所有户")


class CodesOut(BaseModel):
    issued: int = Field(description="新发了绑定码的户数（码本身不返回：打印标签或用命令行发放）")


class RowErrorOut(BaseModel):
    line: int | None = Field(description="Excel 里的行号；整个文件或表头的问题时可能为 null")
    sheet: str | None
    reason: str
    columns: list[dict[str, str]] = Field(description="出问题的列：{letter: Excel 列字母, label: 列名}")


class HouseholdImportOut(BaseModel):
    detail: str = Field(description="一句话结果")
    ok: bool
    dry_run: bool
    created: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut]
    warnings: list[str]
    changes: list[dict[str, Any]]
    created_numbers: list[str]
    created_areas: list[str]
    created_villages: list[str]
    created_hamlets: list[dict[str, str]]
    created_cadres: list[dict[str, str]]


@api.get("/households", response_model=HouseholdList, summary="列出能看到的户")
def api_list(services: ServicesDep, user: CurrentUser, village: VillageName = None, q: Search = None,
             bound: Annotated[bool | None, Query(description="true 只看有家人绑定的户，false 只看没有的")] = None,
             page: Annotated[int, Query(ge=1, le=100_000)] = 1,
             per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50) -> dict[str, Any]:
    """The households the caller may see, by village, 组 and 户编号; phones masked.

    ``village`` names one village: 404 if there is none, 403 if it is not the caller's.
    """
    result, _ = _search(services, user, village=village, q=q, bound=bound, page=page, per_page=per_page)
    zone = services.settings.timezone
    return {"items": [view.shown(in_list=True).to_json(zone) for view in result.items], "total": result.total,
            "page": result.page, "per_page": result.per_page, "pages": result.pages}


@api.get("/households/binding-status", response_model=BindingStatusOut, summary="各村绑定情况")
def api_binding_status(services: ServicesDep, user: CurrentUser) -> dict[str, Any]:
    """Per village the caller sees: households, households with a member bound, codes issued."""
    with services.db.session() as session:
        rows = binding_status(session, ensure_township(session, services.settings.township).id, user.scope)
    return {"villages": [r.to_json() for r in rows], "households": sum(r.households for r in rows),
            "bound": sum(r.bound for r in rows), "codes_issued": sum(r.coded for r in rows)}


@api.post("/households/codes", response_model=CodesOut, summary="给没有绑定码的户发码")
def api_codes(services: ServicesDep, user: ApiCsrf, _writer: Writer, body: CodesIn) -> dict[str, int]:
    """A binding code for each household (of ``village``) the caller sees that has none; existing codes stay."""
    return {"issued": _issue_codes(services, user, body.village or None)}


_IMPORT_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV 或 .xlsx 文件，最多 5 MB"},
        "dry_run": {"type": "boolean", "default": True, "description": "true（默认）只检查并报告，不写入"},
        "create_missing": {"type": "boolean", "default": False,
                           "description": "自动新建村、组和帮扶责任人（只有镇管理员）"}}}}}}


@api.post(
    "/households/import", response_model=HouseholdImportOut, summary="导入户信息（默认只检查）",
    responses={422: {"model": HouseholdImportOut, "description": "文件有问题：每一行的问题在 errors 里，什么也没导入"},
               400: {"description": "上传的内容不完整"}, 413: {"description": "文件太大"},
               415: {"description": "不是 multipart/form-data"}},
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def api_import(request: Request, services: ServicesDep, user: ApiCsrf, _writer: Writer) -> Response:
    """Check (``dry_run``, the default) or import a roster; the same rules and report as ``sisong households import``.

    200 with the report when every row is right (and, without ``dry_run``, it
    was imported); 422 with the same report when any row is wrong: nothing is
    written then, and ``errors`` lists every bad row with its line, columns and reason.
    """
    form = await _read_form(request)
    if not form.has_file:
        raise HTTPException(422, "填写的内容不对：file：必须填写。")
    dry_run = form_flag(form.fields, "dry_run", True)
    create_missing = form_flag(form.fields, "create_missing", False)
    report = await run_in_threadpool(
        lambda: import_households_file(services.db, services.settings.township, form.data, form.filename or None,
                                       dry_run=dry_run, create_missing=create_missing, scope=user.scope,
                                       actor=user))
    body = {"detail": _summary(report), "ok": report.ok, **report.to_json()}
    return JSONResponse(body, status_code=200 if report.ok else 422)


def _summary(report: ImportReport) -> str:
    if not report.ok:
        return f"有 {report.error_rows} 处问题，没有导入任何内容。请改好后重新上传。"
    counts = f"新增 {report.created} 户，更新 {report.updated} 户，未变化 {report.unchanged} 户"
    return f"检查通过（没有写入）：{counts}。" if report.dry_run else f"导入完成：{counts}。"


@api.get("/households/{number}", response_model=HouseholdDetailOut, summary="一户的详情")
def api_household(services: ServicesDep, user: CurrentUser, number: str) -> dict[str, Any]:
    """One household: registration (phones in full), members bound, questions asked, hand-overs.

    404 if there is no such 户编号; 403 if the household is not the caller's.
    """
    detail = _detail(services, user, number)
    zone = services.settings.timezone
    handovers = []
    for h in detail.handovers:
        state, label = _handover_state(h.status, h.delivery)
        handovers.append({"id": h.id, "at": iso_local(h.at, zone), "member": h.member, "question": h.question,
                          "state": state, "state_label": label, "reply": h.reply, "replied_by": h.replied_by,
                          "answered_at": iso_local(h.answered_at, zone), "closed_at": iso_local(h.closed_at, zone)})
    return {"household": detail.view.shown(in_list=False).to_json(zone),
            "members": [m.to_json(zone) for m in detail.members],
            "questions": [a.to_json(zone) for a in detail.asked],
            "handovers": handovers}
