"""满意度 in the console (issue 10): campaigns, figures, export, cases and visits, by role, pages and API.

The township: 东片 (石桥村 3 households, 柳溪村 2) and 西片 (枫林村 2), one bound
follower each, inside WeChat's 48-hour window (invitations go out as
customer-service messages to the fake WeChat API, sent by the app's embedded
queue consumer). Households answer over the real webhook (signed requests, as
WeChat sends them). Accounts: 王镇长 (镇管理员), 石村干 (村干部 of 石桥村),
赵督查 (督查), 李四 (帮扶责任人 linked to 李帮扶, who helps 石桥村-0000 and
枫林村-0000). API calls use Bearer tokens as scripts do; CSRF is tested with a
browser session.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import Settings
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from storage import surveys
from storage.jobs import today
from storage.models import AuditLog
from storage.models.surveys import SurveyCampaign, VisitCheck
from tests.conftest import APPID, TOKEN, wait_for
from tests.support import jobs_data as data
from tests.support.console_seed import PASSWORD, bearer_headers, form_login
from tests.support.fake_wechat_api import FakeWeChatAPI

CUSTOM = "message/custom/send"
ALL_OK = {"food_clothing": True, "education": True, "medical": True, "housing": True, "water": True}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Quiet hours off (start == end): invitations go out whatever hour the suite runs at.
    return make_settings(township="青山镇", push_rate="1000/second", push_backoff=0.2, push_lease=2,
                         quiet_hours="03:00-03:00")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    data.three_villages_with_accounts(built)
    yield built
    built.close()


@pytest.fixture
def app_client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), follow_redirects=False) as client:
        yield client


@pytest.fixture
def as_user(services: Services) -> Callable[[str], dict[str, str]]:
    return bearer_headers(services.db)


def openid(number: str) -> str:
    prefix, n = number.rsplit("-", 1)
    return f"o{prefix}{n}m0".ljust(28, "x")


def answer(client: Any, number: str, *texts: str) -> list[str]:
    """The household's follower talks to the webhook as WeChat would; returns the replies."""
    who = WeChatSimulator(TOKEN, APPID, None, openid=openid(number))
    return [who.post(client, who.text(text)).text or "" for text in texts]


def start(client: TestClient, headers: dict[str, str], api: FakeWeChatAPI, invited: int, **body: Any) -> int:
    """Start through the API and wait until the embedded consumer has sent every invitation."""
    before = len(api.calls_to(CUSTOM))
    response = client.post("/api/v1/surveys", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["invited"] == invited
    wait_for(lambda: len(api.calls_to(CUSTOM)) >= before + invited, timeout=20)
    return int(response.json()["id"])


def satisfied(client: Any, number: str) -> None:
    replies = answer(client, number, "开始", "认得", "1", "产业和教育", "我很满意")
    assert "问卷答完了" in replies[-1], replies


def dissatisfied(client: Any, number: str) -> None:
    replies = answer(client, number, "开始", "1", "不认识", "7", "不太满意", "房子漏雨一直没人来看")
    assert "会请工作人员" in replies[-1], replies


def is_chinese(text: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", text))


# -- API: start, progress, figures, export, cases, close ------------------------------------------

def test_admin_starts_reads_figures_downloads_and_closes_the_loop(app_client: TestClient, as_user: Callable,
                                                                   api: FakeWeChatAPI, services: Services) -> None:
    admin = as_user("王镇长")
    cid = start(app_client, admin, api, 5, villages=["石桥村", "枫林村"], title="冬季满意度调查")
    assert all("冬季满意度调查" in c.json["text"]["content"] for c in api.calls_to(CUSTOM))
    satisfied(app_client, "石桥村-0000")
    dissatisfied(app_client, "枫林村-0000")

    (listed,) = app_client.get("/api/v1/surveys", headers=admin).json()["items"]
    assert (listed["id"], listed["title"], listed["invited"], listed["responses"]) == (cid, "冬季满意度调查", 5, 2)
    assert listed["response_rate"] == 0.4 and listed["satisfaction_rate"] == 0.5 and listed["closed"] is False

    stats = app_client.get(f"/api/v1/surveys/{cid}/stats", params={"by": "village"}, headers=admin).json()
    assert set(stats) == {"id", "by", "village", "total"} and (stats["id"], stats["by"]) == (cid, "village")
    assert stats["village"]["石桥村"] == {
        "invited": 3, "responses": 1, "know_team": 1, "know_helper": 1, "satisfied": 1, "basically_satisfied": 0,
        "dissatisfied": 0, "response_rate": 0.3333, "satisfaction_rate": 1.0, "partial": 0}
    assert stats["village"]["枫林村"] == {
        "invited": 2, "responses": 1, "know_team": 1, "know_helper": 0, "satisfied": 0, "basically_satisfied": 0,
        "dissatisfied": 1, "response_rate": 0.5, "satisfaction_rate": 0.0, "partial": 0}
    assert stats["total"]["invited"] == 5 and stats["total"]["satisfaction_rate"] == 0.5
    with services.db.session() as session:  # the same figures as `sisong survey stats --json` computes
        assert stats["village"] == surveys.stats(session, cid, "village")
    helpers = app_client.get(f"/api/v1/surveys/{cid}/stats", params={"by": "helper"}, headers=admin).json()
    assert helpers["helper"]["李帮扶"]["invited"] == 2 and helpers["helper"]["（未指定）"]["invited"] == 3
    plain = app_client.get(f"/api/v1/surveys/{cid}/stats", headers=admin).json()
    assert set(plain) == {"id", "by", "total"} and plain["by"] is None

    xlsx = app_client.get(f"/api/v1/surveys/{cid}/export", headers=admin)
    assert xlsx.status_code == 200 and "spreadsheetml" in xlsx.headers["content-type"]
    assert "attachment" in xlsx.headers["content-disposition"]
    book = load_workbook(io.BytesIO(xlsx.content))
    rows = list(book["答卷"].iter_rows(values_only=True))
    assert len(rows) == 6 and rows[0][:6] == ("村", "组", "户编号", "户主", "帮扶责任人", "状态")
    by_number = {r[2]: r for r in rows[1:]}
    assert by_number["石桥村-0000"][5] == "已完成" and by_number["石桥村-0001"][5] == "未回复"
    assert by_number["枫林村-0000"][3] != "张0" and by_number["枫林村-0000"][3].startswith("张")  # masked
    summary = {r[0]: r for r in book["各村汇总"].iter_rows(values_only=True)}
    assert summary["枫林村"][1:3] == (2, 1) and summary["合计"][1] == 5

    cases = app_client.get("/api/v1/surveys/cases", headers=admin).json()["items"]
    assert sorted(c["reason"] for c in cases) == ["dissatisfied", "unknown_helper"]
    case = next(c for c in cases if c["reason"] == "dissatisfied")
    assert case["number"] == "枫林村-0000" and case["comment"] == "房子漏雨一直没人来看" and case["status"] == "open"
    due = (today() + timedelta(days=3)).isoformat()
    assigned = app_client.post(f"/api/v1/surveys/cases/{case['id']}/assign",
                               json={"cadre": "李帮扶", "due_on": due}, headers=admin)
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["assignee"], assigned.json()["due_on"]) == (
        "assigned", "李帮扶", due)
    resolved = app_client.post(f"/api/v1/surveys/cases/{case['id']}/resolve",
                               json={"action": "已上门查看，安排维修", "reply": "已经安排人上门修房子了。"}, headers=admin)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["told"] is True and resolved.json()["case"]["status"] == "closed"
    told = wait_for(lambda: [c for c in api.calls_to(CUSTOM) if "修房子" in c.json["text"]["content"]], timeout=20)
    assert len(told) == 1 and told[0].json["touser"] == openid("枫林村-0000")
    open_only = app_client.get("/api/v1/surveys/cases", params={"status": "open"}, headers=admin).json()["items"]
    assert [c["reason"] for c in open_only] == ["unknown_helper"]

    visit = app_client.post("/api/v1/surveys/visits", headers=admin, json={
        "household": "枫林村-0000", "cadre": "李帮扶", "date": today().isoformat(),
        "checks": {**ALL_OK, "housing": False}, "notes": "屋顶漏雨，已报修"})
    assert visit.status_code == 201, visit.text
    assert visit.json()["checks"]["housing"] is False

    closed = app_client.post(f"/api/v1/surveys/{cid}/close", headers=admin)
    assert closed.status_code == 200 and closed.json()["closed"] is True
    with services.db.session() as session:
        actions = set(session.scalars(select(AuditLog.action).where(AuditLog.actor == "王镇长")))
        assert session.scalar(select(func.count()).select_from(VisitCheck)) == 1
    assert {"survey_start", "survey_case_assign", "survey_case_close", "survey_visit", "survey_close"} <= actions


# -- scope -----------------------------------------------------------------------------------------

def test_a_village_account_starts_only_for_its_villages_and_sees_only_them(
        app_client: TestClient, as_user: Callable, api: FakeWeChatAPI) -> None:
    admin, cadre = as_user("王镇长"), as_user("石村干")
    for body, words in (({"villages": ["枫林村"]}, "枫林村"), ({"areas": ["东片"]}, "柳溪村"),
                        ({"all": True}, "全镇")):
        refused = app_client.post("/api/v1/surveys", json=body, headers=cadre)
        assert refused.status_code == 403, (body, refused.text)
        assert words in refused.json()["detail"]
    assert not api.calls_to(CUSTOM)
    mine = start(app_client, cadre, api, 3, villages=["石桥村"])
    assert app_client.post(f"/api/v1/surveys/{mine}/close", headers=cadre).status_code == 403  # township's call

    cid = start(app_client, admin, api, 7, all=True)
    dissatisfied(app_client, "枫林村-0000")
    satisfied(app_client, "石桥村-0001")
    stats = app_client.get(f"/api/v1/surveys/{cid}/stats", params={"by": "village"}, headers=cadre).json()
    assert list(stats["village"]) == ["石桥村"] and stats["total"]["invited"] == 3
    assert app_client.get("/api/v1/surveys/cases", headers=cadre).json()["items"] == []
    (case, _) = app_client.get("/api/v1/surveys/cases", headers=admin).json()["items"]
    refused = app_client.post(f"/api/v1/surveys/cases/{case['id']}/assign",
                              json={"cadre": "李帮扶", "due_on": today().isoformat()}, headers=cadre)
    assert refused.status_code == 403 and is_chinese(refused.json()["detail"])
    other = app_client.post("/api/v1/surveys/visits", headers=cadre,
                            json={"household": "枫林村-0001", "cadre": "石村干", "checks": ALL_OK})
    assert other.status_code == 403
    rows = list(load_workbook(io.BytesIO(app_client.get(f"/api/v1/surveys/{cid}/export", headers=cadre).content))
                ["答卷"].iter_rows(values_only=True))
    assert {r[0] for r in rows[1:]} == {"石桥村"}


def test_a_helper_sees_only_their_households_in_the_figures(app_client: TestClient, as_user: Callable,
                                                            api: FakeWeChatAPI) -> None:
    cid = start(app_client, as_user("王镇长"), api, 7, all=True)
    satisfied(app_client, "石桥村-0000")
    satisfied(app_client, "石桥村-0001")  # not 李帮扶's
    dissatisfied(app_client, "枫林村-0000")
    helper = as_user("李四")
    stats = app_client.get(f"/api/v1/surveys/{cid}/stats", params={"by": "village"}, headers=helper).json()
    assert {name: (f["invited"], f["responses"]) for name, f in stats["village"].items()} == {
        "石桥村": (1, 1), "枫林村": (1, 1)}
    assert stats["total"]["satisfaction_rate"] == 0.5
    (listed,) = app_client.get("/api/v1/surveys", headers=helper).json()["items"]
    assert (listed["invited"], listed["responses"]) == (2, 2)
    cases = app_client.get("/api/v1/surveys/cases", headers=helper).json()["items"]
    assert {c["number"] for c in cases} == {"枫林村-0000"}
    own = app_client.post("/api/v1/surveys/visits", headers=helper,
                          json={"household": "石桥村-0000", "cadre": "李帮扶", "checks": ALL_OK})
    assert own.status_code == 201
    other = app_client.post("/api/v1/surveys/visits", headers=helper,
                            json={"household": "石桥村-0001", "cadre": "李帮扶", "checks": ALL_OK})
    assert other.status_code == 403


def test_the_inspector_reads_and_assigns_cases_but_changes_nothing_else(app_client: TestClient, as_user: Callable, api: FakeWeChatAPI,
                                                 services: Services) -> None:
    cid = start(app_client, as_user("王镇长"), api, 3, villages=["石桥村"])
    dissatisfied(app_client, "石桥村-0000")
    inspector = as_user("赵督查")
    assert app_client.get("/api/v1/surveys", headers=inspector).status_code == 200
    assert app_client.get(f"/api/v1/surveys/{cid}/stats", headers=inspector).json()["total"]["responses"] == 1
    (case, *_) = app_client.get("/api/v1/surveys/cases", headers=inspector).json()["items"]
    for path, body in (("/api/v1/surveys", {"villages": ["石桥村"]}),
                       (f"/api/v1/surveys/{cid}/close", None),
                       (f"/api/v1/surveys/cases/{case['id']}/resolve", {"action": "已处理"}),
                       ("/api/v1/surveys/visits", {"household": "石桥村-0000", "cadre": "赵督查", "checks": ALL_OK})):
        response = app_client.post(path, json=body, headers=inspector)
        assert response.status_code == 403, (path, response.text)
        assert "只能查看" in response.json()["detail"]
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SurveyCampaign)) == 1
    page = app_client.get("/console/surveys", headers=inspector)
    assert page.status_code == 200 and 'id="start-form"' not in page.text
    cases_page = app_client.get("/console/surveys/cases", headers=inspector)
    assert "房子漏雨" in cases_page.text and "/assign" in cases_page.text and "/resolve" not in cases_page.text
    # 督查 hand the cases out (the "A 督查 assigns it to a cadre with a deadline").
    assigned = app_client.post(f"/api/v1/surveys/cases/{case['id']}/assign",
                               json={"cadre": "李帮扶", "due_on": "2099-01-01"}, headers=inspector)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["status"] == "assigned" and assigned.json()["assignee"] == "李帮扶"
    assert 'id="visit-form"' not in app_client.get("/console/surveys/visit", headers=inspector).text
    assert 'id="close-survey"' not in app_client.get(f"/console/surveys/{cid}", headers=inspector).text


# -- CSRF and bad input ----------------------------------------------------------------------------

def test_cookie_callers_need_the_csrf_header(app_client: TestClient, api: FakeWeChatAPI) -> None:
    csrf = form_login(app_client, "王镇长", "/console/surveys")
    refused = app_client.post("/api/v1/surveys", json={"villages": ["石桥村"]})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    started = app_client.post("/api/v1/surveys", json={"villages": ["石桥村"]}, headers={"X-CSRF-Token": csrf})
    assert started.status_code == 201
    visit = {"household": "石桥村-0000", "cadre": "李帮扶", "checks": ALL_OK}
    assert app_client.post("/api/v1/surveys/visits", json=visit).status_code == 403
    form = {"household": "石桥村-0000", "cadre": "李帮扶", "date": today().isoformat(),
            **{key: "1" for key in ALL_OK}}
    assert app_client.post("/console/surveys/visit", data={**form, "csrf": "wrong"}).status_code == 403
    assert app_client.post("/console/surveys", data={"village": "石桥村", "csrf": "wrong"}).status_code == 403
    assert app_client.post("/console/surveys/visit", data={**form, "csrf": csrf}).status_code == 303


def test_bad_input_is_a_chinese_4xx(app_client: TestClient, as_user: Callable, api: FakeWeChatAPI) -> None:
    admin = as_user("王镇长")
    cid = start(app_client, admin, api, 3, villages=["石桥村"])
    dissatisfied(app_client, "石桥村-0000")
    (case, *_) = app_client.get("/api/v1/surveys/cases", headers=admin).json()["items"]
    assign = f"/api/v1/surveys/cases/{case['id']}/assign"
    tomorrow = (today() + timedelta(days=1)).isoformat()
    cases = [
        ("post", "/api/v1/surveys", {"villages": ["没有村"]}, 422, "没有村「没有村」"),
        ("post", "/api/v1/surveys", {}, 422, "范围"),
        ("post", "/api/v1/surveys", {"all": True, "villages": ["石桥村"]}, 422, "全镇"),
        ("post", "/api/v1/surveys", {"villages": ["柳溪村"], "title": "x" * 65}, 422, "title"),
        ("get", "/api/v1/surveys/999/stats", None, 404, "没有这个调查"),
        ("get", f"/api/v1/surveys/{cid}/stats?by=town", None, 422, "by"),
        ("get", "/api/v1/surveys/999/export", None, 404, "没有这个调查"),
        ("get", "/api/v1/surveys/99999999999/stats", None, 422, "campaign_id"),
        ("post", "/api/v1/surveys/999/close", None, 404, "没有这个调查"),
        ("get", "/api/v1/surveys/cases?status=late", None, 422, "status"),
        ("post", assign, {"cadre": "没这人", "due_on": tomorrow}, 422, "没有叫“没这人”的干部"),
        ("post", assign, {"cadre": "李帮扶", "due_on": "下个月"}, 422, "年-月-日"),
        ("post", assign, {"cadre": "李帮扶", "due_on": "2020-01-01"}, 422, "不能早于今天"),
        ("post", "/api/v1/surveys/cases/999/assign", {"cadre": "李帮扶", "due_on": tomorrow}, 404, "没有这条问题线索"),
        ("post", f"/api/v1/surveys/cases/{case['id']}/resolve", {"action": "   "}, 422, "做了什么"),
        ("post", f"/api/v1/surveys/cases/{case['id']}/resolve", {}, 422, "action"),
        ("post", "/api/v1/surveys/visits", {"household": "X-9", "cadre": "李帮扶", "checks": ALL_OK}, 422, "没有户编号"),
        ("post", "/api/v1/surveys/visits", {"household": "石桥村-0000", "cadre": "李帮扶",
                                            "checks": {"food_clothing": True}}, 422, "义务教育"),
        ("post", "/api/v1/surveys/visits", {"household": "石桥村-0000", "cadre": "李帮扶", "checks": ALL_OK,
                                            "date": "2099-01-01"}, 422, "将来"),
        ("post", "/api/v1/surveys/visits", {"household": "石桥村-0000", "cadre": "李帮扶", "checks": ALL_OK,
                                            "date": "昨天"}, 422, "年-月-日"),
        ("post", "/api/v1/surveys/visits", {"household": "石桥村-0000", "cadre": "李帮扶",
                                            "checks": {**ALL_OK, "roof": True}}, 422, "checks"),
    ]
    for method, path, body, code, words in cases:
        response = app_client.request(method, path, json=body, headers=admin)
        assert response.status_code == code, (path, body, response.text)
        assert words in response.json()["detail"] and is_chinese(response.json()["detail"]), response.text
    done = app_client.post(f"/api/v1/surveys/cases/{case['id']}/resolve", json={"action": "已处理"}, headers=admin)
    assert done.status_code == 200 and done.json()["told"] is False
    again = app_client.post(f"/api/v1/surveys/cases/{case['id']}/resolve", json={"action": "已处理"}, headers=admin)
    assert again.status_code == 422 and "已经办结" in again.json()["detail"]
    late = app_client.post(assign, json={"cadre": "李帮扶", "due_on": tomorrow}, headers=admin)
    assert late.status_code == 422 and "已经办结" in late.json()["detail"]


# -- pages -----------------------------------------------------------------------------------------

def test_pages_start_show_figures_assign_resolve_and_record_a_visit(app_client: TestClient, api: FakeWeChatAPI,
                                                                    services: Services) -> None:
    csrf = form_login(app_client, "石村干", "/console/surveys")
    page = app_client.get("/console/surveys")
    assert '<a href="/console/surveys" aria-current="page">满意度</a>' in page.text
    assert 'name="village" value="石桥村"' in page.text and "枫林村" not in page.text and 'name="all"' not in page.text
    refused = app_client.post("/console/surveys", data={"village": "枫林村", "csrf": csrf})
    assert refused.status_code == 403 and "枫林村" in refused.text
    empty = app_client.post("/console/surveys", data={"title": "冬季", "csrf": csrf})
    assert empty.status_code == 422 and "范围" in empty.text and 'value="冬季"' in empty.text
    started = app_client.post("/console/surveys", data={"village": "石桥村", "csrf": csrf})
    assert started.status_code == 303 and "done=started" in started.headers["location"]
    detail = app_client.get(started.headers["location"])
    assert "调查已发起" in detail.text and 'id="chart-rates"' in detail.text and "/api/v1/surveys/" in detail.text
    wait_for(lambda: len(api.calls_to(CUSTOM)) >= 3, timeout=20)
    dissatisfied(app_client, "石桥村-0000")
    url = started.headers["location"].split("?")[0]
    detail = app_client.get(url)
    assert re.search(r"<th>已完成</th><td data-key=\"completed\">1</td>", detail.text)
    assert re.search(r"<th>未回复</th><td data-key=\"no_reply\">2</td>", detail.text)
    by_helper = app_client.get(url, params={"by": "helper"})
    assert "按帮扶责任人统计" in by_helper.text and "李帮扶" in by_helper.text
    assert 'id="close-survey"' not in detail.text  # only the township closes a campaign

    cases = app_client.get("/console/surveys/cases")
    assert "房子漏雨一直没人来看" in cases.text and "已超期" not in cases.text
    case_id = int(re.search(r'id="case-(\d+)"', cases.text).group(1))  # type: ignore[union-attr]
    bad = app_client.post(f"/console/surveys/cases/{case_id}/assign",
                          data={"cadre": "没这人", "due_on": today().isoformat(), "csrf": csrf})
    assert bad.status_code == 422 and "没有叫“没这人”的干部" in bad.text
    assigned = app_client.post(f"/console/surveys/cases/{case_id}/assign",
                               data={"cadre": "李帮扶", "due_on": today().isoformat(), "csrf": csrf})
    assert assigned.status_code == 303
    assert "线索已分派" in app_client.get(assigned.headers["location"].split("#")[0]).text
    resolved = app_client.post(f"/console/surveys/cases/{case_id}/resolve",
                               data={"action": "已上门查看", "reply": "已经安排人上门了。", "csrf": csrf})
    assert resolved.status_code == 303 and "done=told" in resolved.headers["location"]
    wait_for(lambda: any("安排人上门" in c.json["text"]["content"] for c in api.calls_to(CUSTOM)), timeout=20)

    form = app_client.get("/console/surveys/visit")
    assert form.status_code == 200 and 'type="radio" name="water" value="0"' in form.text
    missing = app_client.post("/console/surveys/visit", data={
        "household": "石桥村-0001", "cadre": "石村干", "date": today().isoformat(), "notes": "家里缺劳力",
        "food_clothing": "1", "education": "1", "medical": "0", "housing": "1", "csrf": csrf})
    assert missing.status_code == 422 and "饮水安全" in missing.text
    assert 'value="石桥村-0001"' in missing.text and "家里缺劳力" in missing.text
    assert re.search(r'name="medical" value="0"[^>]*checked', missing.text)
    saved = app_client.post("/console/surveys/visit", data={
        "household": "石桥村-0001", "cadre": "石村干", "date": today().isoformat(), "notes": "家里缺劳力",
        "food_clothing": "1", "education": "1", "medical": "0", "housing": "1", "water": "1", "csrf": csrf})
    assert saved.status_code == 303
    after = app_client.get(saved.headers["location"])
    assert "走访已记录" in after.text and "基本医疗" in after.text
    with services.db.session() as session:
        visit = session.scalar(select(VisitCheck))
        assert visit is not None and (visit.medical, visit.water, visit.notes) == (False, True, "家里缺劳力")


# -- in a real browser -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_start_from_the_page_see_the_chart_and_record_a_visit_on_a_phone(
        services: Services, live_url: str, browser: Any, api: FakeWeChatAPI) -> None:
    from tests.support.browser import DESKTOP, PHONE, log_in, screenshot

    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_url, "王镇长", PASSWORD)
    page.goto(f"{live_url}/console/surveys")
    page.fill("#title", "冬季满意度调查")
    page.check("input[name=village][value=石桥村]")
    page.check("input[name=village][value=枫林村]")
    page.click("#start-button")
    page.wait_for_url("**/console/surveys/*")
    assert "调查已发起" in page.inner_text("main")
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-rates')")
    chart = page.evaluate("""() => {
        const canvas = document.getElementById('chart-rates'), chart = Chart.getChart(canvas);
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) inked++; }
        return {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data), inked,
                width: canvas.width, height: canvas.height};
    }""")
    assert sorted(chart["labels"]) == ["枫林村", "石桥村"] and chart["data"] == [[0, 0], [0, 0]]
    assert chart["width"] > 100 and chart["height"] > 100 and chart["inked"] > 1000, chart

    # A household answers over the webhook while the page is open: the numbers follow without a reload.
    wait_for(lambda: len(api.calls_to(CUSTOM)) >= 5, timeout=20)
    with httpx.Client(base_url=live_url, timeout=20) as wechat:
        satisfied(wechat, "石桥村-0000")
    page.wait_for_function("() => document.querySelector('#progress [data-key=responses]').textContent === '1'",
                           timeout=20_000)
    assert page.inner_text("#progress [data-key=response_rate]") == "20.0%"
    page.reload()
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-rates')")
    drawn = page.evaluate("() => { const c = Chart.getChart('chart-rates'); "
                          "return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]])); }")
    assert drawn == {"枫林村": 0, "石桥村": 100}
    screenshot(page, "surveys-1280")

    page.set_viewport_size(PHONE)
    page.goto(f"{live_url}/console/surveys/visit")
    page.fill("#household", "枫林村-0001")
    page.fill("#cadre", "赵枫林")
    for key in ALL_OK:
        page.check(f"input[name={key}][value=\"{'0' if key == 'water' else '1'}\"]")
    page.fill("#notes", "自来水还没接通")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "surveys-visit-375")
    page.click("#visit-button")
    page.wait_for_url("**/console/surveys/visit?done=visit")
    assert "走访已记录" in page.inner_text("main") and "饮水安全" in page.inner_text("#visits")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto(f"{live_url}/console/surveys")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    with httpx.Client(base_url=live_url, timeout=20) as wechat:
        dissatisfied(wechat, "枫林村-0000")
    page.goto(f"{live_url}/console/surveys/cases")
    page.click("tr[data-status=open] summary")  # 分派: the form opens in the row
    assert page.is_visible("tr[data-status=open] form.assign input[name=cadre]")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "surveys-cases-375")
    assert not errors, errors
    context.close()
