"""The outbound WeChat client against the fake API: token sharing, retries, wrappers, WeCom."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, select

from bot.config import Settings
from bot.services import Services, build_services
from bot.wechat_client import WeChatAPIError
from storage.models import Follower, MessageLog, WeChatToken
from tests.conftest import APPID, SECRET, wait_for
from tests.support.fake_wechat_api import DROP, FakeWeChatAPI, http_error

SEND = "message/custom/send"
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_API = "http://127.0.0.1:1/cgi-bin/"


def outbound(errcode: str, api: str = SEND) -> float:
    return REGISTRY.get_sample_value("sisong_outbound_calls_total", {"api": api, "errcode": errcode}) or 0.0


def token_fetches() -> float:
    return REGISTRY.get_sample_value("sisong_token_fetches_total") or 0.0


@pytest.fixture
def build(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    """Build extra Services (other "processes" on the same database); closed at the end."""
    built: list[Services] = []

    def make(**overrides: object) -> Services:
        services = build_services(make_settings(**overrides), migrate=True)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def test_token_fetch_honours_the_configured_base(services: Services, api: FakeWeChatAPI) -> None:
    services.wechat.send_text("oA", "你好")
    (token_call,) = api.calls_to("token")
    assert token_call.query == {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    (send,) = api.calls_to("message/custom/send")
    assert send.json == {"touser": "oA", "msgtype": "text", "text": {"content": "你好"}}


def test_token_is_cached_between_calls(services: Services, api: FakeWeChatAPI) -> None:
    for _ in range(3):
        services.wechat.send_text("oA", "hi")
    assert len(api.calls_to("token")) == 1


def test_rejected_token_is_refreshed_once_and_the_call_retried(services: Services, api: FakeWeChatAPI) -> None:
    services.wechat.send_text("oA", "one")
    api.invalidate_tokens()
    services.wechat.send_text("oA", "two")
    assert len(api.calls_to("token")) == 2
    assert [c.json["text"]["content"] for c in api.calls_to("message/custom/send")] == ["one", "two", "two"]


def test_a_server_that_keeps_saying_40001_does_not_recurse(services: Services, api: FakeWeChatAPI) -> None:
    bad = {"errcode": 40001, "errmsg": "invalid credential"}
    api.inject("message/custom/send", *([bad] * 10))
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    assert info.value.errcode == 40001
    assert len(api.calls_to("message/custom/send")) == 2  # the call, then one retry after a refresh


@pytest.mark.parametrize("errcode", [45009, -1])
def test_quota_and_busy_back_off_and_retry(services: Services, api: FakeWeChatAPI, errcode: int) -> None:
    api.inject("message/custom/send", {"errcode": errcode, "errmsg": "busy"}, {"errcode": errcode, "errmsg": "busy"})
    services.wechat.send_text("oA", "x")
    assert len(api.calls_to("message/custom/send")) == 3


def test_retries_are_bounded(services: Services, api: FakeWeChatAPI) -> None:
    api.inject("message/custom/send", *([{"errcode": 45009, "errmsg": "quota"}] * 20))
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    assert info.value.errcode == 45009
    assert len(api.calls_to("message/custom/send")) == services.settings.api_retry_attempts


@pytest.mark.parametrize(("errcode", "reason"), [(43004, "not_following"), (43101, "refused")])
def test_unreachable_follower_is_recorded_not_retried(
    services: Services, api: FakeWeChatAPI, errcode: int, reason: str
) -> None:
    api.inject("message/custom/send", {"errcode": errcode, "errmsg": "no"})
    services.queue.send_text_task.call_local("oGone", "通知")
    assert len(api.calls_to("message/custom/send")) == 1
    with services.db.session() as session:
        row = session.scalar(select(Follower).where(Follower.openid == "oGone"))
        assert row is not None and row.unreachable_reason == reason
        out = session.scalar(select(MessageLog).where(MessageLog.direction == "out"))
        assert out is not None and out.errcode == errcode and out.channel == "custom"


def test_queued_text_is_delivered_by_the_embedded_consumer(services: Services, api: FakeWeChatAPI) -> None:
    services.queue.start_embedded()
    services.queue.send_text("oQueued", "排队的消息")
    (call,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
    assert call.json["text"]["content"] == "排队的消息"
    with services.db.session() as session:
        wait_for(lambda: session.scalar(select(MessageLog).where(MessageLog.openid == "oQueued")))


def test_template_tags_qrcode_and_menu_wrappers(services: Services, api: FakeWeChatAPI) -> None:
    wechat = services.wechat
    wechat.send_template("oA", "TPL1", {"first": {"value": "岗位推送"}}, url="http://example.com/j/1")
    (template,) = api.calls_to("message/template/send")
    assert template.json["template_id"] == "TPL1" and template.json["touser"] == "oA"
    assert template.json["data"]["first"]["value"] == "岗位推送"

    tag_id = wechat.create_tag("长岭子村")
    assert api.calls_to("tags/create")[0].json == {"tag": {"name": "长岭子村"}}
    openids = [f"o{i:04d}" for i in range(120)]
    wechat.tag_users(tag_id, openids)
    batches = api.calls_to("tags/members/batchtagging")
    assert [len(b.json["openid_list"]) for b in batches] == [50, 50, 20]
    assert all(b.json["tagid"] == tag_id for b in batches)

    qr = wechat.create_qrcode("village07")
    body = api.calls_to("qrcode/create")[0].json
    assert body["action_name"] == "QR_STR_SCENE" and body["action_info"]["scene"]["scene_str"] == "village07"
    assert qr["image_url"].startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=")
    wechat.create_qrcode("village08", permanent=True)
    assert api.calls_to("qrcode/create")[1].json["action_name"] == "QR_LIMIT_STR_SCENE"

    menu = json.loads((Path(__file__).parents[1] / "bot" / "menu.json").read_text(encoding="utf-8"))
    wechat.create_menu(menu)
    assert api.calls_to("menu/create")[0].json == menu


def test_wecom_notice_is_markdown(services: Services, api: FakeWeChatAPI) -> None:
    services.queue.wecom_task.call_local("### 测试通知\n> 内容")
    (call,) = api.calls_to("webhook/send")
    assert call.json == {"msgtype": "markdown", "markdown": {"content": "### 测试通知\n> 内容"}}
    assert call.query["key"] == "test-robot"


def test_a_missing_secret_is_41004_and_not_retried(services: Services, api: FakeWeChatAPI) -> None:
    services.wechat.client.secret = ""
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    assert info.value.errcode == 41004 and not info.value.maybe_delivered
    assert api.calls_to("token") == [] and api.calls_to(SEND) == []


# -- a send that may have reached WeChat is tried once more at most ---------------


def test_a_send_whose_answer_times_out_is_tried_twice_then_maybe_delivered(
    build: Callable[..., Services], api: FakeWeChatAPI
) -> None:
    services = build(api_timeout=0.3)
    assert services.settings.api_retry_attempts == 4  # the policy would allow more
    services.wechat.send_text("oA", "warm-up")  # the token is fetched without latency
    api.set_latency(SEND, 1.0)
    before = outbound("timeout")
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "通知")
    assert info.value.maybe_delivered is True and info.value.errcode is None
    assert [c.json["text"]["content"] for c in api.calls_to(SEND)] == ["warm-up", "通知", "通知"]
    assert outbound("timeout") - before == 2


def test_a_send_that_timed_out_once_succeeds_on_the_one_more_try(
    build: Callable[..., Services], api: FakeWeChatAPI
) -> None:
    services = build(api_timeout=0.3)
    api.set_latency(SEND, 1.0, times=1)
    services.wechat.send_text("oA", "通知")
    assert len(api.calls_to(SEND)) == 2


def test_a_dropped_connection_then_busy_still_says_maybe_delivered(services: Services, api: FakeWeChatAPI) -> None:
    api.inject(SEND, DROP, {"errcode": -1, "errmsg": "system busy"}, {"errcode": -1, "errmsg": "system busy"})
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    # the first copy may be on the follower's phone: busy or not, no third try
    assert info.value.maybe_delivered is True and info.value.errcode == -1
    assert len(api.calls_to(SEND)) == 2


@pytest.mark.parametrize(("status", "maybe", "sends"), [(502, True, 2), (504, True, 2), (503, False, 4)])
def test_gateway_errors_are_sorted_by_whether_the_request_got_through(
    services: Services, api: FakeWeChatAPI, status: int, maybe: bool, sends: int
) -> None:
    api.inject(SEND, *([http_error(status)] * 10))
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    assert info.value.maybe_delivered is maybe and info.value.errcode is None
    assert len(api.calls_to(SEND)) == sends


def test_busy_and_quota_are_never_maybe_delivered(services: Services, api: FakeWeChatAPI) -> None:
    api.inject(SEND, *([{"errcode": -1, "errmsg": "system busy"}] * 10))
    with pytest.raises(WeChatAPIError) as info:
        services.wechat.send_text("oA", "x")
    assert info.value.maybe_delivered is False and info.value.errcode == -1
    assert len(api.calls_to(SEND)) == services.settings.api_retry_attempts


def test_a_connect_failure_is_retried_per_policy(
    services: Services, build: Callable[..., Services], api: FakeWeChatAPI
) -> None:
    services.wechat.send_text("oA", "x")  # the token is now in the database
    cut_off = build(wechat_api_base=DEAD_API)  # same database, WeChat unreachable
    before, fetches = outbound("network"), token_fetches()
    with pytest.raises(WeChatAPIError) as info:
        cut_off.wechat.send_text("oA", "y")
    assert info.value.maybe_delivered is False and info.value.errcode is None
    assert token_fetches() == fetches  # the shared token was used: it was the send that failed
    assert outbound("network") - before == cut_off.settings.api_retry_attempts


# -- the token lives in the database -----------------------------------------------


def test_services_share_one_token_fetch_with_redis_down(
    build: Callable[..., Services], api: FakeWeChatAPI
) -> None:
    a, b = (build(redis_url=DEAD_REDIS, embedded_worker="false") for _ in range(2))
    api.set_latency("token", 0.3)  # a slow fetch widens the race window
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def send(services: Services, text: str) -> None:
        barrier.wait()
        try:
            services.wechat.send_text("oRace", text)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s, f"t{i}")) for i, s in enumerate((a, b, a, b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    a.wechat.send_text("oRace", "later-a")
    b.wechat.send_text("oRace", "later-b")
    assert len(api.calls_to("token")) == 1
    assert len(api.calls_to(SEND)) == 6
    assert len({c.query["access_token"] for c in api.calls_to(SEND)}) == 1


def test_the_token_outlives_the_services_that_fetched_it(build: Callable[..., Services], api: FakeWeChatAPI) -> None:
    first = build()
    first.wechat.send_text("oA", "one")
    first.close()
    second = build()
    with second.db.session() as session:
        row = session.get(WeChatToken, APPID)
        assert row is not None and row.token in api.tokens
        assert row.expires_at is not None
        assert 7000 < (row.expires_at - datetime.now(timezone.utc)).total_seconds() <= 7200
    second.wechat.send_text("oA", "two")
    assert len(api.calls_to("token")) == 1


def test_a_token_rejected_in_one_services_is_refreshed_once_for_all(
    build: Callable[..., Services], api: FakeWeChatAPI
) -> None:
    a, b = build(), build()
    a.wechat.send_text("oA", "a1")
    b.wechat.send_text("oA", "b1")
    api.invalidate_tokens()  # e.g. the secret was reset in the console
    a.wechat.send_text("oA", "a2")  # 40001 -> dropped -> fetched again
    # b still holds the old token: its 40001 must not drop a's new one (compare-and-delete)
    b.wechat.send_text("oA", "b2")
    a.wechat.send_text("oA", "a3")
    assert len(api.calls_to("token")) == 2
    sends = [(c.json["text"]["content"], c.query["access_token"]) for c in api.calls_to(SEND)]
    assert [text for text, _ in sends] == ["a1", "b1", "a2", "a2", "b2", "b2", "a3"]
    assert sends[3][1] == sends[5][1] == sends[6][1]  # everyone moved to the one new token


def test_the_in_process_copy_spares_the_database(services: Services, api: FakeWeChatAPI) -> None:
    services.wechat.send_text("oA", "one")
    dead = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    services.db.engine = dead
    services.db.sessions.configure(bind=dead)
    services.wechat.send_text("oA", "two")  # no database round trip on the hot path
    assert len(api.calls_to(SEND)) == 2


def test_the_token_is_refreshed_five_minutes_before_it_expires(services: Services, api: FakeWeChatAPI) -> None:
    services.wechat.send_text("oA", "one")
    store = services.wechat.client.tokens
    start = time.time()
    store.clock = lambda: start + 7200 - 400  # still good for more than the margin
    services.wechat.send_text("oA", "two")
    assert len(api.calls_to("token")) == 1
    store.clock = lambda: start + 7200 - 250  # inside the margin: the in-process copy and the row are stale
    services.wechat.send_text("oA", "three")
    assert len(api.calls_to("token")) == 2
    tokens = [c.query["access_token"] for c in api.calls_to(SEND)]
    assert tokens[0] == tokens[1] != tokens[2]


REFRESHER = textwrap.dedent(
    """
    import sys, time
    from bot.config import load_settings
    from bot.wechat_client import WeChatAPI
    from storage.db import Database
    settings = load_settings(wechat_token="sisongtesttoken", wechat_appid=sys.argv[1], wechat_secret=sys.argv[2],
                             wechat_api_base=sys.argv[3], database_url=sys.argv[4], redis_url=sys.argv[5])
    api = WeChatAPI(settings, Database(settings.database_url))
    start_at = float(sys.argv[6])
    while time.time() < start_at:
        time.sleep(0.001)
    api.send_text("oRace", sys.argv[7])
    """
)


def test_two_processes_share_one_token_fetch_without_redis(
    services: Services, api: FakeWeChatAPI
) -> None:
    """Real processes on one database (the fixture migrated it), Redis down: one fetch."""
    api.set_latency("token", 0.5)  # a slow fetch widens the race window
    start_at = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    db_url = services.settings.database_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REFRESHER, APPID, SECRET, api.base_url, db_url, DEAD_REDIS, str(start_at), f"p{i}"],
            env=env,
        )
        for i in range(3)
    ]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]
    assert len(api.calls_to("token")) == 1
    tokens = {c.query["access_token"] for c in api.calls_to(SEND)}
    assert len(tokens) == 1 and len(api.calls_to(SEND)) == 3
