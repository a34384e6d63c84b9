"""The FastAPI application: wiring services, routes and the embedded queue consumer."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import bot.knowledge_host  # noqa: F401 - the knowledge commands' host (the console calls them)
from bot import console, health, webhook
from bot.config import get_settings
from bot.logs import setup_logging
from bot.pipeline import Pipeline
from bot.services import Services, build_services, check_schema
from bot.sweeper import Sweeper

log = logging.getLogger(__name__)


def warm_up(pipeline: Pipeline) -> None:
    """Load what the first messages would otherwise load (segmenter, handbook index, routing).

    Without it the first burst after a start waited 3-4 s, at WeChat's deadline.
    Handlers can offer a ``warm_up(services)`` in ``handlers.WARM_UP``.
    """
    import handlers

    for warm in handlers.WARM_UP:
        try:
            warm(pipeline.services)
        except Exception:  # a cold cache is slower, not broken
            log.exception("warm-up step failed")


class SisongApp(FastAPI):
    """FastAPI, with ``/wechat`` answered before its routing and middleware (``bot.webhook.Webhook``):
    every WeChat message goes there, and those layers had cost more than the message itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook.Webhook(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in (webhook.PATH, webhook.PATH + "/"):
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(services: Services | None = None) -> FastAPI:
    """Build the app; tests pass their own services, ``sisong serve`` builds them from settings."""
    owns_services = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal services
        if services is None:
            settings = get_settings()
            setup_logging(settings.log_level, settings.log_json)
            services = build_services(settings)
        check_schema(services)
        import handlers  # noqa: F401  (registers every handler on the router)
        from bot.router import router

        app.state.services = services
        app.state.pipeline = pipeline = Pipeline(services, router)
        # Few threads: handlers are short, and more threads only fight over the GIL.
        app.state.executor = ThreadPoolExecutor(
            max_workers=services.settings.handler_threads, thread_name_prefix="sisong-handler"
        )
        for startup in handlers.STARTUP:
            startup(services)
        warm_up(pipeline)
        # What is loaded now (modules, the handbook's index, the word dictionary) lives as long as
        # the worker: out of the collector's sight, a full collection no longer walks it mid-load.
        # Once a process: an app started again in it (tests) must not freeze its predecessors' garbage.
        if gc.get_freeze_count() == 0:
            gc.collect()
            gc.freeze()
        if services.settings.run_embedded_worker:
            services.queue.start_embedded()
            log.info("embedded queue consumer started")
        sweeper = Sweeper(services, pipeline)
        sweeper.start()
        flusher = None
        if services.redis_inbox is not None:
            from bot.flusher import LogFlusher

            flusher = LogFlusher(services, services.redis_inbox, services.settings.log_flush_interval)
            flusher.start()
        app.state.flusher = flusher
        try:
            yield
        finally:
            # Let in-flight messages finish: WeChat may already have been told "success".
            sweeper.stop()
            app.state.executor.shutdown(wait=True)
            if flusher is not None:  # after the last message settled: nothing of ours stays in Redis
                flusher.stop()
            services.queue.stop_embedded()
            if owns_services:
                services.close()

    app = SisongApp(title="Sisong 四送助手", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="工作台接口：先 POST /api/v1/login/access-token 取令牌，再带 Authorization: Bearer … 调用。")
    app.include_router(health.router)
    console.install(app)
    return app
