"""The simulator must produce what WeChat produces, checked against wechatpy itself.

If these round-trips fail, every webhook test built on the simulator is moot.
"""

from __future__ import annotations

import hashlib

import pytest
import xmltodict
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import (
    ClickEvent,
    LocationEvent,
    LocationSelectEvent,
    MassSendJobFinishEvent,
    PicWeChatEvent,
    ScanCodePushEvent,
    ScanEvent,
    SubscribeScanEvent,
    TemplateSendJobFinishEvent,
    UnsubscribeEvent,
    ViewEvent,
)
from wechatpy.messages import (
    ImageMessage,
    LinkMessage,
    LocationMessage,
    ShortVideoMessage,
    TextMessage,
    VideoMessage,
    VoiceMessage,
)
from wechatpy.utils import check_signature

from bot.simulator import DecodedReply, SignedRequest, WeChatSimulator

TOKEN = "sisong-token"
APPID = "wxtestappid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def sim(mode: str = "plain") -> WeChatSimulator:
    return WeChatSimulator(TOKEN, APPID, AES_KEY if mode != "plain" else None, mode=mode)


def decrypt(req: SignedRequest) -> str:
    """Decrypt the way our webhook does: with msg_signature, never signature."""
    p = req.params
    return WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(req.body, p["msg_signature"], p["timestamp"], p["nonce"])


def test_plain_text_signature_is_sha1_of_sorted_token_timestamp_nonce() -> None:
    s = sim()
    xml = s.text("你好")
    req = s.sign(xml, timestamp="1700000000", nonce="123456789")
    expected = hashlib.sha1("".join(sorted([TOKEN, "1700000000", "123456789"])).encode()).hexdigest()
    assert req.params == {
        "signature": expected,
        "timestamp": "1700000000",
        "nonce": "123456789",
        "openid": "oSimUser0001",
    }
    assert req.body == xml.encode("utf-8")
    check_signature(TOKEN, req.params["signature"], "1700000000", "123456789")
    msg = parse_message(req.body)
    assert isinstance(msg, TextMessage)
    assert msg.content == "你好" and msg.source == "oSimUser0001" and msg.target == "gh_sisong"
    assert msg.id > 0 and msg.time > 0


def test_wire_format_uses_cdata_and_integer_createtime() -> None:
    xml = sim().text("a]]>b", msg_id=42, openid="oOther")
    assert "<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>" in xml
    assert "<MsgId>42</MsgId>" in xml
    assert "<FromUserName><![CDATA[oOther]]></FromUserName>" in xml
    fields = xmltodict.parse(xml)["xml"]
    assert fields["Content"] == "a]]>b"
    assert fields["CreateTime"].isdigit()


def test_defaults_differ_between_consecutive_messages() -> None:
    s = sim()
    a, b = (xmltodict.parse(s.text("x"))["xml"] for _ in range(2))
    assert a["MsgId"] != b["MsgId"]
    assert int(b["CreateTime"]) > int(a["CreateTime"])
    e1, e2 = (xmltodict.parse(s.event("CLICK", "k"))["xml"] for _ in range(2))
    assert e1["CreateTime"] != e2["CreateTime"]
    r1, r2 = s.sign("<xml/>"), s.sign("<xml/>")
    assert r1.params["nonce"] != r2.params["nonce"]


def test_url_check_params_verify() -> None:
    params = sim("safe").url_check("echo-123")
    assert params["echostr"] == "echo-123"
    check_signature(TOKEN, params["signature"], params["timestamp"], params["nonce"])


BUILDERS = [
    (lambda s: s.text("hi"), TextMessage, {"content": "hi"}),
    (lambda s: s.image(pic_url="http://x/p.jpg"), ImageMessage, {"image": "http://x/p.jpg"}),
    (lambda s: s.voice(recognition="我要查政策"), VoiceMessage, {"recognition": "我要查政策", "format": "amr"}),
    (lambda s: s.voice(), VoiceMessage, {"recognition": None}),
    (lambda s: s.video(media_id="v1"), VideoMessage, {"media_id": "v1"}),
    (lambda s: s.shortvideo(media_id="sv1"), ShortVideoMessage, {"media_id": "sv1"}),
    (
        lambda s: s.location(23.134521, 113.358803, 20, "某某村"),
        LocationMessage,
        {"location": ("23.134521", "113.358803"), "label": "某某村", "scale": "20"},
    ),
    (
        lambda s: s.link("标题", "描述", "http://example.com/a"),
        LinkMessage,
        {"title": "标题", "description": "描述", "url": "http://example.com/a"},
    ),
    (lambda s: s.event("subscribe", "qrscene_village01"), SubscribeScanEvent, {"scene_id": "village01"}),
    (lambda s: s.event("unsubscribe"), UnsubscribeEvent, {}),
    (lambda s: s.event("SCAN", "village01", Ticket="TK"), ScanEvent, {"scene_id": "village01", "ticket": "TK"}),
    (
        lambda s: s.event("LOCATION", Latitude=23.137466, Longitude=113.352425, Precision=119.385040),
        LocationEvent,
        {"latitude": 23.137466, "longitude": 113.352425},
    ),
    (lambda s: s.event("CLICK", "MENU_POLICY"), ClickEvent, {"key": "MENU_POLICY"}),
    (lambda s: s.event("VIEW", "http://example.com/v"), ViewEvent, {"url": "http://example.com/v"}),
    (
        lambda s: s.event("scancode_push", "scan1", ScanCodeInfo={"ScanType": "qrcode", "ScanResult": "R1"}),
        ScanCodePushEvent,
        {"scan_type": "qrcode", "scan_result": "R1"},
    ),
    (
        lambda s: s.event(
            "pic_weixin",
            "pic1",
            SendPicsInfo={"Count": 2, "PicList": {"item": [{"PicMd5Sum": "aa"}, {"PicMd5Sum": "bb"}]}},
        ),
        PicWeChatEvent,
        {"count": 2, "pictures": [{"PicMd5Sum": "aa"}, {"PicMd5Sum": "bb"}]},
    ),
    (
        lambda s: s.event(
            "location_select",
            "loc1",
            SendLocationInfo={"Location_X": "23", "Location_Y": "113", "Scale": "15", "Label": "村委", "Poiname": ""},
        ),
        LocationSelectEvent,
        {"location": ("23", "113"), "label": "村委"},
    ),
    (
        lambda s: s.event("TEMPLATESENDJOBFINISH", MsgID=200163836, Status="failed:user block"),
        TemplateSendJobFinishEvent,
        {"id": 200163836, "status": "failed:user block"},
    ),
    (
        lambda s: s.event("MASSSENDJOBFINISH", MsgID=1988, Status="sendsuccess", TotalCount=100, SentCount=98),
        MassSendJobFinishEvent,
        {"id": 1988, "status": "sendsuccess", "total_count": 100, "sent_count": 98},
    ),
]


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
@pytest.mark.parametrize("build,cls,attrs", BUILDERS)
def test_every_builder_parses_to_the_right_type(mode, build, cls, attrs) -> None:
    s = sim(mode)
    xml = build(s)
    req = s.sign(xml)
    check_signature(TOKEN, req.params["signature"], req.params["timestamp"], req.params["nonce"])
    if mode == "plain":
        plaintext = req.body.decode()
        assert "encrypt_type" not in req.params
    else:
        assert req.params["encrypt_type"] == "aes"
        plaintext = decrypt(req)
    assert plaintext == xml
    msg = parse_message(plaintext)
    assert type(msg) is cls
    assert msg.source == "oSimUser0001"
    for name, value in attrs.items():
        assert getattr(msg, name) == value, name


def test_safe_mode_body_has_only_tousername_and_encrypt() -> None:
    s = sim("safe")
    req = s.sign(s.text("秘密"))
    envelope = xmltodict.parse(req.body)["xml"]
    assert set(envelope) == {"ToUserName", "Encrypt"}
    assert envelope["ToUserName"] == "gh_sisong"
    assert b"\xe7\xa7\x98" not in req.body  # "秘" never in clear
    assert parse_message(decrypt(req)).content == "秘密"


def test_compat_mode_body_has_plaintext_and_encrypt() -> None:
    s = sim("compat")
    req = s.sign(s.text("兼容"))
    envelope = xmltodict.parse(req.body)["xml"]
    assert envelope["Content"] == "兼容" and "Encrypt" in envelope
    assert parse_message(decrypt(req)).content == "兼容"


def test_wrong_signature_is_rejected_by_wechatpy() -> None:
    from wechatpy.exceptions import InvalidSignatureException

    s = sim("safe")
    req = s.sign(s.text("x"))
    req.params["msg_signature"] = "0" * 40
    with pytest.raises(InvalidSignatureException):
        decrypt(req)


def test_malformed_xml_can_still_be_signed() -> None:
    for mode in ("plain", "compat", "safe"):
        req = sim(mode).sign("<xml><Content>broken")
        assert req.params["openid"] == "oSimUser0001"


@pytest.mark.parametrize("mode", ["compat", "safe"])
def test_decode_encrypted_reply_and_reject_tampering(mode: str) -> None:
    s = sim(mode)
    req = s.sign(s.text("问"))
    msg = parse_message(decrypt(req))
    reply_xml = create_reply("答：见第三条", msg).render()
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    envelope = crypto.encrypt_message(reply_xml, req.params["nonce"], req.params["timestamp"]).encode()

    reply = s.decode(200, envelope, req)
    assert reply.text == "答：见第三条"
    assert reply.msg_type == "text"
    assert reply.fields["ToUserName"] == "oSimUser0001"
    assert reply.xml == reply_xml
    assert not reply.is_success

    doc = xmltodict.parse(envelope)["xml"]
    tampered = envelope.replace(doc["MsgSignature"].encode(), b"f" * 40)
    with pytest.raises(ValueError):
        s.decode(200, tampered, req)

    other = WeChatCrypto(TOKEN, AES_KEY, "wxotherapp").encrypt_message(reply_xml, "1", "2").encode()
    with pytest.raises(ValueError):
        s.decode(200, other, req)


def test_decode_plain_reply_success_and_errors() -> None:
    s = sim()
    req = s.sign(s.text("问"))
    reply_xml = create_reply("答", parse_message(req.body)).render()
    reply = s.decode(200, reply_xml.encode(), req)
    assert reply.text == "答" and reply.fields["MsgType"] == "text"

    for body in (b"success", b""):
        ok = s.decode(200, body, req)
        assert ok.is_success and ok.xml is None and ok.fields is None and ok.text is None
    assert not s.decode(500, b"", req).is_success
    with pytest.raises(ValueError):
        s.decode(200, b"Internal Server Error", req)


def test_safe_mode_rejects_plaintext_reply_compat_accepts_it() -> None:
    for mode, accepted in (("safe", False), ("compat", True)):
        s = sim(mode)
        req = s.sign(s.text("问"))
        reply_xml = create_reply("答", parse_message(decrypt(req))).render().encode()
        if accepted:
            assert s.decode(200, reply_xml, req).text == "答"
        else:
            with pytest.raises(ValueError):
                s.decode(200, reply_xml, req)


class _Resp:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content


class _EchoWebhook:
    """A minimal client that behaves like our webhook: verifies, decrypts, replies."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)

    def post(self, url, params=None, content=None, headers=None):
        self.seen.append({"url": url, "params": params, "headers": headers})
        check_signature(TOKEN, params["signature"], params["timestamp"], params["nonce"])
        if params.get("encrypt_type") == "aes":
            xml = self.crypto.decrypt_message(content, params["msg_signature"], params["timestamp"], params["nonce"])
            msg = parse_message(xml)
            body = self.crypto.encrypt_message(create_reply("echo:" + msg.content, msg).render(), params["nonce"])
        else:
            msg = parse_message(content)
            body = create_reply("echo:" + msg.content, msg).render()
        return _Resp(200, body.encode())


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_post_round_trip(mode: str) -> None:
    s = sim(mode)
    client = _EchoWebhook()
    reply = s.post(client, s.text("你好"))
    assert isinstance(reply, DecodedReply)
    assert reply.status == 200 and reply.text == "echo:你好"
    assert client.seen[0]["url"] == "/wechat"
    assert client.seen[0]["headers"]["Content-Type"] == "text/xml"


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        WeChatSimulator(TOKEN, APPID, None, mode="safe")
    with pytest.raises(ValueError):
        WeChatSimulator(TOKEN, APPID, "short", mode="compat")
    with pytest.raises(ValueError):
        WeChatSimulator(TOKEN, APPID, AES_KEY, mode="secure")


def test_post_through_httpx_client() -> None:
    """``post`` works with a real httpx.Client (TestClient has the same signature)."""
    import httpx

    echo = _EchoWebhook()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "text/xml"
        resp = echo.post(request.url.path, params=dict(request.url.params), content=request.content)
        return httpx.Response(resp.status_code, content=resp.content)

    s = sim("safe")
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://sisong.test") as client:
        assert s.post(client, s.text("走一遍")).text == "echo:走一遍"
