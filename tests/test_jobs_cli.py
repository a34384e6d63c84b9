"""`sisong jobs …` (issue 9): add, import, list, close, push --wait --json, signups, outcome, report, XLSX."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Settings
from bot.services import Services, build_services
from storage import jobs as service
from storage.households import household_by_number
from storage.models.accounts import AuditLog
from storage.models.jobs import JobPosting
from tests.support import jobs_data as data
from tests.support.fake_wechat_api import FakeWeChatAPI

runner = CliRunner()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(wechat_template_job=data.TEMPLATE_ID, push_rate="1000/second", embedded_worker="false")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


@pytest.fixture
def sisong(monkeypatch: pytest.MonkeyPatch, settings: Settings, services: Services) -> Callable[..., Any]:
    """Run `sisong jobs …` against the test's database and fake WeChat."""
    from bot.config import get_settings
    from knowledge import cli as knowledge_cli

    env = {
        "SISONG_DATABASE_URL": settings.database_url, "SISONG_REDIS_URL": settings.redis_url or "",
        "SISONG_WECHAT_TOKEN": settings.wechat_token, "SISONG_WECHAT_APPID": settings.wechat_appid,
        "SISONG_WECHAT_SECRET": settings.wechat_secret, "SISONG_WECHAT_API_BASE": settings.wechat_api_base,
        "SISONG_WECOM_ROBOT_URL": settings.wecom_robot_url or "", "SISONG_API_RETRY_WAIT": "0.01",
        "SISONG_QUEUE_PATH": str(Path.cwd() / "cli-queue.db"), "SISONG_WECHAT_TEMPLATE_JOB": data.TEMPLATE_ID,
        "SISONG_PUSH_RATE": "1000/second", "SISONG_EMBEDDED_WORKER": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)

    def run(*args: str) -> Any:
        result = runner.invoke(app, ["jobs", *args], catch_exceptions=False)
        return result

    yield run
    get_settings.cache_clear()


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def add(sisong: Callable[..., Any], *extra: str, headcount: str = "2") -> int:
    result = sisong("add", "--title", "电子厂普工", "--employer", "县工业园电子厂", "--location", "县城工业园",
                    "--salary", "4500元/月", "--headcount", headcount, "--contact", "王经理 13800001111", *extra,
                    "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"id"}
    return int(payload["id"])


def test_add_list_show_close(sisong: Callable[..., Any], services: Services) -> None:
    job = add(sisong, "--deadline", "2099-12-31")
    listed = lines(sisong("list", "--json").stdout)
    assert [(p["id"], p["status"], p["status_label"], p["deadline"]) for p in listed] == [
        (job, "open", "已发布", "2099-12-31")]
    assert "电子厂普工" in sisong("show", str(job)).stdout
    bad = sisong("add", "--title", "", "--employer", "x", "--location", "y", "--salary", "z", "--headcount", "0",
                 "--contact", "c", "--deadline", "2001-01-01")
    assert bad.exit_code == 1
    assert "岗位名称是空的" in bad.stderr and "招聘人数" in bad.stderr and "已经过了" in bad.stderr
    closed = sisong("close", str(job))
    assert closed.exit_code == 0 and "已关闭" in closed.stdout
    assert lines(sisong("list", "--status", "已关闭", "--json").stdout)[0]["id"] == job
    assert sisong("close", str(job)).exit_code == 1
    with services.db.session() as session:
        actions = [a for a, in session.execute(select(AuditLog.action).order_by(AuditLog.id))]
        actors = {a for a, in session.execute(select(AuditLog.actor))}
    assert actions == ["job_add", "job_close"] and actors == {"命令行"}


def _sheet(path: Path, rows: list[list[Any]]) -> Path:
    book = Workbook()
    ws = book.active
    ws.append(["青山镇2026年第一批就业岗位"])
    ws.append(["岗位名称", "用工单位", "工作地点", "薪资待遇", "招聘人数", "联系人及电话", "岗位要求", "截止日期", "备注"])
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def test_import_reports_every_bad_row_and_writes_nothing(sisong: Callable[..., Any], services: Services,
                                                         tmp_path: Path) -> None:
    from datetime import datetime

    bad = _sheet(tmp_path / "bad.xlsx", [
        ["保洁员", "镇卫生院", "镇上", "2000元/月", 2, "李主任 13900001111", "", "2099-06-30", ""],
        ["", "果园", "青山村", "150元/天", "十", "张 13900002222", "", "", ""],
        ["采摘工", "果园", "青山村", "150元/天", 5, "", "", "2001-01-01", ""],
    ])
    result = sisong("import", str(bad))
    assert result.exit_code == 1
    assert "第 4 行" in result.stderr and "岗位名称是空的" in result.stderr and "不是整数" in result.stderr
    assert "第 5 行" in result.stderr and "联系方式是空的" in result.stderr and "已经过了" in result.stderr
    assert "没有导入任何内容" in result.stderr
    with services.db.session() as session:
        assert session.scalar(select(JobPosting.id)) is None
    good = _sheet(tmp_path / "good.xlsx", [
        ["保洁员", "镇卫生院", "镇上", "2000元/月", 2, "李主任 13900001111", "", datetime(2099, 6, 30), ""],
        ["采摘工", "果园", "青山村", "150元/天", "5人", "张 13900002222", "能吃苦", "2099年7月1日", "急招"],
    ])
    result = sisong("import", str(good), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["created"]) == 2 and report["rows"] == 2
    listed = {p["title"]: p for p in lines(sisong("list", "--json").stdout)}
    assert listed["采摘工"]["headcount"] == 5 and listed["采摘工"]["deadline"] == "2099-07-01"
    assert listed["保洁员"]["deadline"] == "2099-06-30"
    # The same list again (one row now with stray spaces, one new row twice): only the new one is added.
    again = _sheet(tmp_path / "again.xlsx", [
        ["保洁员", "镇卫生院", "镇上", "2000元/月", 2, "李主任  13900001111", "", datetime(2099, 6, 30), ""],
        ["采摘工", "果园", "青山村", "150元/天", "5人", "张 13900002222", "能吃苦", "2099年7月1日", "急招"],
        ["搬运工", "物流园", "县城", "180元/天", 3, "王 13900003333", "", "", ""],
        ["搬运工", "物流园", "县城", "180元/天", 3, "王 13900003333", "", "", ""],
    ])
    second = json.loads(sisong("import", str(again), "--json").stdout)
    assert len(second["created"]) == 1 and sorted(second["existing"]) == sorted(report["created"])
    assert "没有重复添加" in sisong("import", str(again)).stdout
    assert sorted(p["title"] for p in lines(sisong("list", "--json").stdout)) == ["保洁员", "搬运工", "采摘工"]


def test_push_wait_json_then_signups_outcome_and_report(sisong: Callable[..., Any], services: Services,
                                                        api: FakeWeChatAPI, tmp_path: Path) -> None:
    a = data.households(services, "青山村", 3, interacted=None)
    data.households(services, "绿水村", 2, interacted=None, labourers=0)
    job = add(sisong, headcount="1")
    result = sisong("push", str(job), "--village", "青山村", "--village", "绿水村", "--labour-only", "--wait", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {k: payload[k] for k in ("job", "recipients", "sent", "failed", "skipped")} == {
        "job": job, "recipients": 3, "sent": 3, "failed": 0, "skipped": 0}
    again = json.loads(sisong("push", str(job), "--all", "--wait", "--json").stdout)
    assert (again["recipients"], again["sent"], again["skipped"]) == (2, 2, 3)  # 3 already reached
    assert len(api.calls_to("message/template/send")) == 5
    assert sisong("push", str(job), "--village", "无此村", "--wait").exit_code == 1

    with services.db.session() as session:
        township = session.scalar(select(JobPosting.township_id))
        for m in a[:2]:
            service.signup(session, job, household_by_number(session, township, m.number))
    names = lines(sisong("signups", str(job), "--json").stdout)
    assert [(n["number"], n["status"], n["position"]) for n in names] == [
        (a[0].number, "signed", None), (a[1].number, "waiting", 1)]
    assert names[0]["phone"] == "13812345678"  # the cadres' own tool: in clear
    outcome = sisong("outcome", str(job), a[0].number, "录用", "--json")
    assert json.loads(outcome.stdout)["outcome"] == "hired"
    assert sisong("outcome", str(job), a[2].number, "录用").exit_code == 1  # not signed up
    assert sisong("outcome", str(job), a[0].number, "开除").exit_code == 1

    report = json.loads(sisong("report", str(job), "--json").stdout)
    assert report["rows"] == [{"job": job, "title": "电子厂普工", "pushed": 5, "delivered": 5, "signed_up": 2,
                               "hired": 1, "waiting": 1, "rejected": 0, "no_show": 0, "unconfirmed": 0,
                               "failed": 0}]
    by_village = json.loads(sisong("report", str(job), "--by", "village", "--json").stdout)["rows"]
    assert {(r["village"], r["pushed"], r["signed_up"], r["hired"]) for r in by_village} == {
        ("青山村", 3, 2, 1), ("绿水村", 2, 0, 0)}
    out = tmp_path / "统计.xlsx"
    assert sisong("report", "--by", "village", "--xlsx", str(out)).exit_code == 0
    book = load_workbook(out)
    stats = [list(r) for r in book["统计"].iter_rows(min_row=3, values_only=True)]
    assert stats[0][:6] == ["岗位编号", "岗位名称", "村", "推送", "送达", "报名"]
    assert [job, "电子厂普工", "青山村", 3, 3, 2] in [row[:6] for row in stats[1:]]
    assert [r[1] for r in book["报名名单"].iter_rows(min_row=2, values_only=True)] == [a[0].number, a[1].number]
    with services.db.session() as session:
        actions = [x for x, in session.execute(select(AuditLog.action).order_by(AuditLog.id))]
    assert actions == ["job_add", "job_push", "job_push", "job_outcome"]


def test_push_detach_prints_how_to_watch(sisong: Callable[..., Any], services: Services, api: FakeWeChatAPI) -> None:
    data.households(services, "青山村", 2, interacted=None)
    job = add(sisong)
    result = sisong("push", str(job), "--all", "--detach")
    assert result.exit_code == 0
    assert "sisong jobs watch" in result.stdout
    push_id = int(result.stdout.split("sisong jobs watch")[1].split()[0])
    services.pusher.drain(wait_for={push_id})  # a worker elsewhere would do this
    watched = json.loads(sisong("watch", str(push_id), "--json").stdout)
    assert watched["sent"] == 2 and watched["finished"]


def test_push_with_a_progress_bar_ends_with_the_result(sisong: Callable[..., Any], services: Services,
                                                       api: FakeWeChatAPI) -> None:
    data.households(services, "青山村", 3, interacted=None)
    job = add(sisong)
    result = sisong("push", str(job), "--village", "青山村")
    assert result.exit_code == 0, result.output
    assert "对象 3 人" in result.stdout and "完成：对象 3 人，已发出 3" in result.stdout
    assert "推送 1" in result.stderr  # the bar


def test_push_wait_returns_when_the_days_quota_is_used_up(sisong: Callable[..., Any], services: Services,
                                                          api: FakeWeChatAPI) -> None:
    """45009 for everyone: `--wait` does not sit until midnight; it says who waits and until when."""
    members = data.households(services, "青山村", 2, interacted=None)
    for member in members:
        api.inject_for("message/template/send", member.openid, {"errcode": 45009, "errmsg": "quota"})
    job = add(sisong)
    result = sisong("push", str(job), "--village", "青山村", "--wait")
    assert result.exit_code == 0, result.output
    assert "还有 2 人要等到" in result.stdout and " 00:01 以后" in result.stdout
    assert "完成" not in result.stdout
    payload = json.loads(sisong("watch", "1", "--json").stdout)
    assert (payload["sent"], payload["pending"], payload["finished"]) == (0, 2, False)
