"""送岗位 in the chat (issue 9): signed WeChat requests in, XML replies and outbound calls out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from bot.app import create_app
from bot.config import Settings
from bot.jobs import start_push
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from storage.models.jobs import JobPosting, JobSignup
from storage.models.org import GroupNotice
from storage.models.pushes import PushOptOut
from storage.pushes import Targets
from tests.conftest import APPID, TOKEN, wait_for
from tests.support import jobs_data as data
from tests.support.fake_wechat_api import FakeWeChatAPI


@pytest.fixture
def services(make_settings: Callable[..., Settings]) -> Iterator[Services]:
    built = build_services(make_settings(wechat_template_job=data.TEMPLATE_ID, push_rate="1000/second",
                                         api_timeout=1.0), migrate=True)
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


def signups(services: Services, job: int) -> list[tuple[str, str]]:
    with services.db.session() as session:
        return [(s.status, s.openid or "") for s in session.scalars(
            select(JobSignup).where(JobSignup.posting_id == job).order_by(JobSignup.id))]


def notices(services: Services, needle: str) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(GroupNotice)
                                  .where(GroupNotice.markdown.contains(needle))) or 0)


def test_list_shows_open_postings_own_village_first_and_pages(client: TestClient, services: Services,
                                                               api: FakeWeChatAPI) -> None:
    mine = data.households(services, "青山村", 1)
    data.households(services, "绿水村", 1)
    jobs = [data.posting(services, title=f"岗位{i}") for i in range(7)]
    start_push(services, jobs[0], Targets(("青山村",)))  # pushed to 青山村: first in its list
    start_push(services, jobs[1], Targets(("绿水村",)))
    reply = say(client, member(mine[0].openid), "岗位")
    lines = reply.splitlines()
    assert lines[0] == "现在有7个岗位，本村的排在前面："
    assert lines[1].startswith(f"{jobs[0]}. 岗位0｜")
    assert "回复编号看详情" in reply and "更多" in reply
    assert reply.count("｜") == 5 * 2  # five to a page (two bars a line)
    rest = say(client, member(mine[0].openid), "更多")
    assert rest.count("｜") == 2 * 2
    detail = say(client, member(mine[0].openid), str(jobs[3]))
    assert detail.startswith(f"【岗位 {jobs[3]}】岗位3") and f"报名 {jobs[3]}" in detail
    assert "就业岗位" not in reply
    # The menu's 岗位信息 says the same; an unbound follower may look too.
    stranger = member("oStrangerNotBound00000000001")
    assert stranger.post(client, stranger.event("CLICK", event_key="JOBS")).text.startswith("现在有7个岗位")


def test_sign_up_once_per_household_despite_retries_repeats_and_a_second_member(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    family = data.households(services, "青山村", 1, members=2, helper="李帮扶")
    data.group(services, "青山村工作群", api.robot_url("qingshan"), villages=["青山村"])
    job = data.posting(services, headcount=3)
    first, second = member(family[0].openid), member(family[1].openid)
    xml = first.text(f"报名 {job}")
    reply = first.post(client, xml).text or ""
    assert reply.startswith("报名成功！") and "王经理 13800001111" in reply
    assert (first.post(client, xml).text or "") == reply  # WeChat's retry: the same answer, nothing new
    assert "已经报名" in say(client, first, f"报名{job}")
    assert "已经报名" in say(client, second, f"报名 {job}")
    assert signups(services, job) == [("signed", family[0].openid)]
    assert notices(services, "有住户报名岗位") == 1  # the village group heard once
    wait_for(lambda: any("报名岗位" in c.json["markdown"]["content"] for c in api.calls_to("webhook/send")
                         if c.query.get("key") == "qingshan"))
    with services.db.session() as session:
        markdown = session.scalar(select(GroupNotice.markdown).where(GroupNotice.markdown.contains("报名岗位")))
    assert "张＊（户编号" in markdown and "13812345678" not in markdown  # masked for the group


def test_a_full_posting_puts_households_on_a_waiting_list_and_a_cancel_promotes(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    people = data.households(services, "青山村", 3, interacted=timedelta(minutes=5))
    job = data.posting(services, headcount=1)
    a, b, c = (member(p.openid) for p in people)
    assert say(client, a, f"报名 {job}").startswith("报名成功")
    reply_b = say(client, b, f"报名 {job}")
    assert "已经招满了" in reply_b and "排第 1 位" in reply_b
    assert "排第 2 位" in say(client, c, f"报名 {job}")
    assert "已取消" in say(client, a, f"取消报名 {job}")
    assert [s for s, _ in signups(services, job)] == ["cancelled", "signed", "waiting"]
    wait_for(lambda: any("有空位了" in (call.json.get("text") or {}).get("content", "")
                         for call in api.calls_to("message/custom/send") if call.json["touser"] == people[1].openid))
    assert notices(services, "补上了岗位名额") == 1
    assert "排第 1 位" in say(client, c, f"报名 {job}")  # c moved up


def test_one_right_after_a_push_signs_up_for_the_pushed_posting(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    people = data.households(services, "青山村", 1, interacted=timedelta(minutes=5))
    data.posting(services, title="别的岗位")
    job = data.posting(services, title="果园采摘")
    _, created = start_push(services, job, Targets(("青山村",)))
    services.pusher.drain(wait_for={created.push.id})
    pushed = api.calls_to("message/custom/send")[-1].json["text"]["content"]
    assert "回复：1" in pushed
    reply = say(client, member(people[0].openid), "1")
    assert reply.startswith("报名成功！岗位：“果园采摘”")
    assert signups(services, job) == [("signed", people[0].openid)]
    # After a list, numbers are the list's: "1" is not taken for the push any more (if 1 is listed).
    listed = say(client, member(people[0].openid), "岗位")
    assert f"{job}. 果园采摘｜县城工业园｜4500-6000元/月（已报名）" in listed


def test_unbound_followers_are_asked_to_bind_first(client: TestClient, services: Services,
                                                   api: FakeWeChatAPI) -> None:
    job = data.posting(services)
    stranger = member("oStrangerNotBound00000000002")
    reply = say(client, stranger, f"报名 {job}")
    assert "先绑定" in reply and "绑定码" in reply and f"报名 {job}" in reply
    assert "还没有绑定" in say(client, stranger, "退订岗位")
    assert signups(services, job) == []


def test_opt_out_and_back_in(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    people = data.households(services, "青山村", 2, interacted=None)
    job = data.posting(services)
    assert "不再给您家推送" in say(client, member(people[0].openid), "退订岗位")
    _, created = start_push(services, job, Targets(("青山村",)))
    assert created.skipped == {"opted_out": 1} and created.recipients == 1
    assert "会推送给您家" in say(client, member(people[0].openid), "订阅岗位")
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(PushOptOut)) == 0


def test_postings_past_their_deadline_close_themselves(client: TestClient, services: Services,
                                                       api: FakeWeChatAPI) -> None:
    from storage.jobs import expire_due

    people = data.households(services, "青山村", 1)
    late = data.posting(services, title="过期岗位", deadline=(date.today() + timedelta(days=30)).isoformat())
    data.posting(services, title="还能报")
    with services.db.session() as session:  # time passes: the deadline was yesterday
        session.execute(update(JobPosting).where(JobPosting.id == late)
                        .values(deadline=date.today() - timedelta(days=2)))
    listed = say(client, member(people[0].openid), "岗位")
    assert "过期岗位" not in listed and "还能报" in listed  # at read time, before any sweep
    assert "已截止" in say(client, member(people[0].openid), f"报名 {late}")
    with services.db.session() as session:
        assert expire_due(session) == 1
    with services.db.session() as session:
        assert session.get(JobPosting, late).status == "expired"
    with pytest.raises(Exception, match="已截止"):
        start_push(services, late, Targets(("青山村",)))


def test_help_mentions_jobs(client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    assert "报名 编号" in say(client, member("oAnyone000000000000000000001"), "帮助")


def test_a_detached_push_is_sent_by_the_queue_and_a_lost_one_by_the_sweeper(
        client: TestClient, services: Services, api: FakeWeChatAPI) -> None:
    from bot.jobs import send_in_background
    from bot.pipeline import Pipeline
    from bot.router import router
    from bot.sweeper import Sweeper
    from storage import pushes

    people = data.households(services, "青山村", 3, interacted=None)
    job = data.posting(services)
    _, created = start_push(services, job, Targets(("青山村",)))
    send_in_background(services)  # the queue's consumer (here: embedded in the app) wakes the sender
    wait_for(lambda: set(api.deliveries()) == {p.openid for p in people})
    more = data.households(services, "绿水村", 2, interacted=None)
    _, lost = start_push(services, job, Targets(("绿水村",)))  # nobody kicked: its task was lost
    done = Sweeper(services, Pipeline(services, router)).sweep()
    assert done.get("push_kicked") == 1 or services.pusher.running or set(api.deliveries()) >= {
        p.openid for p in more}
    wait_for(lambda: set(api.deliveries()) == {p.openid for p in people + more})

    def finished() -> bool:
        with services.db.session() as session:
            state = pushes.progress(session, lost.push.id)
        return state is not None and state.finished and state.sent == 2
    wait_for(finished)
    assert created.push.id != lost.push.id
