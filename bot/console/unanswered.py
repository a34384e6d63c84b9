"""待答问题: console pages and /api/v1 routes (issue 8; being built)."""

from __future__ import annotations

from fastapi import APIRouter

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["待答问题"])
