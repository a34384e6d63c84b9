"""概览 (issue 8): the figures for a seeded township, scoped per account, on the page, the API and in a browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from bot.services import Services, build_services
from storage import dashboard
from storage.accounts import create_api_token, create_user, link_cadre
from storage.dashboard import dashboard_figures, waited_text
from storage.models import KbUnanswered, MessageLog
from storage.scope import EVERYTHING
from tests.support.browser import DESKTOP, PHONE, log_in, screenshot
from tests.support.console_seed import PASSWORD, TOWNSHIP, Seeded, oid, seed_township

ZONE = "Asia/Shanghai"
# Noon on the township's clock: "today" is the same day in UTC and locally, and nothing races midnight.
TODAY = datetime.now(ZoneInfo(ZONE)).date()
NOW = datetime.combine(TODAY, time(12, 0), ZoneInfo(ZONE)).astimezone(timezone.utc)


def at(days_ago: int, hour: int = 10) -> datetime:
    """A moment ``days_ago`` days before today, at ``hour`` on the township's clock (as UTC)."""
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), ZoneInfo(ZONE)).astimezone(timezone.utc)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP, timezone=ZONE)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


@pytest.fixture
def seeded(services: Services, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The township, plus questions: today, 3 and 5 days ago, and 20 days ago (outside the chart)."""
    monkeypatch.setattr(dashboard, "utcnow", lambda: NOW)
    seeded = seed_township(services.db, NOW)
    n = 0

    def message(who: str, days_ago: int, handler: str | None = "policy_qa.ask", **extra: Any) -> MessageLog:
        nonlocal n
        n += 1
        return MessageLog(created_at=at(days_ago, 9 + n % 3), direction="in", openid=oid(who), msg_type="text",
                          text="问题", handler=handler, dedupe_key=f"k{n}", **{"status": "answered", **extra})

    with services.db.session() as session:
        session.add_all([
            # today: 石桥村 4 questions (oS2's busy one counts), 枫林村 1, unbound 2; not questions: a help
            # click and an outbound row.
            message("S1a", 0), message("S1a", 0), message("S2", 0),
            message("S2", 0, handler=None, status="busy"),
            message("F1", 0), message("U", 0), message("U", 0, handler="handover.handover"),
            message("S1a", 0, handler="help.help"),
            MessageLog(created_at=at(0), direction="out", openid=oid("S1a"), msg_type="text", handler="policy_qa.ask"),
            # earlier
            message("S1a", 3), message("F1", 3), message("F1", 3), message("S2", 5), message("S1a", 20),
        ])
        session.add_all([
            KbUnanswered(openid=oid("S1a"), question="q", normalized="q1", created_at=at(0)),
            KbUnanswered(openid=oid("S2"), question="q", normalized="q2", created_at=at(0)),
            KbUnanswered(openid=oid("F1"), question="q", normalized="q3", created_at=at(0)),
            KbUnanswered(openid=oid("U"), question="q", normalized="q4", created_at=at(0), status="answered"),
            KbUnanswered(openid=oid("S2"), question="q", normalized="q5", created_at=at(5)),
            KbUnanswered(openid=None, question="q", normalized="q6", created_at=at(1)),
        ])
    return seeded


def bearer(services: Services, name: str, role: str, villages: list[str] = []) -> dict[str, str]:  # noqa: B006
    create_user(services.db, name, PASSWORD, role, villages, township=TOWNSHIP)
    return {"Authorization": f"Bearer {create_api_token(services.db, name)}"}


@pytest.fixture
def web(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), follow_redirects=False) as client:
        yield client


def test_figures_for_the_township(services: Services, seeded: Seeded, web: TestClient) -> None:
    body = web.get("/api/v1/dashboard", headers=bearer(services, "王镇长", "镇管理员")).json()
    assert body["scope"] == "全镇"
    assert body["followers"] == 4  # oS1b unfollowed; oU counts although unbound
    assert (body["households"], body["bound_households"]) == (5, 3)
    assert [(v["village"], v["area"], v["households"], v["bound"]) for v in body["villages"]] == [
        ("柳溪村", "东片", 0, 0), ("石桥村", "东片", 3, 2), ("枫林村", "西片", 2, 1)]
    assert body["today"] == {"date": TODAY.isoformat(), "questions": 7, "answered": 3, "handed_over": 4}
    assert body["answered_share"] == pytest.approx(3 / 7)
    days = body["days"]
    assert len(days) == 14 and days[-1]["date"] == TODAY.isoformat()
    assert days[0]["date"] == (TODAY - timedelta(days=13)).isoformat()
    assert (days[-4]["questions"], days[-4]["handed_over"]) == (3, 0)  # 3 days ago
    assert (days[-6]["questions"], days[-6]["handed_over"]) == (1, 1)  # 5 days ago
    assert (days[-2]["questions"], days[-2]["handed_over"]) == (0, 1)  # yesterday: queued with no follower
    assert sum(d["questions"] for d in days) == 11  # 20 days ago is outside
    assert body["unanswered"]["open"] == 5
    assert body["unanswered"]["waited"] == "最早的一条等了 5 天"
    assert body["unanswered"]["oldest_at"].endswith("+08:00")


def test_figures_for_a_village_cadre(services: Services, seeded: Seeded, web: TestClient) -> None:
    body = web.get("/api/v1/dashboard", headers=bearer(services, "石村干", "村干部", ["石桥村"])).json()
    assert body["scope"] == "您负责的范围"
    assert body["followers"] == 2  # oS1a, oS2: bound to 石桥村 households and following
    assert [(v["village"], v["households"], v["bound"]) for v in body["villages"]] == [("石桥村", 3, 2)]
    assert body["today"] == {"date": TODAY.isoformat(), "questions": 4, "answered": 2, "handed_over": 2}
    assert body["answered_share"] == 0.5
    assert [d["questions"] for d in body["days"][-6:]] == [1, 0, 1, 0, 0, 4]
    assert body["unanswered"] == {"open": 3, "oldest_at": body["unanswered"]["oldest_at"],
                                  "waited": "最早的一条等了 5 天"}


def test_figures_for_an_area_and_a_helper(services: Services, seeded: Seeded, web: TestClient) -> None:
    area = web.get("/api/v1/dashboard", headers=bearer(services, "东片长", "片区干部", ["柳溪村"])).json()
    assert [v["village"] for v in area["villages"]] == ["柳溪村", "石桥村"]  # the whole 东片
    assert area["today"]["questions"] == 4
    helper = bearer(services, "李帮扶", "帮扶责任人")
    link_cadre(services.db, "李帮扶", "13812345678", township=TOWNSHIP)
    body = web.get("/api/v1/dashboard", headers=helper).json()
    # Their own households S1, S2 (石桥村) and F1 (枫林村), not S3 nor F2.
    assert [(v["village"], v["households"], v["bound"]) for v in body["villages"]] == [
        ("石桥村", 2, 2), ("枫林村", 1, 1)]
    assert body["followers"] == 3 and body["today"]["questions"] == 5
    assert body["unanswered"]["open"] == 4


def test_inspector_sees_everything_and_anonymous_nothing(services: Services, seeded: Seeded,
                                                         web: TestClient) -> None:
    body = web.get("/api/v1/dashboard", headers=bearer(services, "督查甲", "督查")).json()
    assert body["scope"] == "全镇" and body["today"]["questions"] == 7
    refused = web.get("/api/v1/dashboard")
    assert refused.status_code == 401 and refused.json()["detail"] == "请先登录。"


def test_empty_township(services: Services, web: TestClient) -> None:
    body = web.get("/api/v1/dashboard", headers=bearer(services, "王镇长", "镇管理员")).json()
    assert body["followers"] == 0 and body["villages"] == [] and body["answered_share"] is None
    assert body["unanswered"] == {"open": 0, "oldest_at": None, "waited": "没有等着答复的问题"}
    page = web.get("/console/", cookies={})
    assert page.status_code == 303  # not logged in: to the login page


def test_waited_text() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    assert waited_text(None, now) == "没有等着答复的问题"
    assert waited_text(now - timedelta(seconds=20), now) == "最早的一条刚刚进来"
    assert waited_text(now - timedelta(minutes=42), now) == "最早的一条等了 42 分钟"
    assert waited_text(now - timedelta(hours=5, minutes=59), now) == "最早的一条等了 5 小时"
    assert waited_text(now - timedelta(days=3, hours=2), now) == "最早的一条等了 3 天"


def test_days_follow_the_township_clock(services: Services, seeded: Seeded) -> None:
    """A question at 23:30 UTC is the next morning in 青山镇 (UTC+8)."""
    figures = dashboard_figures(services.db, EVERYTHING, ZONE, now=NOW)
    late = datetime.combine(TODAY - timedelta(days=1), time(23, 30), timezone.utc)  # 07:30 today, locally
    with services.db.session() as session:
        session.add(MessageLog(created_at=late, direction="in", openid=oid("U"), msg_type="text",
                               handler="policy_qa.ask", dedupe_key="late"))
    again = dashboard_figures(services.db, EVERYTHING, ZONE, now=NOW)
    assert again.today.questions == figures.today.questions + 1
    utc = dashboard_figures(services.db, EVERYTHING, "UTC", now=NOW)
    assert utc.days[-2].questions == figures.days[-2].questions + 1  # yesterday, in UTC


def login(client: TestClient, name: str) -> str:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf}).status_code == 303
    home = client.get("/console/")
    return home.text


def test_page_shows_numbers_as_text_and_chart_data(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "石村干", PASSWORD, "村干部", ["石桥村"], township=TOWNSHIP)
    html = login(web, "石村干")
    assert "您负责的村和户的情况" in html
    assert 'id="n-today">4<' in html and 'id="n-share">50%<' in html and "最早的一条等了 5 天" in html
    data = json.loads(re.search(r'id="dashboard-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert data["villages"] == ["石桥村"] and data["bound"] == [2] and data["unbound"] == [1]
    assert len(data["days"]) == 14 and data["questions"][-1] == 4
    assert "枫林村" not in html
    assert '<script src="/console/static/vendor/chart-4.6.1.umd.min.js">' in html
    assert " on" + "click" not in html and "cdn" not in html.lower()
    assert web.get("/console/static/dashboard.js").status_code == 200


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_dashboard_charts_in_a_browser(services: Services, seeded: Seeded, live_url: str, browser: Any) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员", township=TOWNSHIP)
    for viewport, name in ((PHONE, "dashboard-375"), (DESKTOP, "dashboard-1280")):
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("requestfailed", lambda request: errors.append(request.url))
        log_in(page, live_url, "王镇长", PASSWORD)
        page.wait_for_function("() => window.Chart && Chart.getChart('chart-days') && Chart.getChart('chart-villages')")
        charts = page.evaluate("""() => ['chart-villages', 'chart-days'].map(id => {
            const canvas = document.getElementById(id), chart = Chart.getChart(canvas);
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) inked++; }
            return {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data), inked,
                    width: canvas.width, height: canvas.height};
        })""")
        villages, days = charts
        assert villages["labels"] == ["柳溪村", "石桥村", "枫林村"]
        assert villages["data"] == [[0, 2, 1], [0, 1, 1]]
        assert len(days["labels"]) == 14 and days["data"][0][-1] == 7
        for chart in charts:
            assert chart["width"] > 100 and chart["height"] > 100
            assert chart["inked"] > 1000, chart  # bars, lines and axes were drawn
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert not errors, errors
        screenshot(page, name)
        context.close()


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_other_pages_fit_a_phone(services: Services, seeded: Seeded, live_url: str, browser: Any) -> None:
    """干部与群, 操作记录, 我的账号 and 账号管理 read on a 375-px screen without sideways scrolling."""
    create_user(services.db, "王镇长", PASSWORD, "镇管理员", township=TOWNSHIP)
    create_user(services.db, "石村干", PASSWORD, "村干部", ["石桥村"], township=TOWNSHIP)
    create_api_token(services.db, "王镇长", "导出脚本")
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_url, "王镇长", PASSWORD)
    for path, name, expect in (("/console/org", "org-375", "李帮扶"), ("/console/audit", "audit-375", "新建账号"),
                               ("/console/account", "account-375", "导出脚本"),
                               ("/console/users", "users-375", "石村干")):
        page.goto(live_url + path)
        assert expect in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        screenshot(page, name)
    context.close()
