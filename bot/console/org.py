"""干部与群: teams, cadres, villages by 片区 and the WeCom groups covering them (page and ``GET /api/v1/org``),
and, for 镇管理员, uploading the organisation file.

The overview is ``storage.org_overview.org_overview`` with the account's scope.
The upload runs the same ``import_org_file`` as ``sisong org import``: first as a
dry run whose report the admin reads, then for real with the very bytes that were
checked, kept for the admin between the two steps by ``storage.uploads`` (as the
households import does), so any worker can take the second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep, form_csrf
from bot.console.templating import render
from bot.console.uploads import read_multipart
from storage import uploads
from storage.accounts import ADMIN, Principal
from storage.clock import iso_local
from storage.org_import import OrgImportReport, import_org_file
from storage.org_overview import STATUS_LABELS, OrgOverview, org_overview

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["干部与群"])

# An organisation file is a few sheets of names: far below this. The limit keeps the
# confirmation form (the file again, base64) within what a form post carries comfortably.
MAX_FILE = 512 * 1024
ADMIN_ONLY = "只有镇管理员能导入组织表。"


# -- overview ---------------------------------------------------------------------------------

class TeamOut(BaseModel):
    name: str
    cadres: int
    households: int


class CadreOut(BaseModel):
    id: int
    name: str
    role: str
    phone: str = Field(description="镇管理员看到完整号码，其他账号看到遮住的")
    teams: list[str]
    villages: list[str]
    households: int = Field(description="帮扶的户数（在您的范围内）")
    wechat_bound: bool = Field(description="已用干部码绑定自己的微信")
    wecom: bool = Field(description="登记了企业微信账号（群通知会 @ 他）")
    active: bool


class OrgVillageOut(BaseModel):
    name: str
    households: int
    groups: list[str]


class AreaOut(BaseModel):
    name: str | None
    villages: list[OrgVillageOut]


class GroupOut(BaseModel):
    id: int
    name: str
    covers_all: bool
    villages: list[str]
    areas: list[str]
    teams: list[str]
    covered_villages: list[str] = Field(description="覆盖的村（写明的村和所覆盖片区的村；全镇群为空）")
    pending: int = Field(description="还没发出的通知条数")
    last_sent_at: datetime | None
    last_error: str | None


class NoticeOut(BaseModel):
    id: int
    group: str
    summary: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    status: str = Field(description="sent 已发送 / pending 等待发送 / failed 发送失败，会重试")


class OrgOut(BaseModel):
    teams: list[TeamOut]
    cadres: list[CadreOut]
    areas: list[AreaOut]
    groups: list[GroupOut]
    notices: list[NoticeOut]


def _overview(services: ServicesDep, user: Principal) -> OrgOverview:
    return org_overview(services.db, user.scope, show_phones=user.role == ADMIN)


@api.get("/org", response_model=OrgOut)
def org_api(services: ServicesDep, user: CurrentUser) -> OrgOut:
    """先锋队、干部、按片区排的村和覆盖它们的企业微信群、最近的群通知（都只含您范围内的）。

    干部电话只有镇管理员看到完整号码；群机器人地址从不返回。
    """
    zone = services.settings.timezone
    view = _overview(services, user)
    return OrgOut(
        teams=[TeamOut(**vars(t)) for t in view.teams],
        cadres=[CadreOut(**vars(c)) for c in view.cadres],
        areas=[AreaOut(name=a.name, villages=[OrgVillageOut(**vars(v)) for v in a.villages]) for a in view.areas],
        groups=[GroupOut(**{**vars(g), "last_sent_at": iso_local(g.last_sent_at, zone)}) for g in view.groups],
        notices=[NoticeOut(id=n.id, group=n.group, summary=n.summary, created_at=iso_local(n.created_at, zone),
                           sent_at=iso_local(n.sent_at, zone), attempts=n.attempts, status=n.status)
                 for n in view.notices],
    )


@pages.get("/org", response_class=HTMLResponse)
def org_page(request: Request, services: ServicesDep, user: PageUser) -> Response:
    return render(request, "org.html", user, view=_overview(services, user), status_labels=STATUS_LABELS)


# -- import (镇管理员) ---------------------------------------------------------------------------

UPLOAD_KIND = "org"
TOO_BIG = f"文件太大了（组织表不应超过 {MAX_FILE // 1024} KB）。请检查是不是选错了文件。"


def _import(services: ServicesDep, user: Principal, data: bytes, filename: str, dry_run: bool) -> OrgImportReport:
    """``sisong org import`` for an upload; a real import is audited in its own transaction."""
    return import_org_file(services.db, services.settings.township, data, filename, dry_run=dry_run,
                           actor=user)


async def _read_upload(request: Request) -> tuple[bytes, str]:
    form = await read_multipart(request, field_name="file", max_bytes=MAX_FILE, too_big=TOO_BIG)
    upload = form.file
    if upload is None or not (upload.name or upload.data):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "请先选择要导入的文件（.xlsx 或 .csv）。")
    if not upload.data:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "文件是空的，请重新选择。")
    request.state.form_fields = form.fields
    return upload.data, upload.name or "组织表.xlsx"


def api_admin(user: ApiCsrf) -> Principal:
    if user.role != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, ADMIN_ONLY)
    return user


@api.post("/org/import", responses={403: {"description": "只有镇管理员"}, 413: {"description": "文件太大"},
                                    415: {"description": "不是 multipart/form-data"}},
          openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
              "type": "object", "required": ["file"],
              "properties": {"file": {"type": "string", "format": "binary",
                                      "description": "组织表（.xlsx 或 .csv），格式见 docs/households.md"}}}}}}})
async def org_import_api(
    request: Request,
    services: ServicesDep,
    user: Annotated[Principal, Depends(api_admin)],
    dry_run: Annotated[bool, Query(description="默认只检查、不写入；确认无误后用 dry_run=false 再传一次")] = True,
) -> dict[str, object]:
    """导入组织表（村、干部、工作群），和 `sisong org import` 一样；返回它的 JSON 报告。

    有一行出错就什么都不导入（`errors` 里列出每一行的问题）。
    """
    data, filename = await _read_upload(request)
    report = await run_in_threadpool(_import, services, user, data, filename, dry_run)
    return report.to_json()


def _page_admin(user: PageUser) -> Principal:
    if user.role != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, ADMIN_ONLY)
    return user


@pages.post("/org/import", response_class=HTMLResponse)
async def org_import_page(
    request: Request,
    services: ServicesDep,
    user: Annotated[Principal, Depends(_page_admin)],
) -> Response:
    """Step 1: check the chosen file (a dry run); a clean file is kept for 确认导入."""
    data, name = await _read_upload(request)
    form_csrf(user, request.state.form_fields.get("csrf", ""))
    report = await run_in_threadpool(_import, services, user, data, name, True)
    key = ""
    if report.ok:
        key = await run_in_threadpool(uploads.keep, services.db, user.id, UPLOAD_KIND, name, data, size=len(data))
    return render(request, "org_import.html", user, 200 if report.ok else 400, report=report, filename=name,
                  key=key)


@pages.post("/org/import/confirm", response_class=HTMLResponse)
def org_import_confirm(
    request: Request,
    services: ServicesDep,
    user: Annotated[Principal, Depends(_page_admin)],
    _csrf: Csrf,
    key: Annotated[str, Form()] = "",
) -> Response:
    """Step 2: import exactly the bytes that were checked (only the admin who uploaded them)."""
    kept = uploads.take(services.db, key, user.id, UPLOAD_KIND)
    if kept is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "这份文件已经导入过，或等得太久已过期，请重新选择文件。")
    report = _import(services, user, kept.payload, kept.filename, dry_run=False)
    code = status.HTTP_200_OK if report.ok else status.HTTP_400_BAD_REQUEST
    return render(request, "org_import.html", user, code, report=report, filename=kept.filename,
                  flashes=[("ok", "组织表已导入。")] if report.ok else [])
