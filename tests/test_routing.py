"""Hand-over routing (issue 7): which WeCom group hears about a household, and the notice queue.

Groups: a group covering the village beats one covering its area, which beats
one covering the household's team, which beats the township group
(``covers_all``); with none, ``SISONG_WECOM_ROBOT_URL``. The queue: notices are
rows, merged into messages of at most 4096 bytes, at most 20 messages a minute
per robot, kept (never dropped) on WeCom's 45009 and when a sender dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.notices import flush_notices, groups_for, notify, pending_count, send_pending
from bot.services import Services
from bot.simulator import WeChatSimulator
from storage import followers
from storage.households import ensure_township
from storage.models import KbUnanswered
from storage.models.base import utcnow
from storage.models.org import (
    Area,
    Cadre,
    GroupNotice,
    Hamlet,
    Household,
    HouseholdBinding,
    MessagingGroup,
    Team,
    Village,
)
from tests.conftest import APPID, TOKEN, wait_for
from tests.support.fake_wechat_api import FakeWeChatAPI

HOUSEHOLD_PHONE = "13912345678"
HELPER_OPENID = "oHelperCadre000000000001"
BOUND_OPENID = "oBoundFamily000000000001"


@dataclass
class Org:
    township_id: int
    village_id: int
    other_village_id: int
    area_id: int
    team_id: int
    household_id: int
    groups: dict[str, int]  # name -> id
    urls: dict[str, str]  # name -> robot url


def build_org(services: Services, api: FakeWeChatAPI, groups: tuple[str, ...] = ("village", "area", "team", "all"),
              helper_openid: str | None = HELPER_OPENID) -> Org:
    """One area with two villages, a household in 青山村 三组 with a helper and a team, and groups."""
    urls = {name: api.robot_url(f"robot-{name}") for name in ("village", "other", "area", "team", "all")}
    with services.db.session() as session:
        town = ensure_township(session, services.settings.township)
        area = Area(township_id=town.id, name="东片区")
        session.add(area)
        session.flush()
        village = Village(township_id=town.id, area_id=area.id, name="青山村")
        other = Village(township_id=town.id, area_id=area.id, name="绿水村")
        session.add_all([village, other])
        session.flush()
        hamlet = Hamlet(village_id=village.id, name="三组")
        team = session.scalar(select(Team).where(Team.name == "建房"))
        assert team is not None
        helper = Cadre(township_id=town.id, name="李帮扶", phone="13700000001", wecom_userid="libangfu",
                       openid=helper_openid)
        session.add_all([hamlet, helper])
        session.flush()
        household = Household(township_id=town.id, number="5301020001", head_name="张大山", village_id=village.id,
                              hamlet_id=hamlet.id, helper_id=helper.id, team_id=team.id, phone=HOUSEHOLD_PHONE)
        session.add(household)
        session.flush()
        session.add(HouseholdBinding(household_id=household.id, openid=BOUND_OPENID))
        made = {
            "village": MessagingGroup(township_id=town.id, name="青山村工作群", robot_url=urls["village"],
                                      villages=[village]),
            "other": MessagingGroup(township_id=town.id, name="绿水村工作群", robot_url=urls["other"],
                                    villages=[other]),
            "area": MessagingGroup(township_id=town.id, name="东片区群", robot_url=urls["area"], areas=[area]),
            "team": MessagingGroup(township_id=town.id, name="建房先锋队群", robot_url=urls["team"], teams=[team]),
            "all": MessagingGroup(township_id=town.id, name="镇工作群", robot_url=urls["all"], covers_all=True),
        }
        wanted = {name: group for name, group in made.items() if name in groups or name == "other"}
        session.add_all(wanted.values())
        session.flush()
        return Org(town.id, village.id, other.id, area.id, team.id, household.id,
                   {name: g.id for name, g in wanted.items()}, urls)


def _targets(services: Services, org: Org, village_only: bool = False) -> list[str]:
    with services.db.session() as session:
        household = session.get(Household, org.household_id)
        if village_only:
            village = session.get(Village, org.village_id)
            found = groups_for(session, village=village, fallback_url=services.settings.wecom_robot_url)
        else:
            found = groups_for(session, household, fallback_url=services.settings.wecom_robot_url)
        return [t.robot_url for t in found]


def _drop_group(services: Services, group_id: int) -> None:
    with services.db.session() as session:
        session.delete(session.get(MessagingGroup, group_id))


def _contents(api: FakeWeChatAPI, url: str | None = None) -> list[str]:
    key = url.rsplit("key=", 1)[1] if url else None
    return [c.json["markdown"]["content"] for c in api.calls_to("webhook/send")
            if key is None or c.query["key"] == key]


# -- routing -----------------------------------------------------------------------------------


def test_the_most_specific_group_wins_and_the_robot_url_is_the_last_resort(
    services: Services, api: FakeWeChatAPI
) -> None:
    org = build_org(services, api)
    assert _targets(services, org) == [org.urls["village"]]
    _drop_group(services, org.groups["village"])
    assert _targets(services, org) == [org.urls["area"]]  # the area beats the team
    _drop_group(services, org.groups["area"])
    assert _targets(services, org) == [org.urls["team"]]
    assert _targets(services, org, village_only=True) == [org.urls["all"]]  # a village has no team
    _drop_group(services, org.groups["team"])
    assert _targets(services, org) == [org.urls["all"]]
    _drop_group(services, org.groups["all"])
    assert _targets(services, org) == [api.wecom_url]  # SISONG_WECOM_ROBOT_URL: the township group
    assert org.urls["other"] not in _targets(services, org)  # another village's group never hears


def test_two_groups_on_one_level_both_hear_and_one_robot_is_told_once(
    services: Services, api: FakeWeChatAPI
) -> None:
    org = build_org(services, api, groups=("village", "all"))
    with services.db.session() as session:
        village = session.get(Village, org.village_id)
        town = org.township_id
        session.add(MessagingGroup(township_id=town, name="青山村两委群", robot_url=api.robot_url("robot-cw"),
                                   villages=[village]))
        session.add(MessagingGroup(township_id=town, name="青山村同一机器人", robot_url=org.urls["village"],
                                   villages=[village]))
    assert _targets(services, org) == [org.urls["village"], api.robot_url("robot-cw")]


def test_no_group_and_no_robot_url_queues_nothing(make_settings, api: FakeWeChatAPI) -> None:  # type: ignore[no-untyped-def]
    from bot.services import build_services

    services = build_services(make_settings(wecom_robot_url=""), migrate=True)
    try:
        with services.db.session() as session:
            notice = notify(session, services, "### 有住户请求人工帮助")
        assert notice.targets == [] and pending_count(services) == 0
    finally:
        services.close()


def test_a_bound_household_s_hand_over_goes_to_its_village_group_and_helper(
    client: TestClient, services: Services, api: FakeWeChatAPI
) -> None:
    org = build_org(services, api)
    with services.db.session() as session:  # the helper wrote to the account today: the window is open
        followers.touch(session, HELPER_OPENID, interaction=True)
    family = WeChatSimulator(TOKEN, APPID, openid=BOUND_OPENID)
    # Not in the handbook: handed over at once.
    assert "答不上来" in (family.post(client, family.text(f"我家危房改造的钱什么时候到，电话{HOUSEHOLD_PHONE}")).text or "")

    (notice,) = wait_for(lambda: _contents(api), timeout=15)
    assert _contents(api, org.urls["village"]) == [notice]  # only the village's group
    assert "青山村三组" in notice and "张＊＊" in notice and "危房改造" in notice
    assert "张大山" not in notice and HOUSEHOLD_PHONE not in notice
    assert notice.count("139****5678") == 1  # the household's own words, masked; never its phone on file
    assert "李帮扶" in notice and "<@libangfu>" in notice
    with services.db.session() as session:
        item = session.scalar(select(KbUnanswered).where(KbUnanswered.openid == BOUND_OPENID))
        assert item is not None and f"reply {item.id}" in notice

    def sent_at():  # type: ignore[no-untyped-def]
        with services.db.session() as session:  # marked by the sender right after WeChat's answer
            return session.scalar(select(GroupNotice.sent_at))

    assert wait_for(sent_at, timeout=5) is not None

    (private,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
    assert private.json["touser"] == HELPER_OPENID
    text = private.json["text"]["content"]
    # The helper sees their own household: full name, number and phone (to call back).
    assert "张大山" in text and "5301020001" in text and HOUSEHOLD_PHONE in text and "危房改造" in text

    # Asking for a person ("0") goes the same way, with the question asked last.
    api.reset()
    org_village = api.robot_url("robot-village")
    assert "工作人员会尽快联系您" in (family.post(client, family.text("0")).text or "")
    (again,) = wait_for(lambda: _contents(api), timeout=15)
    assert _contents(api, org_village) == [again]
    assert "请求人工帮助" in again and "危房改造" in again and HOUSEHOLD_PHONE not in again
    wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)


def test_a_helper_outside_the_48_hour_window_is_not_messaged(
    client: TestClient, services: Services, api: FakeWeChatAPI
) -> None:
    build_org(services, api)
    with services.db.session() as session:
        followers.touch(session, HELPER_OPENID, interaction=True, now=utcnow() - timedelta(hours=49))
    family = WeChatSimulator(TOKEN, APPID, openid=BOUND_OPENID)
    family.post(client, family.text("人工"))
    wait_for(lambda: _contents(api), timeout=15)
    assert api.calls_to("message/custom/send") == []


def test_an_unbound_follower_goes_to_the_township_group(
    client: TestClient, services: Services, api: FakeWeChatAPI, sim: WeChatSimulator
) -> None:
    org = build_org(services, api)
    sim.post(client, sim.text("你们村的篮球场晚上几点关门"))  # unanswerable: handed over
    (notice,) = wait_for(lambda: _contents(api), timeout=15)
    assert _contents(api, org.urls["all"]) == [notice]
    assert "未绑定" in notice and "篮球场" in notice and sim.openid not in notice
    assert api.calls_to("message/custom/send") == []


def test_an_unbound_follower_with_no_township_group_goes_to_the_robot_url(
    client: TestClient, services: Services, api: FakeWeChatAPI, sim: WeChatSimulator
) -> None:
    build_org(services, api, groups=("village", "area", "team"))
    sim.post(client, sim.text("找人工"))
    (notice,) = wait_for(lambda: _contents(api), timeout=15)
    assert _contents(api, api.wecom_url) == [notice]


# -- the queue: merging, the rate, 45009, killed senders -----------------------------------------


def _queue(services: Services, url: str, texts: list[str]) -> None:
    for text in texts:
        with services.db.session() as session:
            notify_to(session, services, url, text)


def notify_to(session, services: Services, url: str, markdown: str) -> None:  # type: ignore[no-untyped-def]
    """A notice for one robot, as notify() writes it (routing is tested above)."""
    from bot.notices import split_markdown

    for piece in split_markdown(markdown):
        session.add(GroupNotice(robot_url=url, markdown=piece))


def _texts(n: int, size: int = 40) -> list[str]:
    return [f"### 通知{i:03d}\n> " + "问" * size + f" 尾{i:03d}" for i in range(n)]


def _each_once(contents: list[str], texts: list[str]) -> None:
    joined = "\n\n".join(contents)
    for text in texts:
        assert joined.count(text) == 1, text


def test_thirty_notices_in_a_minute_take_at_most_twenty_messages_and_none_is_lost(
    services: Services, api: FakeWeChatAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each notice arrives and kicks the sender: the first 20 go one by one, the rest wait and merge."""
    url = api.robot_url("robot-busy")
    texts = _texts(30)
    for text in texts:
        _queue(services, url, [text])
        send_pending(services, url)
    calls = api.calls_to("webhook/send")
    assert len(calls) == 20  # WeCom's limit for the minute
    assert pending_count(services, url) == 10
    assert flush_notices(services) == 0  # the sweeper too waits for the minute
    # A minute later (the moving window has room again): the 10 that waited go out merged, in one message.
    monkeypatch.setattr(services.limiter, "allow", lambda *args: True)
    monkeypatch.setattr(services.limiter, "would_allow", lambda *args: True)
    assert flush_notices(services) == 10
    contents = _contents(api)
    assert len(contents) == 21 and all(t in contents[-1] for t in texts[20:])
    _each_once(contents, texts)
    assert pending_count(services) == 0


def test_notices_merge_up_to_4096_bytes_and_a_long_one_is_split_not_cut(
    services: Services, api: FakeWeChatAPI
) -> None:
    url = api.robot_url("robot-merge")
    texts = _texts(30, size=300)  # about 900 bytes each: four to a message
    _queue(services, url, texts)
    assert flush_notices(services) == 30
    contents = _contents(api)
    assert len(contents) <= 8 and all(len(c.encode()) <= 4096 for c in contents)
    _each_once(contents, texts)

    api.reset()
    url = api.robot_url("robot-merge")
    long = "### 很长的通知\n" + "\n".join(f"> 第{i:03d}行" + "字" * 100 for i in range(40))  # ~12 KB
    long += "\n> " + "长" * 3000  # one line longer than a message: cut between characters, nothing lost
    with services.db.session() as session:  # written whole (not by notify): the sender splits it
        session.add(GroupNotice(robot_url=url, markdown=long))
    flush_notices(services)
    contents = _contents(api)
    assert len(contents) >= 3 and all(len(c.encode()) <= 4096 for c in contents)
    assert "".join("".join(contents).split()) == "".join(long.split())  # every character, in order


def test_45009_keeps_the_rows_and_they_go_after_the_back_off(services: Services, api: FakeWeChatAPI) -> None:
    url = api.robot_url("robot-limited")
    texts = _texts(3)
    _queue(services, url, texts)
    api.inject("webhook/send", {"errcode": 45009, "errmsg": "api freq out of limit"})
    assert flush_notices(services) == 0
    assert len(api.calls_to("webhook/send")) == 1
    with services.db.session() as session:
        rows = session.scalars(select(GroupNotice)).all()
        assert len(rows) == 3 and all(r.sent_at is None and "45009" in (r.error or "") for r in rows)
    assert flush_notices(services) == 0 and len(api.calls_to("webhook/send")) == 1  # backing off
    assert flush_notices(services, now=utcnow() + timedelta(seconds=30)) == 0  # for the rest of the minute
    assert len(api.calls_to("webhook/send")) == 1
    assert flush_notices(services, now=utcnow() + timedelta(seconds=61)) == 3
    contents = _contents(api)
    assert len(contents) == 2
    _each_once(contents[1:], texts)


def test_a_robot_that_fails_keeps_its_rows_and_the_others_still_go(services: Services, api: FakeWeChatAPI) -> None:
    broken = api.robot_url("robot-broken").replace("robot-broken", "robot-unknown")  # answers 93000
    fine = api.robot_url("robot-fine")
    _queue(services, broken, ["### 发不出去"])
    _queue(services, fine, ["### 发得出去"])
    assert flush_notices(services) == 1
    assert pending_count(services, broken) == 1 and pending_count(services, fine) == 0


def test_two_senders_never_send_the_same_notice(services: Services, api: FakeWeChatAPI) -> None:
    """Four senders race for 40 notices: each goes out once, and a sender that loses a race spends
    none of the group's 20 a minute (it did, and under load the last rows waited a minute)."""
    url = api.robot_url("robot-race")
    texts = _texts(40, size=300)
    _queue(services, url, texts)
    api.set_latency("webhook/send", 0.05)
    threads = [threading.Thread(target=flush_notices, args=(services,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    _each_once(_contents(api), texts)
    assert pending_count(services) == 0


_KILLED_SENDER = """
import json, sys
from bot.config import load_settings
from bot.notices import send_pending
from bot.services import build_services
services = build_services(load_settings(**json.loads(sys.argv[1])), migrate=False)
send_pending(services, sys.argv[2])
"""


def test_a_sender_killed_mid_send_loses_nothing(services: Services, api: FakeWeChatAPI) -> None:
    """A real process claims the rows and is killed (SIGKILL) while the robot is answering."""
    url = api.robot_url("robot-killed")
    texts = _texts(5)
    _queue(services, url, texts)
    api.set_latency("webhook/send", 30, times=1)
    settings = {k: v for k, v in services.settings.model_dump().items() if v is not None}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SENDER, json.dumps(settings, default=str), url], env=env)
    try:
        wait_for(lambda: api.calls_to("webhook/send"), timeout=30)  # the request reached the robot
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert pending_count(services, url) == 5  # nothing marked sent by a sender that did not finish
    assert flush_notices(services) == 0  # its lease still holds: no second sender meanwhile
    assert len(api.calls_to("webhook/send")) == 1
    assert flush_notices(services, now=utcnow() + timedelta(seconds=31)) == 5  # the lease ran out
    contents = _contents(api)
    assert len(contents) == 2
    _each_once(contents[1:], texts)


def test_the_sweeper_sends_notices_nobody_dispatched(services: Services, api: FakeWeChatAPI) -> None:
    """A notice committed by a worker that died before its after-commit dispatch still reaches the group."""
    import handlers  # noqa: F401
    from bot.notices import queue_notice
    from bot.pipeline import Pipeline
    from bot.router import router
    from bot.sweeper import Sweeper

    queue_notice(services, api.wecom_url, "### 有住户请求人工帮助\n> 住户：oAbC…WxYz")
    done = Sweeper(services, Pipeline(services, router)).sweep()
    assert done["notices"] >= 1
    (call,) = api.calls_to("webhook/send")
    assert "请求人工帮助" in call.json["markdown"]["content"]
