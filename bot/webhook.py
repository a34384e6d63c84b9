"""The ``/wechat`` endpoint WeChat calls: URL check (GET) and messages (POST).

Whatever happens inside, WeChat gets a valid reply or ``success`` within the
deadline: an error page would show the follower "该公众号暂时无法提供服务".
Requests that are not from WeChat get a short refusal and cost as little as
possible: the signature and timestamp are checked before the body is read, and
the body read itself is bounded in size and time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.requests import ClientDisconnect

from bot import metrics
from bot.inbound import Rejected, ReplayGuard, check_query, encrypt_reply, read_inbound
from bot.pipeline import SUCCESS, Delivery

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

GRACE_SECONDS = 0.5
# Not an HTTP status anyone receives: nginx's name for "the client went away first", for the metrics.
CLIENT_CLOSED = "499"


@router.get("/wechat")
async def url_check(request: Request) -> Response:
    settings = request.app.state.services.settings
    params = dict(request.query_params)
    try:
        check_query(settings, params)
    except Rejected as exc:
        metrics.REQUESTS.labels("GET", str(exc.status)).inc()
        log.warning("url check refused: %s", exc.reason)
        return PlainTextResponse("forbidden", status_code=exc.status)
    metrics.REQUESTS.labels("GET", "200").inc()
    return PlainTextResponse(params.get("echostr", ""))


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, within ``limit`` bytes and ``timeout`` seconds: a client that trickles
    a byte a second would otherwise hold a connection (and its buffer) for as long as it likes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Rejected(413, "body too large")
                chunks.append(chunk)
    except TimeoutError:
        raise Rejected(408, f"body not received within {timeout:g} s ({size} bytes)") from None
    return b"".join(chunks)


@router.post("/wechat")
async def receive(request: Request) -> Response:
    started = time.perf_counter()
    app_state = request.app.state
    services = app_state.services
    settings = services.settings
    params = dict(request.query_params)
    body_read = False
    try:
        check_query(settings, params)
        body = await _read_body(request, settings.max_body_bytes, settings.body_timeout)
        body_read = True
        inbound = read_inbound(settings, params, body)
    except Rejected as exc:
        metrics.REQUESTS.labels("POST", str(exc.status)).inc()
        log.warning("request refused: %s", exc.reason, extra={"status": exc.status})
        # Unread body bytes would otherwise be read and dropped on a kept-alive connection.
        headers = None if body_read else {"Connection": "close"}
        return PlainTextResponse(exc.reason, status_code=exc.status, headers=headers)
    except ClientDisconnect:
        metrics.REQUESTS.labels("POST", CLIENT_CLOSED).inc()
        log.info("client went away before sending the whole body")
        return Response(status_code=int(CLIENT_CLOSED))

    delivery = Delivery()
    # The replay check runs in the handler thread (inside the Redis claim when there is one),
    # not in a thread hop of its own: a replayed body then refuses the delivery.
    admission = ReplayGuard(services.state, settings.signature_window).admission(params, body)
    try:
        app_state.executor.submit(app_state.pipeline.process, inbound, delivery, admission)
    except RuntimeError:  # shutting down: let WeChat retry on another worker
        metrics.REQUESTS.labels("POST", "503").inc()
        return PlainTextResponse("shutting down", status_code=503)
    remaining = settings.reply_deadline - (time.perf_counter() - started)
    try:
        reply = await _await_reply(delivery, remaining)
    except Rejected as exc:
        metrics.REQUESTS.labels("POST", str(exc.status)).inc()
        log.warning("request refused: %s", exc.reason, extra={"status": exc.status})
        return PlainTextResponse(exc.reason, status_code=exc.status)

    if reply != SUCCESS and inbound.encrypted:
        reply = encrypt_reply(settings, reply, inbound.nonce, inbound.timestamp)
    metrics.REQUESTS.labels("POST", "200").inc()
    metrics.LATENCY.observe(time.perf_counter() - started)
    media = "text/plain" if reply == SUCCESS else "application/xml"
    return Response(reply, media_type=media)


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
