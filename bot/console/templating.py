"""One Jinja2 environment for every console page, with the filters pages share.

Pages render through ``render`` so each gets the logged-in account (for the
navigation and the CSRF field) and the township's time zone without asking.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import pass_context
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from storage.accounts import ADMIN, INSPECTOR, Principal
from storage.clock import local
from storage.privacy import mask_text

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

# (path, label, roles that see it or None for everyone): the navigation, in order.
NAV: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("/console/", "概览", None),
    ("/console/unanswered", "待答问题", None),
    ("/console/handbook", "政策库", None),
    ("/console/households", "农户", None),
    ("/console/jobs", "岗位", None),
    ("/console/surveys", "满意度", None),
    ("/console/org", "干部与群", None),
    ("/console/audit", "操作记录", (ADMIN, INSPECTOR)),
    ("/console/users", "账号管理", (ADMIN,)),
    ("/console/account", "我的账号", None),
)


def _zone(request: Request) -> str:
    services = getattr(request.app.state, "services", None)
    return services.settings.timezone if services is not None else "Asia/Shanghai"


def render(request: Request, template: str, user: Principal | None, status_code: int = 200,
           **context: Any) -> Response:
    """Render a page template with the account, the navigation and the time zone in its context."""
    zone = _zone(request)
    nav = [(path, label) for path, label, roles in NAV if user is not None and (roles is None or user.role in roles)]
    return templates.TemplateResponse(
        request, template, {"user": user, "nav": nav, "path": request.url.path, "zone": zone, **context},
        status_code=status_code)


@pass_context
def _local(context: Any, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``{{ when | local }}``: a stored UTC time on the township's clock."""
    return local(value, context.get("zone") or "Asia/Shanghai", fmt) if value is not None else ""


templates.env.filters["local"] = _local
templates.env.filters["mask"] = lambda text: mask_text(text) if text else ""
