"""The one outbound WeChat client: shared token, one refresher, bounded retries.

wechatpy does the protocol; what we add is what it gets wrong under several
worker processes: the access token lives in the database (``storage.tokens``)
and only one process refreshes it at a time (a row lock), so workers never
invalidate each other's tokens ("40001 … not latest"), Redis or no Redis.
Retries are ours (tenacity), never wechatpy's recursive ``auto_retry``, and
they know the difference between a request that never reached WeChat (safe to
repeat) and one that may have (a customer-service message may already be on
the follower's phone: one more try at most, then say so).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from sqlalchemy.exc import SQLAlchemyError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential
from urllib3.exceptions import NewConnectionError
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot import metrics
from bot.config import Settings
from storage.db import Database
from storage.tokens import TOKEN_MARGIN, TokenStore

log = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_ERRORS = {40001, 40014, 42001}
TRANSIENT_ERRORS = {-1, 45009}
# The follower cannot be reached any more: retrying will not help.
UNREACHABLE_ERRORS = {43004: "not_following", 43101: "refused"}


class WeChatAPIError(Exception):
    """A WeChat API call failed for good; ``errcode`` says why.

    ``maybe_delivered`` is True when an attempt may have reached WeChat (read
    timeout, connection dropped after sending, a gateway's 5xx) and none was
    confirmed: the message may have gone out, so it must not be sent again.
    ``errcode`` is then the last attempt's (None if that one timed out too).
    """

    def __init__(
        self, api: str, errcode: int | None, errmsg: str | None, *, maybe_delivered: bool = False
    ) -> None:
        super().__init__(f"{api}: errcode={errcode} {errmsg or ''}".strip())
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg
        self.maybe_delivered = maybe_delivered

    def __str__(self) -> str:
        text = super().__str__()
        return text + " (may have been delivered)" if self.maybe_delivered else text

    @property
    def unreachable_reason(self) -> str | None:
        return UNREACHABLE_ERRORS.get(self.errcode or 0)


class _TransientError(Exception):
    """Worth another attempt. ``reached``: the request may have got to WeChat."""

    def __init__(self, cause: WeChatAPIError, *, reached: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.reached = reached


# Refused before a connection was even tried: a bad URL or header.
_NEVER_SENT = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)


def may_have_reached(exc: requests.RequestException) -> bool:
    """False only when the request surely never got to WeChat.

    A connect failure (refused, DNS, connect timeout) happens before a byte of
    the request is sent. Everything else - a read timeout, a connection reset
    or closed while waiting for the answer, TLS trouble - may come after WeChat
    has acted on it, and for a customer-service message that means it may be
    on the follower's phone already.
    """
    if isinstance(exc, (requests.ConnectTimeout, *_NEVER_SENT)):
        return False
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, NewConnectionError)
    return True


def _status_may_have_reached(response: requests.Response | None) -> bool:
    """A non-2xx answer comes from something in front of WeChat (WeChat itself says errcode).

    4xx, 501 and 503 mean the request was turned away; 500, 502, 504 and the
    like may hide a message that went out behind the gateway.
    """
    if response is None:
        return True
    status = response.status_code
    return status >= 500 and status not in (501, 503)


class _TimeoutSession(requests.Session):
    """wechatpy's token fetch passes no timeout; a hung endpoint must not hold the refresh lock.

    The proxy settings of the environment (HTTPS_PROXY, NO_PROXY) are read once,
    for the API base, instead of on every request: requests' per-request look-up
    (environment, ~/.netrc, proxy bypass) cost as much CPU as the call itself,
    which is what limits a push to 20,000 followers.
    """

    def __init__(self, timeout: float, base_url: str | None = None) -> None:
        super().__init__()
        self.default_timeout = timeout
        if base_url:
            self.proxies.update(requests.utils.get_environ_proxies(base_url))
            self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            self.trust_env = False

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(*args, **kwargs)


class SisongWeChatClient(WeChatClient):
    """wechatpy's client pointed at a configurable base, its token in the database.

    wechatpy's own ``session`` (in-process) is left for its other caches; the
    access token never goes there.
    """

    TOKEN_MARGIN = TOKEN_MARGIN  # refresh 5 minutes early: WeChat's own overlap window

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__(
            settings.wechat_appid,
            settings.wechat_secret,
            timeout=settings.api_timeout,
            auto_retry=False,
        )
        self.API_BASE_URL = settings.wechat_api_base
        self._http = _TimeoutSession(settings.api_timeout, settings.wechat_api_base)
        self.tokens = TokenStore(db, settings.wechat_appid, margin=self.TOKEN_MARGIN)

    def _request_token(self) -> tuple[str, int]:
        """Ask WeChat for a new token (the caller holds the refresh lock)."""
        if not self.secret:  # 41004 is WeChat's own "appsecret missing": permanent
            raise WeChatAPIError("token", 41004, "SISONG_WECHAT_SECRET is not set")
        metrics.TOKEN_FETCHES.inc()
        log.info("fetching access token")
        res = self._http.get(
            self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        try:
            res.raise_for_status()
            result = res.json()
        except (requests.RequestException, ValueError):
            raise WeChatClientException(None, None, client=self, request=res.request, response=res) from None
        if result.get("errcode"):
            raise WeChatClientException(
                result["errcode"], result.get("errmsg"), client=self, request=res.request, response=res
            )
        return str(result["access_token"]), int(result.get("expires_in", 7200))

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's name: fetch a new token now and store it for every process (under the lock)."""
        token = self.tokens.refresh(self._request_token, force=True)
        return {"access_token": token}

    @property
    def expires_at(self) -> float | None:  # type: ignore[override]
        return self.tokens.expires_at

    @property
    def access_token(self) -> str:  # type: ignore[override]
        return self.tokens.current() or self.tokens.refresh(self._request_token)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` unless another process already replaced it."""
        self.tokens.invalidate(token)


class WeChatAPI:
    """Thin, tested wrappers over the calls Sisong makes, with our retry policy."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.client = SisongWeChatClient(settings, db)

    # -- the retry policy ---------------------------------------------------

    def call(self, api: str, fn: Callable[[], T], *, retry_transient: bool = True,
             retry_uncertain: bool = True) -> T:
        """Run ``fn`` with one token refresh on 40001/42001 and backoff on busy/quota/network.

        After an attempt that may have reached WeChat, one more attempt at
        most; if that fails too, the error says ``maybe_delivered``.

        Pushes (``bot.push``) pass ``retry_transient=False``: a busy or quota
        answer is the push engine's to wait out (it puts the row back and
        pauses every sender) rather than a thread's to sleep through, and
        ``retry_uncertain=False`` for a customer-service message, which has no
        id WeChat could dedupe a second attempt on: it is marked 待确认 instead.
        """
        uncertain_at: int | None = None  # the first attempt that may have reached WeChat

        def give_up(state: RetryCallState) -> bool:
            if state.attempt_number >= self.settings.api_retry_attempts:
                return True
            if uncertain_at is not None:
                return not retry_uncertain or state.attempt_number > uncertain_at
            return not retry_transient

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, _TransientError)),
            wait=wait_exponential(multiplier=self.settings.api_retry_wait, max=30),
            stop=give_up,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        return self._call_with_token_refresh(api, fn)
                    except _TransientError as exc:
                        if exc.reached and uncertain_at is None:
                            uncertain_at = attempt.retry_state.attempt_number
                        raise
        except (_TransientError, WeChatAPIError) as exc:
            error = exc.cause if isinstance(exc, _TransientError) else exc
            if uncertain_at is not None:
                error.maybe_delivered = True
                log.warning("%s: gave up, the request may have reached WeChat: %s", api, error)
            raise error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_with_token_refresh(self, api: str, fn: Callable[[], T]) -> T:
        for refreshed in (False, True):
            token = self._token(api)
            try:
                result = fn()
            except WeChatClientException as exc:
                errcode = int(exc.errcode) if exc.errcode is not None else None
                error = WeChatAPIError(api, errcode, exc.errmsg)
                if errcode is None:  # no WeChat answer: an HTTP error from whatever is in front of it
                    reached = _status_may_have_reached(exc.response)
                    metrics.OUTBOUND.labels(api, "timeout" if reached else "network").inc()
                    raise _TransientError(error, reached=reached) from None
                metrics.OUTBOUND.labels(api, str(errcode)).inc()
                if errcode in TOKEN_ERRORS and not refreshed:
                    log.warning("%s: token rejected (%s), refreshing once", api, errcode)
                    self._invalidate(api, token)
                    continue
                if errcode in TRANSIENT_ERRORS:
                    raise _TransientError(error) from None
                raise error from None
            except requests.RequestException as exc:
                reached = may_have_reached(exc)
                metrics.OUTBOUND.labels(api, "timeout" if reached else "network").inc()
                raise _TransientError(WeChatAPIError(api, None, type(exc).__name__), reached=reached) from None
            metrics.OUTBOUND.labels(api, "0").inc()
            return result
        raise WeChatAPIError(api, 40001, "token still rejected after refresh")

    def _token(self, api: str) -> str:
        """The shared token; failing to get one sent nothing, so it is always worth another attempt."""
        try:
            return self.client.access_token
        except WeChatClientException as exc:
            errcode = int(exc.errcode) if exc.errcode is not None else None
            metrics.OUTBOUND.labels(api, str(errcode)).inc()
            error = WeChatAPIError(api, errcode, exc.errmsg)
            if errcode is None or errcode in TRANSIENT_ERRORS:
                raise _TransientError(error) from None
            raise error from None
        except requests.RequestException as exc:
            metrics.OUTBOUND.labels(api, "network").inc()
            raise _TransientError(WeChatAPIError(api, None, type(exc).__name__)) from None
        except SQLAlchemyError as exc:
            metrics.OUTBOUND.labels(api, "token_store").inc()
            log.warning("%s: token store unavailable (%s)", api, type(exc).__name__)
            raise _TransientError(WeChatAPIError(api, None, f"token store: {type(exc).__name__}")) from None

    def _invalidate(self, api: str, token: str) -> None:
        try:
            self.client.invalidate(token)
        except SQLAlchemyError as exc:  # the in-process copy is gone anyway; the row holds a dead token
            log.warning("%s: could not drop the rejected token (%s)", api, type(exc).__name__)

    # -- wrappers -----------------------------------------------------------

    def send_text(self, openid: str, text: str, **policy: bool) -> dict[str, Any]:
        return self.call("message/custom/send", lambda: self.client.message.send_text(openid, text), **policy)

    def send_template_message(
        self, openid: str, template_id: str, data: dict[str, Any], *, url: str | None = None,
        client_msg_id: str | None = None, **policy: bool,
    ) -> dict[str, Any]:
        """A template message posted as WeChat documents it, ``client_msg_id`` included.

        wechatpy's ``send_template`` has no ``client_msg_id``; WeChat dedupes on it
        (for 10 minutes), which is what makes a second attempt after a timeout
        safe. The answer carries ``msgid``, the key of the later
        TEMPLATESENDJOBFINISH receipt.
        """
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        return self.call("message/template/send", lambda: self.client.post("message/template/send", data=body),
                         **policy)

    def widen_pool(self, size: int) -> None:
        """Keep up to ``size`` connections to WeChat alive (requests keeps 10): one per push thread."""
        from requests.adapters import HTTPAdapter

        current = getattr(self, "_pool_size", 10)
        if size <= current:
            return
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size)
        self.client._http.mount("https://", adapter)
        self.client._http.mount("http://", adapter)
        self._pool_size = size

    def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> dict[str, Any]:
        return self.call(
            "message/template/send",
            lambda: self.client.message.send_template(openid, template_id, data, url=url),
        )

    def create_tag(self, name: str) -> int:
        tag = self.call("tags/create", lambda: self.client.tag.create(name))  # wechatpy unwraps "tag"
        return int(tag["id"])

    def tag_users(self, tag_id: int, openids: list[str]) -> None:
        for start in range(0, len(openids), 50):  # WeChat takes at most 50 per call
            batch = openids[start : start + 50]
            self.call("tags/members/batchtagging", lambda b=batch: self.client.tag.tag_user(tag_id, b))

    def untag_users(self, tag_id: int, openids: list[str]) -> None:
        for start in range(0, len(openids), 50):  # WeChat takes at most 50 per call
            batch = openids[start : start + 50]
            self.call("tags/members/batchuntagging", lambda b=batch: self.client.tag.untag_user(tag_id, b))

    def get_tags(self) -> list[dict[str, Any]]:
        """The account's tags (``id``, ``name``, ``count``): finds a tag whose creation answered 45157."""
        return list(self.call("tags/get", lambda: self.client.tag.get()))

    def create_qrcode(self, scene: str, permanent: bool = False, expire_seconds: int = 2592000) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}},
        }
        if not permanent:
            data["expire_seconds"] = expire_seconds
        result = self.call("qrcode/create", lambda: self.client.qrcode.create(data))
        result["image_url"] = self.client.qrcode.get_url(result["ticket"])
        return result

    def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        return self.call("menu/create", lambda: self.client.menu.create(menu))
