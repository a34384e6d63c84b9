"""Turning an HTTP request from WeChat into a trusted, parsed message.

Every check that can refuse a request happens here, before any handler runs:
signatures (constant-time) and timestamp freshness from the query string alone
(so a forger cannot make us read a body), replayed signatures, size, DTDs,
decryption and parsing. Each failure is a :class:`Rejected` carrying the HTTP
status and a short reason for the log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.parsers.expat import ExpatError

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.utils import WeChatSigner

from bot.config import Settings

if TYPE_CHECKING:
    from storage.state import StateStore

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


def check_timestamp(timestamp: str, window: int, now: float | None = None) -> None:
    """A signature never expires on its own, so a captured URL would work forever;
    WeChat's timestamp bounds it to ``window`` seconds either side of our clock."""
    if window <= 0:
        return
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise Rejected(403, "timestamp not numeric")
    skew = int(timestamp[:20]) - (time.time() if now is None else now)
    if len(timestamp) > 20 or abs(skew) > window:
        raise Rejected(403, f"timestamp outside the window ({skew:+.0f} s)")


def check_query(settings: Settings, params: dict[str, str], now: float | None = None) -> None:
    """Everything the query string alone can tell: checked before the body is read,
    so a request without a valid, fresh signature costs us no more than its headers."""
    verify_signature(settings.wechat_token, params)
    check_timestamp(params["timestamp"], settings.signature_window, now)


class ReplayGuard:
    """Refuses a signed URL reused with a different body.

    The plain ``signature`` covers only token/timestamp/nonce, not the body, so
    whoever sees one request could send any body under its URL while the
    timestamp is fresh. WeChat itself resends a delivery under the same URL
    with the same body, which must pass (the pipeline dedupes it by MsgId), so
    we remember a hash of the first body per (timestamp, nonce, signature) for
    about twice the window: one ``claim`` on the normal path, a ``get`` only
    when the URL was seen before. In safe mode ``msg_signature`` already covers
    the ciphertext; the same rule costs nothing there and keeps one behaviour.
    """

    DEFAULT_WINDOW = 300  # remembered this long (x2) even when the timestamp check is off

    def __init__(self, state: StateStore, window: int) -> None:
        self.state = state
        self.ttl = 2 * (window if window > 0 else self.DEFAULT_WINDOW)

    @staticmethod
    def key(params: dict[str, str]) -> str:
        return f"replay:{params['timestamp']}:{params['nonce']}:{params['signature']}"

    @staticmethod
    def digest(body: bytes) -> str:
        return hashlib.blake2b(body, digest_size=16).hexdigest()

    def check(self, params: dict[str, str], body: bytes) -> None:
        digest = self.digest(body)
        key = self.key(params)
        if self.state.claim(key, digest, self.ttl):
            return
        first = self.state.get(key)
        if first is not None and not hmac.compare_digest(first, digest):
            raise Rejected(403, "replayed signature")

    def admission(self, params: dict[str, str], body: bytes) -> "Admission":
        return Admission(self, params, body)


class Admission:
    """One delivery's replay check, handed to the pipeline: the Redis inbox runs it inside its claim
    script (``key``/``digest``/``ttl``, no round trip of its own); the database path calls :meth:`check`."""

    def __init__(self, guard: ReplayGuard, params: dict[str, str], body: bytes) -> None:
        self.guard = guard
        self.params = params
        self.body = body
        self.key = guard.key(params)
        self.ttl = guard.ttl

    @property
    def digest(self) -> str:
        return self.guard.digest(self.body)

    def check(self) -> None:
        """Raises :class:`Rejected` for a signed URL reused with another body."""
        self.guard.check(self.params, self.body)


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
    """Check and parse one delivery. The webhook has run :func:`check_query` before
    reading the body already; repeating it here (microseconds) keeps this function
    safe on its own."""
    check_query(settings, params)
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
