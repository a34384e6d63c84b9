"""``/healthz`` and ``/metrics``: what an operator or a load balancer asks.

``/healthz`` answers within a second whatever hangs: each check is bounded and
a dependency whose breaker is open is reported without being asked again.
Status 200 means "WeChat is being answered": ``ok``, or ``degraded`` with the
reasons (Redis down: in-process state; queue down: sends run in threads;
messages waiting in the spool). 503 (``down``) only when households get
"系统繁忙" instead of answers, i.e. the database cannot be used, so a load
balancer never takes every node out because Redis failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bot import metrics
from bot.services import Services
from storage.db import bounded

router = APIRouter(include_in_schema=False)

HEALTH_BUDGET = 1.0  # seconds for the whole check
_PING_BUDGET = 0.8


# Rows in the write-behind log above which /healthz says degraded (a flusher writes 500 per pass).
LOG_BACKLOG_WARN = 5000


def check(services: Services) -> tuple[int, dict[str, Any]]:
    report: dict[str, Any] = {}
    reasons: list[str] = []
    db = services.db
    database_ok = False
    if not db.breaker.allow():
        report["database"] = f"down: {db.breaker.last_error or 'not answering'}"
    else:
        try:
            with bounded(min(db.timeout, _PING_BUDGET)):
                db.ping()
            report["database"] = "ok"
            database_ok = True
        except Exception as exc:
            db.breaker.trip(exc)
            report["database"] = f"down: {type(exc).__name__}"
    if not database_ok:
        reasons.append("database unavailable: households get 系统繁忙, messages are spooled")

    breaker = services.redis_breaker
    if breaker is None:
        report["redis"] = "not configured (in-process state)"
    elif not breaker.allow():
        report["redis"] = f"down: {breaker.last_error or 'not answering'}"
    else:
        try:
            services.state.ping()
            report["redis"] = "ok"
        except Exception as exc:
            report["redis"] = f"down: {type(exc).__name__}"
    if report["redis"].startswith("down"):
        reasons.append("redis unavailable: answering from in-process state")

    queue: dict[str, Any] = {"backend": type(services.queue.huey).__name__}
    if breaker is not None and not breaker.allow():
        queue["pending"] = None
        reasons.append("queue unavailable: sends run in threads")
    else:
        try:
            queue["pending"] = services.queue.pending()
        except Exception as exc:
            if breaker is not None:
                breaker.trip(exc)
            queue["pending"] = None
            reasons.append(f"queue unavailable ({type(exc).__name__}): sends run in threads")
    report["queue"] = queue

    if services.redis_inbox is not None and report["redis"] == "ok":
        # The write-behind log: rows waiting for the database. Thousands means the flusher cannot keep up
        # or the database refuses them (records it refused for good wait in the Redis list in:dead).
        try:
            backlog = services.redis_inbox.backlog()
            report["log_backlog"] = backlog
            if backlog >= LOG_BACKLOG_WARN:
                reasons.append(f"{backlog} message-log rows waiting to be written")
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            report["log_backlog"] = None
            reasons.append(f"message-log backlog unknown ({type(exc).__name__})")

    spooled = services.spool.pending()
    report["spool"] = spooled
    if spooled and database_ok:
        reasons.append(f"{spooled} spool file(s) waiting to be replayed")

    if not database_ok:
        report["status"] = "down"
    else:
        report["status"] = "degraded" if reasons else "ok"
    if reasons:
        report["reasons"] = reasons
    return (503 if report["status"] == "down" else 200), report


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    services = request.app.state.services
    try:
        status, report = await asyncio.wait_for(asyncio.to_thread(check, services), HEALTH_BUDGET)
    except TimeoutError:
        status, report = 200, {"status": "degraded", "reasons": ["health check timed out"]}
    return JSONResponse(report, status_code=status)


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
