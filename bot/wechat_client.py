"""The one outbound WeChat client: shared token, one refresher, bounded retries.

wechatpy does the protocol; what we add is what it gets wrong under several
worker processes: the access token lives in shared state and only one process
refreshes it at a time (a lock), so workers never invalidate each other's
tokens ("40001 … not latest"). Retries are ours (tenacity), never wechatpy's
recursive ``auto_retry``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot import metrics
from bot.config import Settings
from storage.state import StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_ERRORS = {40001, 40014, 42001}
TRANSIENT_ERRORS = {-1, 45009}
# The follower cannot be reached any more: retrying will not help.
UNREACHABLE_ERRORS = {43004: "not_following", 43101: "refused"}


class WeChatAPIError(Exception):
    """A WeChat API call failed for good; ``errcode`` says why."""

    def __init__(self, api: str, errcode: int | None, errmsg: str | None) -> None:
        super().__init__(f"{api}: errcode={errcode} {errmsg or ''}".strip())
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def unreachable_reason(self) -> str | None:
        return UNREACHABLE_ERRORS.get(self.errcode or 0)


class _TransientError(Exception):
    def __init__(self, cause: WeChatAPIError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _TimeoutSession(requests.Session):
    """wechatpy's token fetch passes no timeout; a hung endpoint must not hold the refresh lock."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(*args, **kwargs)


class StateSessionStorage(SessionStorage):
    """wechatpy's session storage on top of our state store (Redis or in-process)."""

    def __init__(self, state: StateStore, prefix: str = "wechatpy:") -> None:
        self.state = state
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.state.get(self.prefix + key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is not None:
            self.state.set(self.prefix + key, json.dumps(value), ttl)

    def delete(self, key: str) -> None:
        self.state.delete(self.prefix + key)

    def delete_if(self, key: str, value: Any) -> bool:
        return self.state.delete_if(self.prefix + key, json.dumps(value))


class SisongWeChatClient(WeChatClient):
    """wechatpy's client pointed at a configurable base, with a locked token refresh."""

    TOKEN_MARGIN = 300  # refresh 5 minutes early: WeChat's own overlap window

    def __init__(self, settings: Settings, state: StateStore) -> None:
        self.storage = StateSessionStorage(state)
        super().__init__(
            settings.wechat_appid,
            settings.wechat_secret,
            session=self.storage,
            timeout=settings.api_timeout,
            auto_retry=False,
        )
        self.API_BASE_URL = settings.wechat_api_base
        self._http = _TimeoutSession(settings.api_timeout)
        self._state = state

    def fetch_access_token(self) -> dict[str, Any]:
        if not self.secret:  # 41004 is WeChat's own "appsecret missing": permanent
            raise WeChatAPIError("token", 41004, "SISONG_WECHAT_SECRET is not set")
        metrics.TOKEN_FETCHES.inc()
        log.info("fetching access token")
        return self._fetch_access_token(  # type: ignore[no-any-return]
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )

    def _fresh_token(self) -> str | None:
        token = self.session.get(self.access_token_key)
        expires_at = self.expires_at
        if token and expires_at and expires_at - time.time() > self.TOKEN_MARGIN:
            return token  # type: ignore[no-any-return]
        return None

    @property
    def access_token(self) -> str:  # type: ignore[override]
        token = self._fresh_token()
        if token:
            return token
        with self._state.lock("wechat-token:" + self.appid, timeout=30, wait=20):
            token = self._fresh_token()  # another process may have refreshed meanwhile
            if token:
                return token
            self.fetch_access_token()
            return self.session.get(self.access_token_key)  # type: ignore[no-any-return]

    def invalidate(self, token: str) -> None:
        """Forget ``token`` unless another process already replaced it."""
        if self.storage.delete_if(self.access_token_key, token):
            self.storage.delete(self.access_token_expires_at_key)


class WeChatAPI:
    """Thin, tested wrappers over the calls Sisong makes, with our retry policy."""

    def __init__(self, settings: Settings, state: StateStore) -> None:
        self.settings = settings
        self.client = SisongWeChatClient(settings, state)

    # -- the retry policy ---------------------------------------------------

    def call(self, api: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with one token refresh on 40001/42001 and backoff on busy/quota."""
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, _TransientError)),
            wait=wait_exponential(multiplier=self.settings.api_retry_wait, max=30),
            stop=stop_after_attempt(self.settings.api_retry_attempts),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._call_with_token_refresh(api, fn)
        except _TransientError as exc:
            raise exc.cause from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_with_token_refresh(self, api: str, fn: Callable[[], T]) -> T:
        for refreshed in (False, True):
            token = None
            try:
                token = self.client.access_token
                result = fn()
            except WeChatClientException as exc:
                errcode = int(exc.errcode) if exc.errcode is not None else None
                metrics.OUTBOUND.labels(api, str(errcode)).inc()
                error = WeChatAPIError(api, errcode, exc.errmsg)
                if errcode in TOKEN_ERRORS and token is not None and not refreshed:
                    log.warning("%s: token rejected (%s), refreshing once", api, errcode)
                    self.client.invalidate(token)
                    continue
                if errcode is None or errcode in TRANSIENT_ERRORS:
                    raise _TransientError(error) from None
                raise error from None
            except requests.RequestException as exc:
                metrics.OUTBOUND.labels(api, "network").inc()
                raise _TransientError(WeChatAPIError(api, None, type(exc).__name__)) from None
            metrics.OUTBOUND.labels(api, "0").inc()
            return result
        raise WeChatAPIError(api, 40001, "token still rejected after refresh")

    # -- wrappers -----------------------------------------------------------

    def send_text(self, openid: str, text: str) -> dict[str, Any]:
        return self.call("message/custom/send", lambda: self.client.message.send_text(openid, text))

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
