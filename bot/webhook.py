"""The ``/wechat`` endpoint WeChat calls: URL check (GET) and messages (POST).

Whatever happens inside, WeChat gets a valid reply or ``success`` within the
deadline: an error page would show the follower "该公众号暂时无法提供服务".
Requests that are not from WeChat get a short refusal and cost as little as
possible: the signature and timestamp are checked before the body is read, and
the body read itself is bounded in size and time.

It is a plain ASGI app (:class:`Webhook`), reached before FastAPI's routing and
middleware (:class:`bot.app.SisongApp`): under load those layers took more of
the worker's time than the message itself (issue 13). The console and the API
stay on FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from bot import metrics
from bot.inbound import Rejected, ReplayGuard, check_query, encrypt_reply, read_inbound
from bot.pipeline import SUCCESS, Delivery

log = logging.getLogger(__name__)

PATH = "/wechat"
GRACE_SECONDS = 0.5
# Not an HTTP status anyone receives: nginx's name for "the client went away first", for the metrics.
CLIENT_CLOSED = "499"

_TEXT = b"text/plain; charset=utf-8"
_XML = b"application/xml"


class ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class Webhook:
    """``GET``/``POST /wechat`` as an ASGI app; ``app`` is the FastAPI app whose ``state`` holds the
    services, pipeline and handler threads (set by its lifespan)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method = scope["method"]
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        try:
            if method == "POST":
                status, body, content_type, extra = await self._receive(scope, receive, params)
            elif method in ("GET", "HEAD"):
                status, body, content_type, extra = self._url_check(params)
            else:
                status, body, content_type, extra = (405, b"Method Not Allowed", _TEXT,
                                                     [(b"allow", b"GET, HEAD, POST")])
        except Exception:  # a bug here must not show the follower "该公众号暂时无法提供服务"
            log.exception("webhook failed")
            metrics.REQUESTS.labels(method, "500").inc()
            status, body, content_type, extra = 200, SUCCESS.encode(), _TEXT, []
        if status is None:  # the client went away: nobody to answer
            return
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _url_check(self, params: dict[str, str]) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        settings = self.app.state.services.settings
        try:
            check_query(settings, params)
        except Rejected as exc:
            metrics.REQUESTS.labels("GET", str(exc.status)).inc()
            log.warning("url check refused: %s", exc.reason)
            return exc.status, b"forbidden", _TEXT, []
        metrics.REQUESTS.labels("GET", "200").inc()
        return 200, params.get("echostr", "").encode(), _TEXT, []

    async def _receive(self, scope: dict[str, Any], receive: Any,
                       params: dict[str, str]) -> tuple[int | None, bytes, bytes, list[tuple[bytes, bytes]]]:
        started = time.perf_counter()
        app_state = self.app.state
        services = app_state.services
        settings = services.settings
        body_read = False
        try:
            check_query(settings, params)
            body = await _read_body(scope, receive, settings.max_body_bytes, settings.body_timeout)
            body_read = True
            inbound = read_inbound(settings, params, body)
        except Rejected as exc:
            metrics.REQUESTS.labels("POST", str(exc.status)).inc()
            log.warning("request refused: %s", exc.reason, extra={"status": exc.status})
            # Unread body bytes would otherwise be read and dropped on a kept-alive connection.
            extra = [] if body_read else [(b"connection", b"close")]
            return exc.status, exc.reason.encode(), _TEXT, extra
        except ClientGone:
            metrics.REQUESTS.labels("POST", CLIENT_CLOSED).inc()
            log.info("client went away before sending the whole body")
            return None, b"", b"", []

        delivery = Delivery()
        # The replay check runs in the handler thread (inside the Redis claim when there is one),
        # not in a thread hop of its own: a replayed body then refuses the delivery.
        admission = ReplayGuard(services.state, settings.signature_window).admission(params, body)
        try:
            app_state.executor.submit(app_state.pipeline.process, inbound, delivery, admission)
        except RuntimeError:  # shutting down: let WeChat retry on another worker
            metrics.REQUESTS.labels("POST", "503").inc()
            return 503, b"shutting down", _TEXT, []
        remaining = settings.reply_deadline - (time.perf_counter() - started)
        try:
            reply = await _await_reply(delivery, remaining)
        except Rejected as exc:
            metrics.REQUESTS.labels("POST", str(exc.status)).inc()
            log.warning("request refused: %s", exc.reason, extra={"status": exc.status})
            return exc.status, exc.reason.encode(), _TEXT, []

        if reply != SUCCESS and inbound.encrypted:
            reply = encrypt_reply(settings, reply, inbound.nonce, inbound.timestamp)
        metrics.REQUESTS.labels("POST", "200").inc()
        metrics.LATENCY.observe(time.perf_counter() - started)
        return 200, reply.encode("utf-8"), _TEXT if reply == SUCCESS else _XML, []


async def _read_body(scope: dict[str, Any], receive: Any, limit: int, timeout: float) -> bytes:
    """The body, within ``limit`` bytes and ``timeout`` seconds: a client that trickles
    a byte a second would otherwise hold a connection (and its buffer) for as long as it likes."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise Rejected(413, "body too large")
            break
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise Rejected(413, "body too large")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise Rejected(408, f"body not received within {timeout:g} s ({size} bytes)") from None
    return b"".join(chunks)


async def _await_reply(delivery: Delivery, deadline: float) -> str:
    """The pipeline's reply if it comes in time; else ``success`` and the answer follows as a
    customer-service message (the pipeline sees the webhook has gone and marks it owed)."""
    waiter = asyncio.wrap_future(delivery.future)
    try:
        return await asyncio.wait_for(asyncio.shield(waiter), max(deadline, 0.05))
    except TimeoutError:
        pass
    if delivery.give_up():  # the answer is ready and committing: worth a short wait
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), GRACE_SECONDS)
        except TimeoutError:
            delivery.give_up(final=True)
    if delivery.future.done():  # offered between the timeout and giving up
        return delivery.future.result()
    log.info("deadline passed, answer will follow as a customer-service message")
    return SUCCESS
