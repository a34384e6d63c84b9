"""概览: the figures a cadre looks at first, as a page with charts and as ``GET /api/v1/dashboard``.

Both call ``storage.dashboard.dashboard_figures`` with the account's scope, so a
village cadre's page and API show their villages' figures and nothing else.
The page draws its charts with the vendored Chart.js from a JSON block (no
inline script), and shows every number as text and tables too: charts are a
picture, not the only way to read the figures.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from bot.console.deps import CurrentUser, PageUser, ServicesDep
from bot.console.templating import render
from storage.clock import iso_local
from storage.dashboard import Figures, dashboard_figures

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["概览"])


class VillageFiguresOut(BaseModel):
    village: str
    area: str | None
    households: int = Field(description="能看到的户数")
    bound: int = Field(description="已有家人绑定微信的户数")


class DayOut(BaseModel):
    date: dt.date
    questions: int
    answered: int = Field(description="政策库答上的")
    handed_over: int = Field(description="转给干部的（进了待答问题）")


class QueueFiguresOut(BaseModel):
    open: int
    oldest_at: dt.datetime | None
    waited: str = Field(description="最早一条等了多久，如“最早的一条等了 3 天”")


class DashboardOut(BaseModel):
    scope: str = Field(description="全镇，或 您负责的范围")
    as_of: dt.datetime
    followers: int = Field(description="关注的人（非全镇账号：只算绑定到自己范围内户的）")
    households: int
    bound_households: int
    villages: list[VillageFiguresOut]
    today: DayOut
    answered_share: float | None = Field(description="今天的问题里政策库答上的比例（0–1），没人问时为 null")
    days: list[DayOut] = Field(description="最近 14 天，按日期从早到晚，最后一天是今天")
    unanswered: QueueFiguresOut


def _day(day) -> DayOut:  # type: ignore[no-untyped-def]
    return DayOut(date=day.day, questions=day.questions, answered=day.answered, handed_over=day.handed_over)


def to_out(figures: Figures, zone: str) -> DashboardOut:
    return DashboardOut(
        scope="全镇" if figures.everything else "您负责的范围",
        as_of=iso_local(figures.now, zone),
        followers=figures.followers,
        households=figures.households,
        bound_households=figures.bound_households,
        villages=[VillageFiguresOut(village=v.village, area=v.area, households=v.households, bound=v.bound)
                  for v in figures.villages],
        today=_day(figures.today),
        answered_share=figures.answered_share,
        days=[_day(d) for d in figures.days],
        unanswered=QueueFiguresOut(open=figures.open_unanswered, oldest_at=iso_local(figures.oldest_open_at, zone),
                                 waited=figures.waited),
    )


def _figures(services: ServicesDep, user: CurrentUser) -> Figures:
    return dashboard_figures(services.db, user.scope, services.settings.timezone)


@api.get("/dashboard", response_model=DashboardOut)
def dashboard_api(services: ServicesDep, user: CurrentUser) -> DashboardOut:
    """概览的数字：关注人数、各村绑定户数、今天的问题和政策库答上的比例、最近 14 天的问题、待答问题。

    只算您能看到的范围（村干部只看自己的村）。
    """
    return to_out(_figures(services, user), services.settings.timezone)


def _chart_data(figures: Figures) -> dict[str, object]:
    """What the page's script draws: plain lists, embedded as JSON (``|tojson`` escapes it for HTML)."""
    return {
        "villages": [v.village for v in figures.villages],
        "bound": [v.bound for v in figures.villages],
        "unbound": [v.households - v.bound for v in figures.villages],
        "days": [f"{d.day.month}/{d.day.day}" for d in figures.days],  # short: 14 of them fit a phone
        "questions": [d.questions for d in figures.days],
        "handed_over": [d.handed_over for d in figures.days],
    }


@pages.get("/", response_class=HTMLResponse)
def home(request: Request, services: ServicesDep, user: PageUser) -> Response:
    figures = _figures(services, user)
    share = figures.answered_share
    return render(request, "dashboard.html", user, figures=figures, chart=_chart_data(figures),
                  share=None if share is None else round(share * 100))
