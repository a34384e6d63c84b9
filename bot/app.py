"""The FastAPI application: wiring services, routes and the embedded queue consumer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import health, webhook
from bot.config import get_settings
from bot.logs import setup_logging
from bot.pipeline import Pipeline
from bot.services import Services, build_services, check_schema

log = logging.getLogger(__name__)


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
        app.state.pipeline = Pipeline(services, router)
        # Few threads: handlers are short, and more threads only fight over the GIL.
        app.state.executor = ThreadPoolExecutor(
            max_workers=services.settings.handler_threads, thread_name_prefix="sisong-handler"
        )
        for startup in handlers.STARTUP:
            startup(services)
        if services.settings.run_embedded_worker:
            services.queue.start_embedded()
            log.info("embedded queue consumer started")
        try:
            yield
        finally:
            # Let in-flight messages finish: WeChat may already have been told "success".
            app.state.executor.shutdown(wait=True)
            services.queue.stop_embedded()
            if owns_services:
                services.close()

    app = FastAPI(title="Sisong 四送助手", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(webhook.router)
    app.include_router(health.router)
    return app
