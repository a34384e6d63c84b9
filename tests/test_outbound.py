"""The outbound WeChat client against the fake API: token sharing, retries, wrappers, WeCom."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.services import Services
from bot.wechat_client import WeChatAPIError
from storage.models import Follower, MessageLog
from tests.conftest import APPID, REDIS_URL, SECRET, wait_for
from tests.support.fake_wechat_api import FakeWeChatAPI


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


REFRESHER = textwrap.dedent(
    """
    import sys, time
    from bot.config import load_settings
    from storage.state import build_state
    from bot.wechat_client import WeChatAPI
    settings = load_settings(wechat_token="sisongtesttoken", wechat_appid=sys.argv[1], wechat_secret=sys.argv[2],
                             wechat_api_base=sys.argv[3], redis_url=sys.argv[4])
    api = WeChatAPI(settings, build_state(settings.redis_url))
    start_at = float(sys.argv[5])
    while time.time() < start_at:
        time.sleep(0.001)
    api.send_text("oRace", sys.argv[6])
    """
)


def test_two_processes_share_one_token_fetch(backend: str, make_settings, api: FakeWeChatAPI) -> None:  # type: ignore[no-untyped-def]
    if backend != "server":
        pytest.skip("cross-process token sharing needs Redis")
    make_settings()  # resets Redis
    api.set_latency("token", 0.5)  # a slow fetch widens the race window
    import time

    start_at = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REFRESHER, APPID, SECRET, api.base_url, REDIS_URL, str(start_at), f"p{i}"],
            env=env,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    assert len(api.calls_to("token")) == 1
    tokens = {c.query["access_token"] for c in api.calls_to("message/custom/send")}
    assert len(tokens) == 1
