"""The fake WeChat API must behave like the real one where Sisong's logic depends on it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import APILimitedException, WeChatClientException

from tests.support.fake_wechat_api import FakeWeChatAPI


@pytest.fixture
def api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI() as fake:
        yield fake


def fake_client(api: FakeWeChatAPI, secret: str = "test-secret") -> WeChatClient:
    """A wechatpy client pointed at the fake, the way the notes prescribe:
    API_BASE_URL on a subclass, and the hard-coded token URL overridden."""
    base = api.base_url

    class FakeBaseClient(WeChatClient):
        API_BASE_URL = base

        def fetch_access_token(self):
            return self._fetch_access_token(
                url=base + "token",
                params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            )

    return FakeBaseClient("wxtestappid", secret, auto_retry=False, timeout=5)


def test_urls(api: FakeWeChatAPI) -> None:
    assert api.base_url.startswith("http://127.0.0.1:") and api.base_url.endswith("/cgi-bin/")
    assert api.wecom_url == api.base_url + "webhook/send?key=test-robot"


def test_issues_tokens_and_checks_secret(api: FakeWeChatAPI) -> None:
    params = {"grant_type": "client_credential", "appid": "wxtestappid", "secret": "test-secret"}
    first = httpx.get(api.base_url + "token", params=params).json()
    second = httpx.get(api.base_url + "token", params=params).json()
    assert first == {"access_token": "TOKEN-1", "expires_in": 7200}
    assert second["access_token"] == "TOKEN-2"
    bad = httpx.get(api.base_url + "token", params={**params, "secret": "nope"}).json()
    assert bad["errcode"] == 40125
    missing = httpx.get(api.base_url + "token", params={"grant_type": "client_credential", "appid": "wxtestappid"})
    assert missing.json()["errcode"] == 40125
    assert len(api.calls_to("token")) == 4


def test_stable_token_does_not_rotate_unless_forced(api: FakeWeChatAPI) -> None:
    body = {"grant_type": "client_credential", "appid": "wxtestappid", "secret": "test-secret"}
    a = httpx.post(api.base_url + "stable_token", json=body).json()["access_token"]
    b = httpx.post(api.base_url + "stable_token", json=body).json()["access_token"]
    c = httpx.post(api.base_url + "stable_token", json={**body, "force_refresh": True}).json()["access_token"]
    assert a == b != c


def test_rejects_bad_and_invalidated_tokens(api: FakeWeChatAPI) -> None:
    url = api.base_url + "message/custom/send"
    body = {"touser": "o1", "msgtype": "text", "text": {"content": "x"}}
    assert httpx.post(url, params={"access_token": "forged"}, json=body).json()["errcode"] == 40001
    assert httpx.post(url, json=body).json()["errcode"] == 40001

    client = fake_client(api)
    assert client.message.send_text("o1", "hi") == {"errcode": 0, "errmsg": "ok"}
    api.invalidate_tokens()
    with pytest.raises(WeChatClientException) as err:
        client.message.send_text("o1", "again")
    assert err.value.errcode == 40001
    # a freshly issued token works again
    client.fetch_access_token()
    assert client.message.send_text("o1", "third")["errcode"] == 0


def test_wechatpy_client_send_text_is_recorded(api: FakeWeChatAPI) -> None:
    client = fake_client(api)
    result = client.message.send_text("oUser1", "您好，政策已更新")
    assert result == {"errcode": 0, "errmsg": "ok"}
    [token_call] = api.calls_to("token")
    assert token_call.method == "GET" and token_call.query["appid"] == "wxtestappid"
    [call] = api.calls_to("message/custom/send")
    assert call.method == "POST"
    assert call.query["access_token"] == "TOKEN-1"
    assert call.json == {"touser": "oUser1", "msgtype": "text", "text": {"content": "您好，政策已更新"}}
    assert call.at <= time.time()


def test_wechatpy_client_with_wrong_secret_fails(api: FakeWeChatAPI) -> None:
    with pytest.raises(WeChatClientException) as err:
        fake_client(api, secret="wrong").message.send_text("o1", "x")
    assert err.value.errcode == 40125


def test_injected_errors_are_served_once_in_order(api: FakeWeChatAPI) -> None:
    client = fake_client(api)
    api.inject(
        "message/custom/send",
        {"errcode": 45009, "errmsg": "api freq out of limit"},
        {"errcode": -1, "errmsg": "system error"},
    )
    with pytest.raises(APILimitedException):
        client.message.send_text("o1", "a")
    with pytest.raises(WeChatClientException) as err:
        client.message.send_text("o1", "b")
    assert err.value.errcode == -1
    assert client.message.send_text("o1", "c")["errcode"] == 0
    assert [c.json["text"]["content"] for c in api.calls_to("message/custom/send")] == ["a", "b", "c"]


def test_injected_token_errors(api: FakeWeChatAPI) -> None:
    api.inject("token", {"errcode": -1, "errmsg": "system error"})
    client = fake_client(api)
    with pytest.raises(WeChatClientException):
        client.fetch_access_token()
    assert client.fetch_access_token()["access_token"].startswith("TOKEN-")


def test_default_endpoint_answers(api: FakeWeChatAPI) -> None:
    client = fake_client(api)
    tag = client.tag.create("一组")  # wechatpy unwraps {"tag": {...}}
    assert tag["name"] == "一组" and tag["id"] > 100
    assert {"id": tag["id"], "name": "一组", "count": 0} in client.tag.get()
    assert client.tag.tag_user(tag["id"], ["o1", "o2"])["errcode"] == 0
    assert api.calls_to("tags/members/batchtagging")[0].json == {"tagid": tag["id"], "openid_list": ["o1", "o2"]}

    tpl = client.message.send_template("o1", "TPL", {"k": {"value": "v"}})
    assert isinstance(tpl["msgid"], int)
    mass = client.message.send_mass_text("通知", tag_or_users=tag["id"])
    assert mass["errcode"] == 0 and isinstance(mass["msg_id"], int)

    qr = client.qrcode.create(
        {"expire_seconds": 600, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "v1"}}}
    )
    assert qr["expire_seconds"] == 600 and qr["url"].startswith("http://weixin.qq.com/q/") and qr["ticket"]

    menu = {"button": [{"type": "click", "name": "政策", "key": "POLICY"}]}
    client.menu.create(menu)
    assert client.menu.get() == {"menu": menu}
    assert client.user.get("oUser9")["openid"] == "oUser9"
    assert client.post("some/unknown/api", data={"a": 1}) == {"errcode": 0, "errmsg": "ok"}
    assert api.calls_to("some/unknown/api")[0].json == {"a": 1}


def test_wecom_robot(api: FakeWeChatAPI) -> None:
    payload = {"msgtype": "markdown", "markdown": {"content": "**告警** 队列积压"}}
    assert httpx.post(api.wecom_url, json=payload).json() == {"errcode": 0, "errmsg": "ok"}
    [call] = api.calls_to("webhook/send")
    assert call.json == payload and call.query == {"key": "test-robot"}


def test_latency_and_reset(api: FakeWeChatAPI) -> None:
    client = fake_client(api)
    client.fetch_access_token()
    api.set_latency("message/custom/send", 0.3)
    start = time.monotonic()
    client.message.send_text("o1", "slow")
    assert time.monotonic() - start >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(api.base_url + "message/custom/send", params={"access_token": "TOKEN-1"}, json={}, timeout=0.1)

    api.inject("message/custom/send", {"errcode": 45009, "errmsg": "api freq out of limit"})
    api.reset()
    assert api.calls == []
    start = time.monotonic()
    assert client.message.send_text("o1", "fast")["errcode"] == 0  # injection gone, token kept
    assert time.monotonic() - start < 0.3


def test_serves_concurrent_callers(api: FakeWeChatAPI) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = fake_client(api)
    client.fetch_access_token()
    api.set_latency("message/custom/send", 0.2)
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: client.message.send_text(f"o{i}", "x"), range(8)))
    assert all(r["errcode"] == 0 for r in results)
    assert time.monotonic() - start < 1.5  # threaded: one after another would take 8 x 0.2 = 1.6 s
    assert len(api.calls_to("message/custom/send")) == 8


def test_start_stop_explicit() -> None:
    api = FakeWeChatAPI(appid="wxother", secret="s3").start()
    try:
        params = {"grant_type": "client_credential", "appid": "wxother", "secret": "s3"}
        r = httpx.get(api.base_url + "token", params=params)
        assert r.json()["access_token"] == "TOKEN-1"
    finally:
        api.stop()
