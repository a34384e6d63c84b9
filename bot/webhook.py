"""The ``/wechat`` endpoint WeChat calls: URL check (GET) and messages (POST).

Whatever happens inside, WeChat gets a valid reply or ``success`` within the
deadline: an error page would show the follower "该公众号暂时无法提供服务".
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from bot import metrics
from bot.inbound import Rejected, encrypt_reply, read_inbound, verify_signature
from bot.pipeline import SUCCESS, Delivery

log = logging.getLogger(__name__)
router = APIRouter()

GRACE_SECONDS = 0.5


@router.get("/wechat")
async def url_check(request: Request) -> Response:
    settings = request.app.state.services.settings
    params = dict(request.query_params)
    try:
        verify_signature(settings.wechat_token, params)
    except Rejected as exc:
        metrics.REQUESTS.labels("GET", str(exc.status)).inc()
        log.warning("url check refused: %s", exc.reason)
        return PlainTextResponse("forbidden", status_code=exc.status)
    metrics.REQUESTS.labels("GET", "200").inc()
    return PlainTextResponse(params.get("echostr", ""))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/wechat")
async def receive(request: Request) -> Response:
    started = time.perf_counter()
    app_state = request.app.state
    services = app_state.services
    settings = services.settings
    try:
        body = await _read_body(request, settings.max_body_bytes)
        inbound = read_inbound(settings, dict(request.query_params), body)
    except Rejected as exc:
        metrics.REQUESTS.labels("POST", str(exc.status)).inc()
        log.warning("request refused: %s", exc.reason, extra={"status": exc.status})
        return PlainTextResponse(exc.reason, status_code=exc.status)

    delivery = Delivery()
    try:
        app_state.executor.submit(app_state.pipeline.process, inbound, delivery)
    except RuntimeError:  # shutting down: let WeChat retry on another worker
        metrics.REQUESTS.labels("POST", "503").inc()
        return PlainTextResponse("shutting down", status_code=503)
    remaining = settings.reply_deadline - (time.perf_counter() - started)
    reply = await _await_reply(delivery, remaining)

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
