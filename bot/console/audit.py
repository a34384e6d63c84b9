"""操作记录: the audit log, for 镇管理员 and 督查 only (a page and ``GET /api/v1/audit``).

Everyone else gets a 403: the log names accounts, households' numbers and
client addresses across every village, so it is not scoped, it is withheld.
Both the page and the API read ``storage.accounts.list_audit``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from bot.console.deps import PageUser, ServicesDep, require_role
from bot.console.templating import render
from storage.accounts import ADMIN, INSPECTOR, AuditPage, Principal, action_label, audit_actions, list_audit
from storage.clock import iso_local

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["操作记录"])

READERS = (ADMIN, INSPECTOR)
PER_PAGE = 50
Auditor = Annotated[Principal, Depends(require_role(*READERS))]


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    action_label: str
    target: str
    detail: str


class AuditPageOut(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[AuditEntryOut]


@api.get("/audit", response_model=AuditPageOut,
         responses={403: {"description": "只有镇管理员和督查能看"}})
def audit_api(
    services: ServicesDep,
    user: Auditor,
    actor: Annotated[str, Query(max_length=64, description="谁（名字的一部分）")] = "",
    action: Annotated[str, Query(max_length=32, description="做了什么，如 login、user.create")] = "",
    since: Annotated[date | None, Query(description="从哪天起（含），按本镇时间")] = None,
    until: Annotated[date | None, Query(description="到哪天止（含）")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = PER_PAGE,
) -> AuditPageOut:
    """操作记录，新的在前：谁、什么时间、做了什么、对象、说明。只有镇管理员和督查能看。"""
    zone = services.settings.timezone
    found = list_audit(services.db, actor=actor, action=action, since=since, until=until, zone=zone, page=page,
                       per_page=per_page)
    return AuditPageOut(total=found.total, page=found.page, per_page=found.per_page, items=[
        AuditEntryOut(id=e.id, at=iso_local(e.at, zone), actor=e.actor, action=e.action, action_label=e.label,
                      target=e.target, detail=e.detail) for e in found.entries])


def _day(text: str, what: str, problems: list[str]) -> date | None:
    """A date field of the filter form: empty means no limit; a bad one is said, not a 422 page."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"{what}「{text}」不是日期，请用 2026-01-31 这样的写法。")
        return None


@pages.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    services: ServicesDep,
    user: PageUser,
    actor: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=32)] = "",
    since: str = "",
    until: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    if user.role not in READERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "操作记录只有镇管理员和督查能看。")
    problems: list[str] = []
    first, last = _day(since, "开始日期", problems), _day(until, "结束日期", problems)
    found: AuditPage = list_audit(services.db, actor=actor, action=action, since=first, until=last,
                                  zone=services.settings.timezone, page=page, per_page=PER_PAGE)
    filters = {"actor": actor, "action": action, "since": since, "until": until}

    def page_link(number: int) -> str:
        return "/console/audit?" + urlencode({**{k: v for k, v in filters.items() if v}, "page": number})

    actions = [(a, action_label(a)) for a in audit_actions(services.db)]
    return render(request, "audit.html", user, found=found, filters=filters, actions=actions,
                  page_link=page_link, flashes=[("error", p) for p in problems])
