"""工作台: the cadres' web console under /console and its REST API under /api/v1.

One module per resource (dashboard, unanswered, handbook, households, jobs,
surveys, org, audit, account), each with a ``pages`` router (server-rendered HTML) and an
``api`` router (JSON). Both call the same service functions in storage/ and
knowledge/, which enforce the account's scope (``storage.scope``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bot.console import account, audit, auth, dashboard, errors, handbook, households, jobs, org, surveys, unanswered
from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep, Writer, current_user, require_role

RESOURCES = (dashboard, unanswered, handbook, households, jobs, surveys, org, audit, account)


def install(app: FastAPI) -> None:
    """Mount the console's static files, pages, API routes and error handlers on the app."""
    errors.install(app)
    app.mount("/console/static", StaticFiles(directory=str(Path(__file__).with_name("static"))),
              name="console-static")
    app.include_router(auth.router)
    app.include_router(auth.api_router)
    for module in RESOURCES:
        app.include_router(module.pages)
        app.include_router(module.api)


__all__ = ["ApiCsrf", "Csrf", "CurrentUser", "PageUser", "ServicesDep", "Writer", "current_user", "install",
           "require_role"]
