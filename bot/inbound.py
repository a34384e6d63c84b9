"""Turning an HTTP request from WeChat into a trusted, parsed message.

Every check that can refuse a request happens here, before any handler runs:
signatures (constant-time), size, DTDs, decryption and parsing. Each failure
is a :class:`Rejected` carrying the HTTP status and a short reason for the log.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from xml.parsers.expat import ExpatError

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.utils import WeChatSigner

from bot.config import Settings

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Inbound:
    message: BaseMessage
    raw_xml: str
    encrypted: bool  # reply must be encrypted (compatible or safe mode)
    nonce: str
    timestamp: str


def signature_of(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature  # type: ignore[no-any-return]


def verify_signature(token: str, params: dict[str, str]) -> None:
    """The plain ``signature`` over token/timestamp/nonce, present in every mode."""
    signature = params.get("signature", "")
    timestamp = params.get("timestamp", "")
    nonce = params.get("nonce", "")
    if not (signature and timestamp and nonce):
        raise Rejected(403, "missing signature parameters")
    expected = signature_of(token, timestamp, nonce)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Rejected(403, "bad signature")


def _refuse_dtd(data: bytes) -> None:
    """A DTD can only stand before the root element; text inside CDATA (a follower
    pasting "<!DOCTYPE html>") is not one."""
    root = _FIRST_ELEMENT.search(data)
    prolog = data[: root.start()] if root else data
    if _DTD.search(prolog):
        raise Rejected(400, "DTD or entity declaration refused")


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not valid UTF-8") from None


def _parse(xml: str) -> BaseMessage:
    if not xml.strip():
        raise Rejected(400, "empty body")
    try:
        message = parse_message(xml)
    except ExpatError as exc:
        raise Rejected(400, f"malformed XML: {exc}") from None
    except (KeyError, TypeError, AttributeError):
        raise Rejected(400, "not a WeChat message (root or MsgType missing)") from None
    except ValueError as exc:
        raise Rejected(400, f"bad field value: {exc}") from None
    if message is None:
        raise Rejected(400, "empty message")
    return message


def _decrypt(settings: Settings, params: dict[str, str], xml: str) -> str:
    if not settings.wechat_aes_key:
        raise Rejected(400, "encrypted message but SISONG_WECHAT_AES_KEY is not set")
    msg_signature = params.get("msg_signature", "")
    timestamp, nonce = params["timestamp"], params["nonce"]
    try:
        import xmltodict

        envelope = xmltodict.parse(xml)["xml"]
        encrypt = envelope["Encrypt"]
    except (ExpatError, KeyError, TypeError):
        raise Rejected(400, "encrypted envelope malformed") from None
    if not isinstance(encrypt, str):
        raise Rejected(400, "encrypted envelope malformed")
    expected = signature_of(settings.wechat_token, timestamp, nonce, encrypt)
    if not hmac.compare_digest(expected.encode(), msg_signature.encode()):
        raise Rejected(403, "bad msg_signature")
    crypto = WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    try:
        return crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce)  # type: ignore[no-any-return]
    except InvalidAppIdException:
        raise Rejected(403, "message encrypted for another appid") from None
    except InvalidSignatureException:  # pragma: no cover - checked above
        raise Rejected(403, "bad msg_signature") from None
    except Exception as exc:  # bad base64, bad padding, truncated ciphertext
        raise Rejected(400, f"cannot decrypt: {type(exc).__name__}") from None


def read_inbound(settings: Settings, params: dict[str, str], body: bytes) -> Inbound:
    verify_signature(settings.wechat_token, params)
    if len(body) > settings.max_body_bytes:
        raise Rejected(413, "body too large")
    _refuse_dtd(body)
    xml = _decode(body)
    encrypted = params.get("encrypt_type", "").lower() == "aes"
    if encrypted:
        xml = _decrypt(settings, params, xml)
        _refuse_dtd(xml.encode("utf-8"))
    message = _parse(xml)
    return Inbound(message, xml, encrypted, params["nonce"], params["timestamp"])


def encrypt_reply(settings: Settings, xml: str, nonce: str, timestamp: str) -> str:
    assert settings.wechat_aes_key
    crypto = WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    return crypto.encrypt_message(xml, nonce, timestamp)  # type: ignore[no-any-return]
