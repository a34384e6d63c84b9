"""``/healthz`` and ``/metrics``: what an operator or a load balancer asks."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bot import metrics
from bot.services import Services

router = APIRouter()


def check(services: Services) -> tuple[int, dict[str, Any]]:
    report: dict[str, Any] = {}
    ok = True
    try:
        services.db.ping()
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"down: {type(exc).__name__}"
        ok = False
    if services.settings.uses_redis:
        try:
            services.state.ping()
            report["redis"] = "ok"
        except Exception as exc:
            report["redis"] = f"down: {type(exc).__name__} (degraded: answering from in-process state)"
            ok = False
    else:
        report["redis"] = "not configured (in-process state)"
    try:
        report["queue"] = {"backend": type(services.queue.huey).__name__, "pending": services.queue.pending()}
    except Exception as exc:
        report["queue"] = f"down: {type(exc).__name__}"
        ok = False
    report["status"] = "ok" if ok else ("down" if report["database"] != "ok" else "degraded")
    return (200 if ok else 503), report


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    status, report = await asyncio.to_thread(check, request.app.state.services)
    return JSONResponse(report, status_code=status)


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
