"""概览: console pages and /api/v1 routes (issue 8; being built)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bot.console.deps import PageUser
from bot.console.templating import render

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["概览"])


@pages.get("/", response_class=HTMLResponse)
def home(request: Request, user: PageUser) -> Response:
    return render(request, "dashboard.html", user)
