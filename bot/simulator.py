"""A WeChat-server simulator: plays WeChat towards our ``/wechat`` webhook.

Why this exists: the webhook can only be trusted if it is exercised with the
exact bytes WeChat sends (CDATA strings, integer CreateTime, nested menu-event
structures), signed the way WeChat signs them and, in compatible/safe mode,
encrypted the way WeChat encrypts them. The ``sisong chat`` REPL and the test
suite both drive the webhook through this class, so a bug here would hide a
bug there; the crypto is therefore delegated to wechatpy rather than
re-implemented.

Modes (the account's "message encryption mode" setting):

* ``plain``  - body is the plaintext XML; query has ``signature``.
* ``compat`` - body has the plaintext fields *and* ``<Encrypt>``; query gains
  ``encrypt_type=aes`` and ``msg_signature``.
* ``safe``   - body has only ``ToUserName`` and ``<Encrypt>``.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import xmltodict
from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

MODES = ("plain", "compat", "safe")

# Events whose payload WeChat always nests; filled with neutral defaults when the
# caller does not give them, so a bare ``event("pic_weixin", "k")`` is still a
# message WeChat could have sent.
_NESTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "scancode_push": {"ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": ""}},
    "scancode_waitmsg": {"ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": ""}},
    "pic_sysphoto": {"SendPicsInfo": {"Count": 0, "PicList": ""}},
    "pic_photo_or_album": {"SendPicsInfo": {"Count": 0, "PicList": ""}},
    "pic_weixin": {"SendPicsInfo": {"Count": 0, "PicList": ""}},
    "location_select": {
        "SendLocationInfo": {
            "Location_X": "23.137466",
            "Location_Y": "113.352425",
            "Scale": "15",
            "Label": "",
            "Poiname": "",
        }
    },
}


class _Clock:
    """Process-wide monotonic source of MsgId and CreateTime defaults.

    Shared by all simulators so that two simulators in one test never produce
    the same MsgId (the webhook dedupes on it) and consecutive events never
    share a CreateTime (events are deduped on FromUserName + CreateTime).
    MsgIds start from the current time in microseconds so that separate runs
    against a persistent dedupe store do not collide either.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id = 0
        self._last_time = 0

    def next_msg_id(self) -> int:
        with self._lock:
            self._last_id = max(time.time_ns() // 1000, self._last_id + 1)
            return self._last_id

    def next_create_time(self) -> int:
        # Never behind the wall clock, strictly increasing: a burst of messages
        # runs a few seconds ahead, as if WeChat had spaced them out.
        with self._lock:
            self._last_time = max(int(time.time()), self._last_time + 1)
            return self._last_time


_clock = _Clock()
_ticket_counter = itertools.count(1)


@dataclass
class SignedRequest:
    """One POST as WeChat would send it to the webhook."""

    params: dict[str, str]
    body: bytes


@dataclass
class DecodedReply:
    """The webhook's answer, seen from WeChat's side (decrypted if needed)."""

    status: int
    raw: bytes
    xml: str | None
    fields: dict | None

    @property
    def is_success(self) -> bool:
        """True when WeChat would stop retrying and show nothing.

        Only a 200 counts: on any other status WeChat retries, so it is not a
        "success" even if the body is empty.
        """
        return self.status == 200 and self.raw in (b"", b"success")

    @property
    def msg_type(self) -> str | None:
        """MsgType of the plaintext reply (``text``, ``news``, ...)."""
        return self.fields.get("MsgType") if self.fields else None

    @property
    def text(self) -> str | None:
        """Content of a text reply, else None."""
        if not self.fields or self.fields.get("MsgType") != "text":
            return None
        return self.fields.get("Content") or ""


class _Response(Protocol):
    status_code: int
    content: bytes


class _Client(Protocol):
    def post(self, url: str, **kwargs: Any) -> _Response: ...


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside a CDATA section; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(tag: str, value: Any) -> str:
    """Render one element the way WeChat does: strings in CDATA, numbers bare.

    Dicts become nested elements; lists become repeated ``tag`` elements
    (e.g. ``PicList={"item": [{...}, {...}]}``); None is omitted.
    """
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(_element(tag, item) for item in value)
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, bool):
        return f"<{tag}>{int(value)}</{tag}>"
    if isinstance(value, (int, float)):
        return f"<{tag}>{value}</{tag}>"
    return f"<{tag}>{_cdata(str(value))}</{tag}>"


def _xml(fields: dict[str, Any]) -> str:
    return "<xml>" + "".join(_element(k, v) for k, v in fields.items()) + "</xml>"


def _sha1(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _nonce() -> str:
    # WeChat's nonces are decimal strings of about ten digits.
    return str(secrets.randbelow(9_000_000_000) + 1_000_000_000)


class WeChatSimulator:
    """Builds, signs, encrypts inbound messages and decodes our replies."""

    def __init__(
        self,
        token: str,
        appid: str,
        aes_key: str | None = None,
        mode: str = "plain",
        openid: str = "oSimUser0001",
        account: str = "gh_sisong",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode != "plain":
            if not aes_key or len(aes_key) != 43:
                raise ValueError("compat/safe mode needs a 43-character EncodingAESKey")
        self.token = token
        self.appid = appid
        self.aes_key = aes_key
        self.mode = mode
        self.openid = openid
        self.account = account
        self._key: bytes | None = base64.b64decode(aes_key + "=") if aes_key and len(aes_key) == 43 else None

    # ------------------------------------------------------------------ builders

    def _header(self, msg_type: str, openid: str | None, create_time: int | None) -> dict[str, Any]:
        return {
            "ToUserName": self.account,
            "FromUserName": openid or self.openid,
            "CreateTime": create_time if create_time is not None else _clock.next_create_time(),
            "MsgType": msg_type,
        }

    def _message(
        self,
        msg_type: str,
        body: dict[str, Any],
        msg_id: int | None,
        openid: str | None,
        create_time: int | None,
    ) -> str:
        fields = self._header(msg_type, openid, create_time)
        fields.update(body)
        fields["MsgId"] = msg_id if msg_id is not None else _clock.next_msg_id()
        return _xml(fields)

    def text(
        self, content: str, msg_id: int | None = None, openid: str | None = None, create_time: int | None = None
    ) -> str:
        """A text message."""
        return self._message("text", {"Content": content}, msg_id, openid, create_time)

    def image(
        self,
        pic_url: str = "http://mmbiz.qpic.cn/sim/image.jpg",
        media_id: str = "sim_image_media_id",
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """An image message."""
        return self._message("image", {"PicUrl": pic_url, "MediaId": media_id}, msg_id, openid, create_time)

    def voice(
        self,
        recognition: str | None = None,
        media_id: str = "sim_voice_media_id",
        format: str = "amr",
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """A voice message; ``recognition`` is present only when the account has
        speech recognition switched on, so None omits the element."""
        body = {"MediaId": media_id, "Format": format, "Recognition": recognition}
        return self._message("voice", body, msg_id, openid, create_time)

    def video(
        self,
        media_id: str = "sim_video_media_id",
        thumb_media_id: str = "sim_thumb_media_id",
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """A video message."""
        body = {"MediaId": media_id, "ThumbMediaId": thumb_media_id}
        return self._message("video", body, msg_id, openid, create_time)

    def shortvideo(
        self,
        media_id: str = "sim_shortvideo_media_id",
        thumb_media_id: str = "sim_thumb_media_id",
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """A short-video message."""
        body = {"MediaId": media_id, "ThumbMediaId": thumb_media_id}
        return self._message("shortvideo", body, msg_id, openid, create_time)

    def location(
        self,
        x: float,
        y: float,
        scale: int = 15,
        label: str = "",
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """A location message (``x`` = latitude, ``y`` = longitude, as WeChat names them)."""
        body = {"Location_X": x, "Location_Y": y, "Scale": scale, "Label": label}
        return self._message("location", body, msg_id, openid, create_time)

    def link(
        self,
        title: str,
        description: str,
        url: str,
        msg_id: int | None = None,
        openid: str | None = None,
        create_time: int | None = None,
    ) -> str:
        """A link message."""
        body = {"Title": title, "Description": description, "Url": url}
        return self._message("link", body, msg_id, openid, create_time)

    def event(
        self,
        event: str,
        event_key: str | None = None,
        create_time: int | None = None,
        openid: str | None = None,
        **extra: Any,
    ) -> str:
        """Any event. Extras are appended in order; dicts nest, lists repeat.

        Defaults are filled in where WeChat always sends a field: a ``Ticket``
        for QR-code follows/scans, ``MsgID``/``Status`` for the job-finish
        events, and the nested info block of menu scan/picture/location events.
        Events carry no MsgId; pass ``create_time`` to reproduce a retry.
        """
        fields = self._header("event", openid, create_time)
        fields["Event"] = event
        fields["EventKey"] = event_key
        body: dict[str, Any] = dict(_NESTED_DEFAULTS.get(event, {}))
        if (event == "SCAN" or (event == "subscribe" and (event_key or "").startswith("qrscene_"))) and (
            "Ticket" not in extra
        ):
            body["Ticket"] = f"gQSim{next(_ticket_counter):08d}"
        if event == "TEMPLATESENDJOBFINISH":
            body.update({"MsgID": _clock.next_msg_id(), "Status": "success"})
        elif event == "MASSSENDJOBFINISH":
            body.update(
                {
                    "MsgID": _clock.next_msg_id(),
                    "Status": "send success",
                    "TotalCount": 1,
                    "FilterCount": 1,
                    "SentCount": 1,
                    "ErrorCount": 0,
                }
            )
        body.update(extra)
        fields.update(body)
        return _xml(fields)

    # ------------------------------------------------------------------ signing

    def _encrypt(self, xml: str) -> str:
        assert self._key is not None
        return PrpCrypto(self._key).encrypt(xml, self.appid).decode("ascii")

    def sign(self, xml: str, timestamp: str | None = None, nonce: str | None = None) -> SignedRequest:
        """Sign (and in compat/safe mode encrypt) ``xml`` as WeChat would.

        ``xml`` need not be well-formed: tests send garbage through here on
        purpose, so the addressee fields fall back to the simulator's own.
        """
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or _nonce()
        openid, account = self.openid, self.account
        try:
            parsed = xmltodict.parse(xml)["xml"]
            openid = parsed.get("FromUserName") or openid
            account = parsed.get("ToUserName") or account
        except Exception:  # noqa: BLE001 - malformed input is allowed here
            pass
        params = {
            "signature": _sha1(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }
        if self.mode == "plain":
            return SignedRequest(params=params, body=xml.encode("utf-8"))

        encrypt = self._encrypt(xml)
        params["encrypt_type"] = "aes"
        params["msg_signature"] = _sha1(self.token, timestamp, nonce, encrypt)
        encrypt_element = _element("Encrypt", encrypt)
        if self.mode == "compat" and xml.rstrip().endswith("</xml>"):
            stripped = xml.rstrip()
            body = stripped[: -len("</xml>")] + encrypt_element + "</xml>"
        else:
            body = "<xml>" + _element("ToUserName", account) + encrypt_element + "</xml>"
        return SignedRequest(params=params, body=body.encode("utf-8"))

    def url_check(self, echostr: str) -> dict[str, str]:
        """Query params of the GET WeChat sends when the server URL is saved.

        The official-account URL check is never encrypted, whatever the mode.
        """
        timestamp = str(int(time.time()))
        nonce = _nonce()
        return {
            "signature": _sha1(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }

    # ------------------------------------------------------------------ replies

    def decode(self, status: int, body: bytes, request: SignedRequest) -> DecodedReply:
        """Read our reply as WeChat would; raise ValueError where WeChat would
        show the follower "该公众号暂时无法提供服务".

        Whether an encrypted reply is expected follows the request: an
        encrypted request in safe mode requires an encrypted reply, in compat
        mode either is accepted.
        """
        if status != 200 or body in (b"", b"success"):
            return DecodedReply(status=status, raw=body, xml=None, fields=None)
        try:
            text = body.decode("utf-8")
            doc = xmltodict.parse(text)["xml"]
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad reply
            raise ValueError(f"reply is neither 'success' nor <xml>: {body[:200]!r}") from exc
        if not isinstance(doc, dict):
            raise ValueError(f"reply <xml> is empty: {body[:200]!r}")

        encrypted_request = request.params.get("encrypt_type") == "aes"
        if "Encrypt" in doc:
            if self._key is None:
                raise ValueError("encrypted reply but the simulator has no EncodingAESKey")
            encrypt = doc.get("Encrypt") or ""
            expected = _sha1(self.token, doc.get("TimeStamp") or "", doc.get("Nonce") or "", encrypt)
            if doc.get("MsgSignature") != expected:
                raise ValueError("reply MsgSignature does not match")
            try:
                text = PrpCrypto(self._key).decrypt(encrypt, self.appid)
            except InvalidAppIdException as exc:
                raise ValueError("reply was encrypted for another appid") from exc
            except Exception as exc:  # noqa: BLE001 - bad base64 / padding
                raise ValueError("reply Encrypt cannot be decrypted") from exc
            try:
                doc = xmltodict.parse(text)["xml"]
            except Exception as exc:  # noqa: BLE001
                raise ValueError(f"decrypted reply is not <xml>: {text[:200]!r}") from exc
        elif encrypted_request and self.mode == "safe":
            raise ValueError("safe mode requires an encrypted reply")
        return DecodedReply(status=status, raw=body, xml=text, fields=doc)

    def post(self, client: _Client, xml: str, path: str = "/wechat") -> DecodedReply:
        """Sign ``xml``, POST it with ``client`` (httpx.Client / TestClient), decode the reply."""
        request = self.sign(xml)
        response = client.post(
            path, params=request.params, content=request.body, headers={"Content-Type": "text/xml"}
        )
        return self.decode(response.status_code, response.content, request)
