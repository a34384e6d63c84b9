"""四问一查 over chat (issue 10), story by story: signed WeChat requests in, XML replies and pushes out.

A campaign is started with the same service the CLI and console call; its
invitations go through the real push engine to the fake WeChat API; each
household member then talks to the webhook as WeChat would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from bot.app import create_app
from bot.cli import app as cli_app
from bot.config import Settings
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from bot.survey.campaigns import queue_reminders, start_campaign
from storage import surveys
from storage.clock import quiet_until
from storage.households import ensure_township
from storage.models.org import GroupNotice
from storage.models.pushes import PushDelivery
from storage.models.surveys import SurveyCase, SurveyResponse
from storage.pushes import Targets
from tests.conftest import APPID, TOKEN
from tests.support import jobs_data as data
from tests.support.fake_wechat_api import FakeWeChatAPI

SURVEY_TEMPLATE = "TPL_survey_invite_000000001"
CUSTOM = "message/custom/send"
TEMPLATE = "message/template/send"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Quiet hours off (start == end) so the stories do not depend on the hour they run at.
    return make_settings(wechat_template_survey=SURVEY_TEMPLATE, push_rate="1000/second", api_timeout=1.0,
                         quiet_hours="03:00-03:00", embedded_worker="false")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield test_client


def member(openid: str) -> WeChatSimulator:
    return WeChatSimulator(TOKEN, APPID, None, openid=openid)


def say(client: TestClient, who: WeChatSimulator, text: str) -> str:
    return who.post(client, who.text(text)).text or ""


def campaign(services: Services, *villages: str) -> int:
    created = start_campaign(services, Targets(tuple(villages)) if villages else Targets(everyone=True))
    push_id = created.push.push.id
    services.pusher.drain(wait_for={push_id}, deadline=time.monotonic() + 20)
    return created.campaign.id


def response(services: Services, openid: str, campaign_id: int) -> SurveyResponse:
    with services.db.session() as session:
        found = surveys.response_for(session, openid, statuses=("invited", "in_progress", "paused", "completed"),
                                     campaign_id=campaign_id)
        assert found is not None
        session.expunge(found)
        return found


def township(services: Services) -> int:
    with services.db.session() as session:
        return ensure_township(session, services.settings.township).id


def finish(client: TestClient, who: WeChatSimulator, *answers: str) -> list[str]:
    return [say(client, who, text) for text in answers]


# -- the happy path ---------------------------------------------------------------------------------------------


def test_invited_household_answers_every_question_and_the_figures_count_it(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶", interacted=None)
    data.households(services, "青山村", 1, prefix="二", interacted=timedelta(hours=2))
    cid = campaign(services, "青山村")
    templates = api.calls_to(TEMPLATE)
    assert [c.json["template_id"] for c in templates] == [SURVEY_TEMPLATE]  # outside the window: the template
    assert templates[0].json["data"]["thing3"]["value"] == "回复“开始”参加"
    assert "回复“开始”参加" in api.calls_to(CUSTOM)[0].json["text"]["content"]  # inside it: a message
    who = member(family[0].openid)
    first = say(client, who, "开始")
    assert "谢谢您参加" in first and "第1题：您认识驻村工作队吗？" in first and "1 认识" in first
    second = say(client, who, "认得")
    assert "第2题：您的帮扶责任人是李帮扶，您认识吗？" in second
    third = say(client, who, "1")
    assert "第3题" in third and "可以选几个" in third
    fourth = say(client, who, "产业和教育")
    assert "第4题：您对帮扶成效满意吗？" in fourth
    done = say(client, who, "我很满意")
    assert "问卷答完了" in done
    row = response(services, family[0].openid, cid)
    assert row.status == "completed" and row.openid == family[0].openid
    assert surveys.answers_of(row) == {"know_team": (1,), "know_helper": (1,), "measures": (1, 3),
                                       "satisfaction": (1,)}
    with services.db.session() as session:
        figures = surveys.stats(session, cid, "village")["青山村"]
        assert {k: figures[k] for k in surveys.STATS_KEYS} == {
            "invited": 2, "responses": 1, "know_team": 1, "know_helper": 1, "satisfied": 1,
            "basically_satisfied": 0, "dissatisfied": 0, "response_rate": 0.5, "satisfaction_rate": 1.0}
        assert surveys.dispositions(session, cid) == {"completed": 1, "no_reply": 1}
    # Said again: done already, nothing recorded twice.
    assert "已经答完" in say(client, who, "开始")


def test_dissatisfied_raises_a_case_the_supervisors_hear_of_and_a_closed_case_tells_the_household(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, area="东片区", helper="李帮扶", interacted=timedelta(hours=1))
    data.group(services, "青山村工作群", api.robot_url("village"), villages=["青山村"])
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "不认识", "7")
    comment_prompt = say(client, who, "不太满意")
    assert "您是说" not in comment_prompt  # 不太满意 is 不满意, not 满意
    assert "第5题：请说说哪里不满意" in comment_prompt and "跳过" in comment_prompt
    assert "会请工作人员" in say(client, who, "房子漏雨一直没人来看")
    row = response(services, family[0].openid, cid)
    assert row.satisfaction == 3 and surveys.answers_of(row)["comment"] == "房子漏雨一直没人来看"
    with services.db.session() as session:
        cases = session.scalars(select(SurveyCase).order_by(SurveyCase.reason)).all()
        assert sorted(c.reason for c in cases) == ["dissatisfied", "unknown_helper"]
        alert = session.scalar(select(GroupNotice.markdown).where(GroupNotice.markdown.contains("### 满意度调查：")))
    assert alert is not None and "不满意" in alert and "房子漏雨" in alert and "李帮扶" in alert
    assert "张0" not in alert and "张＊" in alert  # the head's name masked
    tid = township(services)
    with services.db.session() as session:
        (case_view,) = [c for c in surveys.list_cases(session, tid) if c.reason == "dissatisfied"]
        assert case_view.comment == "房子漏雨一直没人来看" and case_view.status == "open"
        surveys.assign_case(session, tid, case_view.id, "李帮扶", datetime.now().date() - timedelta(days=1))
    with services.db.session() as session:
        assert [c.id for c in surveys.list_cases(session, tid, overdue=True)] == [case_view.id]
        surveys.close_case(session, tid, case_view.id, "已上门查看，安排维修", reply="已经安排人上门修房子了。")
    from bot.survey.campaigns import tell_household

    assert tell_household(services, case_view.id) == 1
    assert tell_household(services, case_view.id) == 0  # once
    services.pusher.drain(deadline=time.monotonic() + 10)
    told = [c for c in api.calls_to(CUSTOM) if "修房子" in c.json["text"]["content"]]
    assert len(told) == 1 and told[0].json["touser"] == family[0].openid


# -- how people answer ---------------------------------------------------------------------------------------


def test_answers_as_people_type_or_speak_them(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "①", "晓得", "1，4，5")
    confirm = say(client, who, "还可以")
    assert confirm == "您是说『基本满意』吗？回复1是 2不是"
    assert "问卷答完了" in say(client, who, "是的")
    row = response(services, family[0].openid, cid)
    assert surveys.answers_of(row) == {"know_team": (1,), "know_helper": (1,), "measures": (1, 4, 5),
                                       "satisfaction": (2,)}


def test_unclear_answers_are_asked_again_twice_then_the_helper_is_asked_to_call(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    data.group(services, "青山村工作群", api.robot_url("village"), villages=["青山村"])
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    say(client, who, "开始")
    again = say(client, who, "今天天气好")
    assert again.startswith("不好意思，没太明白") and "第1题" in again and "1 认识" in again
    assert "第1题" in say(client, who, "哦哦")
    moved = say(client, who, "嗯嗯嗯不知道怎么说")
    assert "请帮扶干部打电话问您" in moved and "第2题" in moved
    row = response(services, family[0].openid, cid)
    assert surveys.answers_of(row) == {"know_team": None} and row.know_team is None
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(GroupNotice)
                              .where(GroupNotice.markdown.contains("请打电话问一下"))) == 1


def test_a_policy_question_mid_survey_is_answered_then_the_survey_goes_on(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "1")
    reply = say(client, who, "危房改造补助标准是多少")
    assert "我们接着第3题" in reply and "您家接受过哪些帮扶措施" in reply
    assert "补助" in reply.split("我们接着")[0]
    assert "第4题" in say(client, who, "3")
    # An answer with a question riding on it: both are taken.
    both = say(client, who, "满意，危房改造补助标准是多少？")
    assert "您的回答记下了" in both and "问卷答完了" in both and "补助" in both.split("您的回答记下了")[0]


def test_wechat_retries_never_record_an_answer_twice(client: TestClient, services: Services,
                                                     api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    say(client, who, "开始")
    xml = who.text("1")
    first = who.post(client, xml).text
    again = who.post(client, xml).text  # WeChat delivering the same message again
    assert first == again and "第2题" in first
    row = response(services, family[0].openid, cid)
    assert row.step == "know_helper" and surveys.answers_of(row) == {"know_team": (1,)}


def test_quit_pauses_and_the_household_resumes_days_later_without_the_cache(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "1")
    assert "先停在第3题" in say(client, who, "退出")
    services.state.delete(f"session:{family[0].openid}")  # days later: the conversation's cache is gone
    resumed = say(client, who, "开始")
    assert resumed.startswith("好的，我们接着答。第3题")
    # And mid-way, with the cache gone again, a bare answer still finds its question (the database knows).
    services.state.delete(f"session:{family[0].openid}")
    assert "第4题" in say(client, who, "2")
    assert response(services, family[0].openid, cid).status == "in_progress"


def test_two_family_members_one_response(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, members=2, helper="李帮扶")
    cid = campaign(services, "青山村")
    first, second = member(family[0].openid), member(family[1].openid)
    assert len(api.calls_to(CUSTOM)) + len(api.calls_to(TEMPLATE)) == 1  # one invitation per household
    say(client, first, "开始")
    assert "另一位正在答" in say(client, second, "开始")
    finish(client, first, "1", "1", "1", "1")
    done = say(client, second, "开始")
    assert "另一个微信" in done and family[0].openid[-4:] in done and "不用再答" in done
    assert response(services, family[0].openid, cid).openid == family[0].openid


def test_a_second_campaign_starts_afresh(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    first = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "1", "1", "1")
    second = campaign(services, "青山村")
    reply = say(client, who, "开始")
    assert "谢谢您参加" in reply and "第1题" in reply
    say(client, who, "2")
    assert surveys.answers_of(response(services, family[0].openid, second)) == {"know_team": (2,)}
    assert surveys.answers_of(response(services, family[0].openid, first))["know_team"] == (1,)


def test_reply_1_to_the_invitation_starts_it(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    campaign(services, "青山村")
    assert "第1题" in say(client, member(family[0].openid), "1")


def test_unbound_and_uninvited_followers_are_told_kindly(client: TestClient, services: Services,
                                                         api: FakeWeChatAPI) -> None:
    stranger = member("oStrangerNotBound00000000001")
    assert "绑定" in stranger.post(client, stranger.event("CLICK", event_key="SURVEY")).text
    family = data.households(services, "青山村", 1)
    assert "现在没有需要您做的满意度调查" in say(client, member(family[0].openid), "开始")


# -- reminders, quiet hours ------------------------------------------------------------------------------


def test_one_reminder_to_those_who_have_not_finished(client: TestClient, services: Services,
                                                     api: FakeWeChatAPI) -> None:
    done, waiting = data.households(services, "青山村", 2, helper="李帮扶")
    cid = campaign(services, "青山村")
    finish(client, member(done.openid), "开始", "1", "1", "1", "1")
    assert queue_reminders(services) == 0  # not yet: the delay has not passed
    with services.db.session() as session:
        session.execute(update(surveys.SurveyCampaign).values(created_at=datetime.now(timezone.utc) - timedelta(days=3)))
    assert queue_reminders(services) == 1
    assert queue_reminders(services) == 0  # never more than once
    services.pusher.drain(deadline=time.monotonic() + 10)
    reminders = [c for c in api.calls_to(CUSTOM) if "还没有做完" in c.json["text"]["content"]]
    assert [c.json["touser"] for c in reminders] == [waiting.openid]
    assert response(services, waiting.openid, cid).reminded_at is not None


def test_nothing_goes_out_at_night(make_settings: Callable[..., Settings], api: FakeWeChatAPI) -> None:
    now = datetime.now(timezone.utc).astimezone(timezone(timedelta(hours=8)))
    start = (now - timedelta(hours=1)).strftime("%H:%M")
    end = (now + timedelta(hours=2)).strftime("%H:%M")
    services = build_services(make_settings(wechat_template_survey=SURVEY_TEMPLATE, push_rate="1000/second",
                                            quiet_hours=f"{start}-{end}", embedded_worker="false"), migrate=True)
    try:
        data.households(services, "青山村", 2)
        created = start_campaign(services, Targets(("青山村",)))
        services.pusher.drain(wait_for={created.push.push.id}, deadline=time.monotonic() + 10)
        assert api.calls_to(CUSTOM) == [] and api.calls_to(TEMPLATE) == []
        ends = quiet_until(datetime.now(timezone.utc), f"{start}-{end}")
        with services.db.session() as session:
            rows = session.scalars(select(PushDelivery)).all()
        assert rows and all(r.status == "pending" and r.backoffs == 0 and r.not_before >= ends for r in rows)
        assert queue_reminders(services) == 0
    finally:
        services.close()


# -- the CLI: figures, export, cases, visits ---------------------------------------------------------------


@pytest.fixture
def sisong(monkeypatch: pytest.MonkeyPatch, settings: Settings, services: Services) -> Callable[..., Any]:
    from bot.config import get_settings
    from knowledge import cli as knowledge_cli

    env = {
        "SISONG_DATABASE_URL": settings.database_url, "SISONG_REDIS_URL": settings.redis_url or "",
        "SISONG_WECHAT_TOKEN": settings.wechat_token, "SISONG_WECHAT_APPID": settings.wechat_appid,
        "SISONG_WECHAT_SECRET": settings.wechat_secret, "SISONG_WECHAT_API_BASE": settings.wechat_api_base,
        "SISONG_QUEUE_PATH": str(Path.cwd() / "cli-queue.db"), "SISONG_WECHAT_TEMPLATE_SURVEY": SURVEY_TEMPLATE,
        "SISONG_PUSH_RATE": "1000/second", "SISONG_EMBEDDED_WORKER": "false", "SISONG_QUIET_HOURS": "03:00-03:00",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, ["survey", *args], catch_exceptions=False)

    yield run
    get_settings.cache_clear()


def test_cli_start_stats_export_cases_and_visits(client: TestClient, services: Services, api: FakeWeChatAPI,
                                                 sisong: Callable[..., Any], tmp_path: Path) -> None:
    qing = data.households(services, "青山村", 2, area="东片区", helper="李帮扶")
    lv = data.households(services, "绿水村", 1, area="西片区", helper="王帮扶")
    result = sisong("start", "--village", "青山村", "--area", "西片区", "--json")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    assert set(started) >= {"id", "invited"} and started["invited"] == 3
    cid = started["id"]
    services.pusher.drain(deadline=time.monotonic() + 10)
    finish(client, member(qing[0].openid), "开始", "1", "1", "1，2", "满意")
    finish(client, member(qing[1].openid), "开始", "2", "2", "7", "不满意", '=HYPERLINK("http://x","点我")')
    finish(client, member(lv[0].openid), "开始", "1")  # partial
    by_village = json.loads(sisong("stats", str(cid), "--by", "village", "--json").stdout)
    assert by_village["by"] == "village"
    assert by_village["village"]["青山村"] == {
        "invited": 2, "responses": 2, "know_team": 1, "know_helper": 1, "satisfied": 1, "basically_satisfied": 0,
        "dissatisfied": 1, "response_rate": 1.0, "satisfaction_rate": 0.5}
    assert set(by_village["total"]) == set(surveys.STATS_KEYS)  # exactly the contract's keys
    assert by_village["village"]["绿水村"]["responses"] == 0
    assert by_village["total"]["invited"] == 3 and by_village["total"]["response_rate"] == round(2 / 3, 4)
    by_helper = json.loads(sisong("stats", str(cid), "--by", "helper", "--json").stdout)
    assert set(by_helper["helper"]) == {"李帮扶", "王帮扶"}
    by_area = json.loads(sisong("stats", str(cid), "--by", "area", "--json").stdout)
    assert by_area["area"]["东片区"]["responses"] == 2
    assert sisong("stats", str(cid), "--by", "county").exit_code == 2
    assert sisong("stats", "999").exit_code == 1

    visit = sisong("visit", "--household", qing[1].number, "--cadre", "李帮扶", "--ok", "吃穿不愁,义务教育,基本医疗",
                   "--not-ok", "住房安全", "--ok", "饮水安全", "--notes", "屋顶漏雨", "--json")
    assert visit.exit_code == 0, visit.output
    assert json.loads(visit.stdout)["checks"]["housing"] is False
    incomplete = sisong("visit", "--household", qing[1].number, "--cadre", "李帮扶", "--ok", "吃穿不愁")
    assert incomplete.exit_code == 1 and "义务教育" in incomplete.stderr

    cases = [json.loads(line) for line in sisong("cases", "--json").stdout.splitlines()]
    assert sorted(c["reason"] for c in cases) == ["dissatisfied", "unknown_helper"]
    assert all(c["number"] == qing[1].number and c["head"] == "张＊" for c in cases)
    case_id = cases[0]["id"]
    data.group(services, "青山村工作群", api.robot_url("village"), villages=["青山村"])
    assert sisong("assign", str(case_id), "--to", "李帮扶", "--due", "2099-01-01").exit_code == 0
    assert sisong("assign", str(case_id), "--to", "李帮扶", "--due", "2001-01-01").exit_code == 1  # before today
    with services.db.session() as session:  # the cadres' group hears who has it and by when
        told = session.scalar(select(GroupNotice.markdown).where(GroupNotice.markdown.contains("线索已分派")))
    assert told is not None and "交给：李帮扶，1月1日前办结" in told and qing[1].number in told
    assert sisong("resolve", str(case_id), "--action", "").exit_code == 1
    assert sisong("resolve", str(case_id), "--action", "已上门", "--reply", "已经安排人上门了。").exit_code == 0
    assert json.loads(sisong("cases", "--status", "closed", "--json").stdout.splitlines()[0])["id"] == case_id

    out = tmp_path / "调查.xlsx"
    assert sisong("export", str(cid), "--output", str(out)).exit_code == 0
    book = load_workbook(out)
    sheet = book["答卷"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["村", "组", "户编号", "户主", "帮扶责任人", "状态"]
    assert "1.know_team" in header and "3.measures_1产业" in header and "3.measures_7其他" in header
    rows = {r[2]: dict(zip(header, r)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    first = rows[qing[0].number]
    assert (first["状态"], first["1.know_team"], first["1.know_team_code"]) == ("已完成", "认识", 1)
    assert (first["3.measures_1产业"], first["3.measures_2就业"], first["3.measures_3教育"]) == (1, 1, 0)
    assert first["4.satisfaction"] == "满意" and first["户主"] == "张＊"
    second = rows[qing[1].number]
    assert second["4.satisfaction_code"] == 3 and second["3.measures_7其他"] == 1
    comment = next(c for c in sheet[list(rows).index(qing[1].number) + 2] if c.column == header.index("5.comment") + 1)
    assert comment.value == '=HYPERLINK("http://x","点我")' and comment.data_type == "s"  # text, never a formula
    assert rows[lv[0].number]["状态"] == "部分完成"
    summary = [r for r in book["各村汇总"].iter_rows(values_only=True)]
    assert summary[0][:3] == ("村", "invited", "responses")
    assert ("青山村", 2, 2) in [r[:3] for r in summary] and summary[-1][:3] == ("合计", 3, 2)
    visits = list(book["走访"].iter_rows(min_row=2, values_only=True))
    assert visits[0][0] == qing[1].number and visits[0][4:9] == ("达标", "达标", "达标", "不达标", "达标")


def test_a_household_may_decline_and_change_its_mind(client: TestClient, services: Services,
                                                     api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    assert "不打扰您了" in say(client, who, "不参加")
    with services.db.session() as session:
        assert surveys.dispositions(session, cid) == {"refused": 1}
        session.execute(update(surveys.SurveyCampaign).values(created_at=datetime.now(timezone.utc) - timedelta(days=3)))
    assert queue_reminders(services) == 0  # no reminder for a refusal
    assert "第1题" in say(client, who, "开始")


def test_two_quick_messages_cannot_both_record_against_one_step(services: Services, api: FakeWeChatAPI) -> None:
    """Two messages read the same version; the one that writes second is refused, not merged over."""
    family = data.households(services, "青山村", 1)
    cid = campaign(services, "青山村")
    with services.db.session() as one, services.db.session() as two:
        first = surveys.response_for(one, family[0].openid, campaign_id=cid)
        second = surveys.response_for(two, family[0].openid, campaign_id=cid)
        assert first is not None and second is not None and first.version == second.version
        surveys.save_step(one, first, answers={"know_team": (1,)}, step="know_helper", status="in_progress")
        one.commit()
        with pytest.raises(surveys.StaleStep):
            surveys.save_step(two, second, answers={"know_team": (2,)}, step="know_helper", status="in_progress")
    row = response(services, family[0].openid, cid)
    assert surveys.answers_of(row) == {"know_team": (1,)} and row.version == 1


def test_a_1_for_a_job_push_after_the_last_step_is_the_push_s_not_a_survey_answer(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    from bot.jobs import start_push

    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "1", "1")  # now at question 4 (满意度)
    job = data.posting(services)
    _, created = start_push(services, job, Targets(("青山村",)))
    services.pusher.drain(wait_for={created.push.id}, deadline=time.monotonic() + 10)
    reply = say(client, who, "1")
    assert reply.startswith("报名成功")
    row = response(services, family[0].openid, cid)
    assert row.step == "satisfaction" and "satisfaction" not in surveys.answers_of(row)
    assert "第4题" in say(client, who, "开始")


def test_a_second_member_cannot_decline_what_the_first_is_answering(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, members=2, helper="李帮扶")
    cid = campaign(services, "青山村")
    first, second = member(family[0].openid), member(family[1].openid)
    finish(client, first, "开始", "1")
    assert "另一位正在答" in say(client, second, "不参加")
    assert "第3题" in say(client, first, "1")
    assert response(services, family[0].openid, cid).status == "in_progress"


def test_an_answer_days_after_the_question_gets_the_question_again_first(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1")
    with services.db.session() as session:
        session.execute(update(SurveyResponse).values(updated_at=datetime.now(timezone.utc) - timedelta(days=2)))
    services.state.delete(f"session:{family[0].openid}")
    again = say(client, who, "2")
    assert again.startswith("您上次的调查还没答完，我们接着答。\n第2题")
    assert surveys.answers_of(response(services, family[0].openid, cid)) == {"know_team": (1,)}
    assert "第3题" in say(client, who, "2")


def test_declining_midway_keeps_the_answers_and_a_restart_goes_on_from_there(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, helper="李帮扶")
    cid = campaign(services, "青山村")
    who = member(family[0].openid)
    finish(client, who, "开始", "1", "2")
    assert "不打扰您了" in say(client, who, "不参加")
    assert "第3题" in say(client, who, "开始")
    assert surveys.answers_of(response(services, family[0].openid, cid)) == {"know_team": (1,), "know_helper": (2,)}
