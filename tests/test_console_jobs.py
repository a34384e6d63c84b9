"""岗位 in the console (issue 9): postings, pushes with progress, sign-ups and outcomes, by role.

The township: 东片 (石桥村 3 households, 柳溪村 2) and 西片 (枫林村 2), one bound
follower each, all inside WeChat's 48-hour window (so pushes go out as
customer-service messages to the fake WeChat API). Accounts: 王镇长 (镇管理员),
石村干 (村干部 of 石桥村), 赵督查 (督查), 李四 (帮扶责任人, linked to the cadre
李帮扶, who helps 石桥村-0000 and 枫林村-0000). API tests use Bearer tokens as
scripts do; CSRF is tested with a browser session. Pushes are sent by the
app's embedded queue consumer, as under ``sisong serve``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import Settings
from bot.services import Services, build_services
from storage import jobs as service
from storage.households import ensure_township
from storage.models import AuditLog
from storage.models.jobs import JobPosting
from storage.models.org import Household
from tests.conftest import wait_for
from tests.support import jobs_data as data
from tests.support.console_seed import PASSWORD, TOWNSHIP, bearer_headers, form_login
from tests.support.fake_wechat_api import FakeWeChatAPI

POSTING = {"title": "电子厂普工", "employer": "县工业园电子厂", "location": "县城工业园", "salary": "4500-6000元/月",
           "headcount": 5, "contact": "王经理 13800001111", "requirements": "18-50岁"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP, push_rate="1000/second", push_backoff=0.2, push_lease=2)


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
    """Bearer headers for an account (an API token, as a script would use)."""
    return bearer_headers(services.db)


def login(client: TestClient, name: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    return form_login(client, name, "/console/jobs")


def create(client: TestClient, headers: dict[str, str], **extra: Any) -> int:
    response = client.post("/api/v1/jobs", json={**POSTING, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def sign_up(services: Services, job: int, number: str) -> None:
    with services.db.session() as session:
        household = session.scalar(select(Household).where(Household.number == number))
        assert household is not None
        result = service.signup(session, job, household, via="cadre")
        assert result.status in (service.NEW_SIGNED, service.NEW_WAITING)


def finished(client: TestClient, headers: dict[str, str], push: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/jobs/pushes/{push}", headers=headers).json()
        return body if body.get("finished") else None

    return wait_for(done, timeout=20, interval=0.1)


def is_chinese(text: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", text))


# -- API: create, push, progress, report -----------------------------------------------------------

def test_admin_creates_and_pushes_and_the_progress_reaches_done(app_client: TestClient, as_user: Callable,
                                                                api: FakeWeChatAPI, services: Services) -> None:
    admin = as_user("王镇长")
    job = create(app_client, admin)
    listed = app_client.get("/api/v1/jobs", headers=admin).json()["items"]
    assert [p["id"] for p in listed] == [job] and listed[0]["status"] == "open"

    started = app_client.post(f"/api/v1/jobs/{job}/push", json={"villages": ["石桥村"], "labour_only": True},
                              headers=admin)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["recipients"] == 3 and body["progress_url"] == f"/api/v1/jobs/pushes/{body['push']}"
    state = finished(app_client, admin, body["push"])
    assert (state["recipients"], state["sent"], state["failed"], state["pending"]) == (3, 3, 0, 0)
    assert len(api.deliveries()) == 3

    again = app_client.post(f"/api/v1/jobs/{job}/push", json={"areas": ["东片"]}, headers=admin).json()
    assert again["recipients"] == 2 and again["skipped"] == {"already": 3}  # each follower once per posting
    finished(app_client, admin, again["push"])

    detail = app_client.get(f"/api/v1/jobs/{job}", headers=admin).json()
    assert set(detail["villages"]) == {"石桥村", "柳溪村"}
    assert [p["push"] for p in detail["pushes"]] == [again["push"], body["push"]]
    funnel = {r["village"]: r for r in detail["funnel"]}
    assert funnel["石桥村"]["pushed"] == 3 and funnel["石桥村"]["delivered"] == 3

    report = app_client.get("/api/v1/jobs/report", params={"by": "village"}, headers=admin).json()
    assert {r["village"]: r["pushed"] for r in report["rows"]} == {"石桥村": 3, "柳溪村": 2}
    xlsx = app_client.get("/api/v1/jobs/report", params={"job": job, "format": "xlsx"}, headers=admin)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert "spreadsheetml" in xlsx.headers["content-type"]

    closed = app_client.post(f"/api/v1/jobs/{job}/close", headers=admin)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    with services.db.session() as session:
        actions = set(session.scalars(select(AuditLog.action).where(AuditLog.actor == "王镇长")))
    assert {"job_add", "job_push", "job_close"} <= actions


# -- scope -----------------------------------------------------------------------------------------

def test_a_village_cadre_pushes_only_to_their_village(app_client: TestClient, as_user: Callable,
                                                      api: FakeWeChatAPI) -> None:
    admin, cadre = as_user("王镇长"), as_user("石村干")
    job = create(app_client, admin)
    for targets, words in (({"villages": ["枫林村"]}, "枫林村"), ({"villages": ["石桥村", "柳溪村"]}, "柳溪村"),
                           ({"areas": ["东片"]}, "柳溪村"), ({"all": True}, "全镇")):
        refused = app_client.post(f"/api/v1/jobs/{job}/push", json=targets, headers=cadre)
        assert refused.status_code == 403, (targets, refused.text)
        assert words in refused.json()["detail"]
    assert not api.deliveries()

    mine = app_client.post(f"/api/v1/jobs/{job}/push", json={"villages": ["石桥村"]}, headers=cadre)
    assert mine.status_code == 202 and mine.json()["recipients"] == 3
    finished(app_client, cadre, mine.json()["push"])

    others = app_client.post(f"/api/v1/jobs/{job}/push", json={"villages": ["枫林村"]}, headers=admin).json()
    assert app_client.get(f"/api/v1/jobs/pushes/{others['push']}", headers=cadre).status_code == 403
    detail = app_client.get(f"/api/v1/jobs/{job}", headers=cadre).json()
    assert [p["push"] for p in detail["pushes"]] == [mine.json()["push"]]
    assert {r["village"] for r in detail["funnel"]} == {"石桥村"}
    # The township's posting is not the village cadre's to close; their own is.
    refused = app_client.post(f"/api/v1/jobs/{job}/close", headers=cadre)
    assert refused.status_code == 403 and "不是您发布的" in refused.json()["detail"]
    own = create(app_client, cadre)
    assert app_client.post(f"/api/v1/jobs/{own}/close", headers=cadre).status_code == 200


def test_sign_ups_and_outcomes_are_scoped(app_client: TestClient, as_user: Callable, services: Services) -> None:
    admin, cadre, helper = as_user("王镇长"), as_user("石村干"), as_user("李四")
    job = create(app_client, admin, headcount=1)
    for number in ("石桥村-0000", "石桥村-0001", "枫林村-0000", "柳溪村-0000"):
        sign_up(services, job, number)

    everyone = app_client.get(f"/api/v1/jobs/{job}/signups", headers=admin).json()["items"]
    assert [s["number"] for s in everyone][:1] == ["石桥村-0000"]
    assert [s["position"] for s in everyone] == [None, 1, 2, 3]
    assert all("*" in (s["phone"] or "*") for s in everyone)  # lists mask phones
    village = app_client.get(f"/api/v1/jobs/{job}/signups", headers=cadre).json()["items"]
    assert {s["number"] for s in village} == {"石桥村-0000", "石桥村-0001"}
    own = app_client.get(f"/api/v1/jobs/{job}/signups", headers=helper).json()["items"]
    assert {s["number"] for s in own} == {"石桥村-0000", "枫林村-0000"}

    refused = app_client.post(f"/api/v1/jobs/{job}/outcome", json={"household": "枫林村-0000", "outcome": "录用"},
                              headers=cadre)
    assert refused.status_code == 403 and is_chinese(refused.json()["detail"])
    done = app_client.post(f"/api/v1/jobs/{job}/outcome", json={"household": "石桥村-0000", "outcome": "录用"},
                           headers=cadre)
    assert done.status_code == 200 and done.json()["outcome"] == "hired"
    by_helper = app_client.post(f"/api/v1/jobs/{job}/outcome",
                                json={"household": "枫林村-0000", "outcome": "未到岗"}, headers=helper)
    assert by_helper.status_code == 200
    report = app_client.get("/api/v1/jobs/report", params={"job": job, "by": "village"}, headers=cadre).json()
    assert [(r["village"], r["signed_up"], r["hired"]) for r in report["rows"]] == [("石桥村", 2, 1)]


def test_the_inspector_reads_but_changes_nothing(app_client: TestClient, as_user: Callable,
                                                 services: Services) -> None:
    admin, inspector = as_user("王镇长"), as_user("赵督查")
    job = create(app_client, admin)
    sign_up(services, job, "石桥村-0000")
    assert app_client.get("/api/v1/jobs", headers=inspector).status_code == 200
    assert len(app_client.get(f"/api/v1/jobs/{job}/signups", headers=inspector).json()["items"]) == 1
    for method, path, body in (
        ("post", "/api/v1/jobs", POSTING),
        ("post", f"/api/v1/jobs/{job}/push", {"villages": ["石桥村"]}),
        ("post", f"/api/v1/jobs/{job}/close", None),
        ("post", f"/api/v1/jobs/{job}/outcome", {"household": "石桥村-0000", "outcome": "录用"}),
    ):
        response = app_client.request(method, path, json=body, headers=inspector)
        assert response.status_code == 403, (path, response.text)
        assert "只能查看" in response.json()["detail"]
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobPosting)) == 1
    page = app_client.get(f"/console/jobs/{job}", headers=inspector)
    assert page.status_code == 200 and 'id="push-form"' not in page.text and "记录</button>" not in page.text


def test_cookie_callers_need_the_csrf_header(app_client: TestClient) -> None:
    csrf = login(app_client, "王镇长")
    refused = app_client.post("/api/v1/jobs", json=POSTING)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    created = app_client.post("/api/v1/jobs", json=POSTING, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201
    job = created.json()["id"]
    assert app_client.post(f"/api/v1/jobs/{job}/close").status_code == 403
    assert app_client.post(f"/console/jobs/{job}/close", data={"csrf": "wrong"}).status_code == 403
    assert app_client.post(f"/console/jobs/{job}/close", data={"csrf": csrf}).status_code == 303


def test_bad_input_is_a_chinese_4xx(app_client: TestClient, as_user: Callable) -> None:
    admin = as_user("王镇长")
    job = create(app_client, admin)
    cases = [
        ("post", "/api/v1/jobs", {**POSTING, "deadline": "2020-01-01"}, 422, "已经过了"),
        ("post", "/api/v1/jobs", {**POSTING, "deadline": "明年"}, 422, "看不懂"),
        ("post", "/api/v1/jobs", {**POSTING, "headcount": 0}, 422, "headcount"),
        ("post", "/api/v1/jobs", {**POSTING, "title": "  "}, 422, "岗位名称是空的"),
        ("post", f"/api/v1/jobs/{job}/push", {"villages": ["没有村"]}, 422, "没有村「没有村」"),
        ("post", f"/api/v1/jobs/{job}/push", {}, 422, "推送范围"),
        ("post", f"/api/v1/jobs/{job}/push", {"all": True, "villages": ["石桥村"]}, 422, "全镇"),
        ("post", "/api/v1/jobs/999/push", {"villages": ["石桥村"]}, 404, "没有这个岗位"),
        ("get", "/api/v1/jobs/999", None, 404, "没有这个岗位"),
        ("get", "/api/v1/jobs/99999999999", None, 422, "job_id"),
        ("get", "/api/v1/jobs/pushes/999", None, 404, "没有这次推送"),
        ("get", "/api/v1/jobs/report?job=999", None, 404, "没有这个岗位"),
        ("get", "/api/v1/jobs/report?format=pdf", None, 422, "format"),
        ("post", f"/api/v1/jobs/{job}/outcome", {"household": "石桥村-0000", "outcome": "很好"}, 422, "录用、未录用"),
        ("post", f"/api/v1/jobs/{job}/outcome", {"household": "石桥村-0000", "outcome": "录用"}, 422, "没有报名"),
        ("post", f"/api/v1/jobs/{job}/outcome", {"household": "X-9", "outcome": "录用"}, 422, "没有户编号"),
    ]
    for method, path, body, code, words in cases:
        response = app_client.request(method, path, json=body, headers=admin)
        assert response.status_code == code, (path, body, response.text)
        assert words in response.json()["detail"] and is_chinese(response.json()["detail"]), response.text
    assert app_client.post(f"/api/v1/jobs/{job}/close", headers=admin).status_code == 200
    again = app_client.post(f"/api/v1/jobs/{job}/close", headers=admin)
    assert again.status_code == 409 and "已经关闭" in again.json()["detail"]
    closed = app_client.post(f"/api/v1/jobs/{job}/push", json={"villages": ["石桥村"]}, headers=admin)
    assert closed.status_code == 409 and "不能推送" in closed.json()["detail"]
    raw = app_client.post("/api/v1/jobs", content=b"not json", headers={**admin, "Content-Type": "application/json"})
    assert raw.status_code == 422 and is_chinese(raw.json()["detail"])


# -- import ----------------------------------------------------------------------------------------

def workbook(*rows: list[Any]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["岗位名称", "用工单位", "工作地点", "薪资", "招聘人数", "联系方式", "截止日期"])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_import_is_all_or_nothing_with_a_row_by_row_report(app_client: TestClient, as_user: Callable,
                                                           services: Services) -> None:
    admin = as_user("王镇长")
    bad = workbook(["电子厂普工", "电子厂", "县城", "4500元/月", 20, "王经理 138", None],
                   ["", "服装厂", "县城", "4000元/月", "十", "李经理 139", "2020-01-01"])
    refused = app_client.post("/api/v1/jobs/import", files={"file": ("岗位.xlsx", bad, XLSX)},
                              data={"dry_run": "false"}, headers=admin)
    assert refused.status_code == 422
    body = refused.json()
    assert body["ok"] is False and "没有导入任何内容" in body["detail"]
    assert [e["line"] for e in body["errors"]] == [3]
    assert "岗位名称" in body["errors"][0]["reason"] and "招聘人数" in body["errors"][0]["reason"]
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobPosting)) == 0

    good = workbook(["电子厂普工", "电子厂", "县城", "4500元/月", 20, "王经理 138", "2099-12-31"],
                    ["服装厂车工", "服装厂", "", "4000元/月", None, "李经理 139", None])
    checked = app_client.post("/api/v1/jobs/import", files={"file": ("岗位.xlsx", good, XLSX)}, headers=admin)
    assert checked.status_code == 200 and checked.json()["dry_run"] is True and checked.json()["rows"] == 2
    done = app_client.post("/api/v1/jobs/import", files={"file": ("岗位.xlsx", good, XLSX)},
                           data={"dry_run": "false"}, headers=admin)
    assert done.status_code == 200 and len(done.json()["created"]) == 2
    listed = app_client.get("/api/v1/jobs", headers=admin).json()["items"]
    assert {p["title"]: p["headcount"] for p in listed} == {"电子厂普工": 20, "服装厂车工": 1}
    assert app_client.post("/api/v1/jobs/import", content=b"x", headers=admin).status_code == 415


# -- pages -----------------------------------------------------------------------------------------

def test_pages_create_push_and_show_the_sign_ups(app_client: TestClient, services: Services,
                                                 api: FakeWeChatAPI) -> None:
    csrf = login(app_client, "石村干")
    page = app_client.get("/console/jobs")
    assert page.status_code == 200 and '<a href="/console/jobs" aria-current="page">岗位</a>' in page.text
    bad = app_client.post("/console/jobs", data={**POSTING, "headcount": "0", "csrf": csrf})
    assert bad.status_code == 422 and "招聘人数" in bad.text and 'value="县工业园电子厂"' in bad.text
    created = app_client.post("/console/jobs", data={**POSTING, "csrf": csrf})
    assert created.status_code == 303
    url = created.headers["location"].split("?")[0]
    job = int(url.rsplit("/", 1)[1])
    detail = app_client.get(created.headers["location"])
    assert "岗位已发布" in detail.text
    # Only the account's village is offered; no area (柳溪村 is not theirs), no 全镇.
    assert 'name="village" value="石桥村"' in detail.text and "枫林村" not in detail.text
    assert 'name="area"' not in detail.text and 'name="all"' not in detail.text
    refused = app_client.post(f"{url}/push", data={"village": "枫林村", "csrf": csrf})
    assert refused.status_code == 403 and "枫林村" in refused.text
    pushed = app_client.post(f"{url}/push", data={"village": "石桥村", "labour_only": "true", "csrf": csrf})
    assert pushed.status_code == 303 and "push=" in pushed.headers["location"]
    watching = app_client.get(pushed.headers["location"].split("#")[0])
    assert 'id="push-progress"' in watching.text and "/api/v1/jobs/pushes/" in watching.text
    wait_for(lambda: len(api.deliveries()) == 3, timeout=20)

    sign_up(services, job, "石桥村-0001")
    sign_up(services, job, "枫林村-0000")
    detail = app_client.get(url)
    assert "石桥村-0001" in detail.text and "枫林村-0000" not in detail.text
    recorded = app_client.post(f"{url}/outcome", data={"household": "石桥村-0001", "outcome": "录用", "csrf": csrf})
    assert recorded.status_code == 303
    assert "结果已记录" in app_client.get(recorded.headers["location"].split("#")[0]).text
    with services.db.session() as session:
        township = ensure_township(session, TOWNSHIP).id
        assert [r.hired for r in service.funnel(session, township, job)] == [1]


def test_importing_from_the_page_reports_each_bad_row(app_client: TestClient, services: Services) -> None:
    csrf = login(app_client, "王镇长")
    bad = workbook(["电子厂普工", "", "县城", "4500元/月", 20, "王经理 138", None])
    response = app_client.post("/console/jobs/import", files={"file": ("岗位.xlsx", bad, XLSX)},
                               data={"csrf": csrf})
    assert response.status_code == 422 and "第 2 行" in response.text and "没有导入任何内容" in response.text
    good = workbook(["电子厂普工", "电子厂", "县城", "4500元/月", 20, "王经理 138", None])
    response = app_client.post("/console/jobs/import", files={"file": ("岗位.xlsx", good, XLSX)},
                               data={"csrf": csrf})
    assert response.status_code == 200 and "导入完成：新增 1 个岗位" in response.text
    forged = app_client.post("/console/jobs/import", files={"file": ("岗位.xlsx", good, XLSX)},
                             data={"csrf": "wrong"})
    assert forged.status_code == 403


# -- in a real browser -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_create_push_and_watch_it_finish_on_a_phone(services: Services, live_url: str, browser: Any,
                                                     api: FakeWeChatAPI) -> None:
    from tests.support.browser import DESKTOP, PHONE, log_in, screenshot

    api.set_latency("message/custom/send", 1.0)  # slow enough that the page sees the push under way
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_url, "王镇长", PASSWORD)
    page.goto(f"{live_url}/console/jobs")
    page.click("#create summary")
    for name, value in POSTING.items():
        if name != "requirements":
            page.fill(f"#{name}", str(value))
    page.click("#create-job")
    page.wait_for_url("**/console/jobs/*")
    assert "岗位已发布" in page.inner_text("main")
    page.check("input[name=village][value=石桥村]")
    page.check("input[name=labour_only]")
    page.click("#push-button")
    page.wait_for_selector("#push-progress")
    page.wait_for_selector("#push-progress[data-finished=true]", timeout=30_000)
    assert page.inner_text("[data-key=recipients]") == "3" and page.inner_text("[data-key=sent]") == "3"
    assert "发送完成" in page.inner_text("#push-state")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "jobs-375")
    page.reload()
    assert "石桥村" in page.inner_text("#funnel")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_url}/console/jobs")
    screenshot(page, "jobs-1280")
    context.close()
