"""The WeChat protocol at /wechat: URL check, modes, every message type, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.flusher import drain
from bot.inbound import signature_of
from bot.services import Services
from bot.simulator import WeChatSimulator
from storage.models import MessageLog
from tests.conftest import AES_KEY, APPID, TOKEN


def log_count(services: Services) -> int:
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(MessageLog)) or 0)


# -- URL check ---------------------------------------------------------------


def test_url_check_echoes_echostr(client: TestClient, sim: WeChatSimulator) -> None:
    response = client.get("/wechat", params=sim.url_check("1234567890echo"))
    assert response.status_code == 200
    assert response.text == "1234567890echo"


def test_url_check_with_bad_signature_is_forbidden(client: TestClient, sim: WeChatSimulator) -> None:
    params = sim.url_check("abc") | {"signature": "0" * 40}
    response = client.get("/wechat", params=params)
    assert response.status_code == 403
    assert "abc" not in response.text


def test_url_check_without_parameters_is_forbidden(client: TestClient) -> None:
    assert client.get("/wechat", params={"echostr": "x"}).status_code == 403


def test_url_check_with_a_stale_timestamp_is_refused(client: TestClient) -> None:
    for offset, status in ((-3600, 403), (3600, 403), (-10, 200)):
        timestamp, nonce = str(int(time.time()) + offset), "1234567890"
        params = {"signature": signature_of(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                  "echostr": "echo42"}
        response = client.get("/wechat", params=params)
        assert response.status_code == status
        assert ("echo42" in response.text) == (status == 200)


# -- modes -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_text_round_trip_in_every_mode(make_settings, mode: str) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.services import build_services

    settings = make_settings(wechat_aes_key=AES_KEY)
    services = build_services(settings, migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY, mode=mode, openid="oModeUser00000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            reply = sim.post(client, sim.text("帮助"))
            assert reply.status == 200
            assert "打字或发语音问政策" in (reply.text or "")
            if mode == "plain":
                assert b"<Encrypt>" not in reply.raw
            else:
                assert b"<Encrypt>" in reply.raw and "打字".encode() not in reply.raw
            assert reply.fields and reply.fields["ToUserName"] == "oModeUser00000000000000001"
    finally:
        services.close()


def test_encrypted_message_without_aes_key_is_refused(client: TestClient, services: Services) -> None:
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY, mode="safe")
    reply = sim.post(client, sim.text("你好"))
    assert reply.status == 400
    assert log_count(services) == 0


def test_forged_signature_is_refused_and_nothing_processed(client: TestClient, services: Services) -> None:
    forger = WeChatSimulator("wrongtoken123", APPID, mode="plain")
    reply = forger.post(client, forger.text("帮助"))
    assert reply.status == 403
    assert log_count(services) == 0


def test_forged_msg_signature_in_safe_mode_is_refused(make_settings) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.services import build_services

    services = build_services(make_settings(wechat_aes_key=AES_KEY), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY, mode="safe")
    try:
        with TestClient(create_app(services)) as client:
            request = sim.sign(sim.text("你好"))
            params = request.params | {"msg_signature": "f" * 40}
            response = client.post("/wechat", params=params, content=request.body)
            assert response.status_code == 403
            other_app = WeChatSimulator(TOKEN, "wxsomeoneelse", AES_KEY, mode="safe")
            reply = other_app.post(client, other_app.text("你好"))
            assert reply.status == 403
            assert log_count(services) == 0
    finally:
        services.close()


# -- every message and event type ---------------------------------------------

MESSAGES = {
    "text": lambda s: s.text("娃儿读大学有补助没"),
    "image": lambda s: s.image(),
    "voice_recognised": lambda s: s.voice(recognition="帮助"),
    "voice_unrecognised": lambda s: s.voice(),
    "video": lambda s: s.video(),
    "shortvideo": lambda s: s.shortvideo(),
    "location": lambda s: s.location(25.04, 102.71, 15, "长岭子村委会"),
    "link": lambda s: s.link("通知", "扶贫通知", "http://example.com/a"),
}
EXPECT_TEXT = {
    "text": "第三十一条",
    "image": "只看得懂文字和语音",
    "voice_recognised": "打字或发语音问政策",
    "voice_unrecognised": "没听清",
    "video": "只看得懂文字和语音",
    "shortvideo": "只看得懂文字和语音",
    "location": "长岭子村委会",
    "link": "只看得懂文字和语音",
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_every_message_type_gets_a_reply(client: TestClient, sim: WeChatSimulator, kind: str) -> None:
    reply = sim.post(client, MESSAGES[kind](sim))
    assert reply.status == 200
    assert EXPECT_TEXT[kind] in (reply.text or "")


EVENTS = [
    ("subscribe", None, "欢迎关注四送助手"),
    ("subscribe", "qrscene_village_changlingzi", "欢迎关注四送助手"),
    ("SCAN", "village_changlingzi", "欢迎回来"),
    ("CLICK", "POLICY_QA", "房子漏雨能补钱不"),
    ("CLICK", "JOBS", "就业岗位"),
    ("CLICK", "SURVEY", "满意度调查"),
    ("CLICK", "CONTACT_HELPER", "回复“0”"),
    ("CLICK", "SOME_OLD_KEY", "打字或发语音问政策"),
    ("scancode_waitmsg", "scan1", "扫码结果已收到"),
    ("unsubscribe", None, None),
    ("LOCATION", None, None),
    ("VIEW", "http://example.com/", None),
    ("scancode_push", "scan1", None),
    ("pic_sysphoto", "pic1", None),
    ("pic_photo_or_album", "pic1", None),
    ("pic_weixin", "pic1", None),
    ("location_select", "loc1", None),
    ("TEMPLATESENDJOBFINISH", None, None),
    ("MASSSENDJOBFINISH", None, None),
    ("subscribe_msg_popup_event", None, None),
    ("subscribe_msg_change_event", None, None),
    ("subscribe_msg_sent_event", None, None),
    ("some_future_event", None, None),
]


@pytest.mark.parametrize(("event", "key", "expected"), EVENTS, ids=[f"{e}-{k}" for e, k, _ in EVENTS])
def test_every_event_type_gets_a_sensible_answer(
    client: TestClient, sim: WeChatSimulator, event: str, key: str | None, expected: str | None
) -> None:
    extra = {"Latitude": "25.04", "Longitude": "102.71", "Precision": "30"} if event == "LOCATION" else {}
    reply = sim.post(client, sim.event(event, event_key=key, **extra))
    assert reply.status == 200
    if expected is None:
        assert reply.is_success
    else:
        assert expected in (reply.text or "")


def test_unknown_message_type_gets_success(client: TestClient, sim: WeChatSimulator) -> None:
    xml = (
        "<xml><ToUserName><![CDATA[gh_sisong]]></ToUserName><FromUserName><![CDATA[oX]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[hologram]]></MsgType><MsgId>42</MsgId></xml>"
    )
    assert sim.post(client, xml).is_success


# -- bad bodies ----------------------------------------------------------------

BAD_BODIES = {
    "malformed": (b"<xml><ToUserName>oops", 400),
    "not_xml": (b"hello there", 400),
    "bad_utf8": (b"<xml><Content>\xff\xfe</Content></xml>", 400),
    "missing_msgtype": (b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName></xml>", 400),
    "wrong_root": (b"<message><MsgType>text</MsgType></message>", 400),
    "empty": (b"", 400),
    "dtd": (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><MsgType>text</MsgType>'
        b"<Content>&x;</Content></xml>",
        400,
    ),
    "oversized": (b"<xml><Content>" + b"a" * (65 * 1024) + b"</Content></xml>", 413),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_bodies_get_clear_errors(
    client: TestClient, services: Services, sim: WeChatSimulator, name: str
) -> None:
    body, status = BAD_BODIES[name]
    params = sim.sign("<xml/>").params
    response = client.post("/wechat", params=params, content=body)
    assert response.status_code == status
    assert "Traceback" not in response.text
    assert log_count(services) == 0


def test_oversized_body_is_refused_by_declared_length(client: TestClient, sim: WeChatSimulator) -> None:
    params = sim.sign("<xml/>").params

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b"a" * 1024

    response = client.post("/wechat", params=params, content=chunks())
    assert response.status_code == 413


def test_bad_signature_is_refused_before_the_body_is_read(client: TestClient, sim: WeChatSimulator) -> None:
    params = sim.sign("<xml/>").params | {"signature": "0" * 40}
    pulled: list[int] = []

    def ten_megabytes() -> Iterator[bytes]:
        for i in range(10 * 1024):
            pulled.append(i)
            yield b"a" * 1024

    started = time.monotonic()
    response = client.post("/wechat", params=params, content=ten_megabytes(),
                           headers={"Content-Length": str(10 * 1024 * 1024)})
    assert response.status_code == 403 and response.text == "bad signature"  # not 413: nothing was read
    assert time.monotonic() - started < 1.0
    assert len(pulled) <= 1
    assert response.headers.get("connection") == "close"


def test_doctype_text_inside_a_message_is_just_text(client: TestClient, sim: WeChatSimulator) -> None:
    reply = sim.post(client, sim.text("<!DOCTYPE html> 这是什么"))
    assert reply.status == 200 and "答不上来" in (reply.text or "")


def test_unknown_event_is_not_the_follower_speaking(make_settings) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.services import build_services

    services = build_services(make_settings(follower_rate="1/minute"), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oEvents00000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            assert "打字" in (sim.post(client, sim.text("帮助")).text or "")
            assert sim.post(client, sim.event("brand_new_event")).is_success
            assert sim.post(client, sim.event("another_new_event")).is_success
    finally:
        services.close()


def test_mangled_encrypted_envelope_is_a_clean_400(make_settings) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.services import build_services

    services = build_services(make_settings(wechat_aes_key=AES_KEY), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY, mode="safe")
    try:
        with TestClient(create_app(services)) as client:
            request = sim.sign("<xml/>")
            bogus = "<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[bm90IGNpcGhlcnRleHQ=]]></Encrypt></xml>"
            params = dict(request.params)
            params["msg_signature"] = signature_of(TOKEN, params["timestamp"], params["nonce"], "bm90IGNpcGhlcnRleHQ=")
            response = client.post("/wechat", params=params, content=bogus.encode())
            assert response.status_code == 400 and "Traceback" not in response.text
    finally:
        services.close()
