"""Errors as cadres and scripts should see them: Chinese, short, never a traceback.

Under ``/api/`` every error is JSON ``{"detail": "<中文>"}`` (validation errors add
``errors`` with the field names); console pages get the same words on a page
with a way back. Domain errors that mean "not yours" (``OutOfScope``) or
"read-only account" (``ReadOnly``) become 403 wherever they are raised, so a
service function's check needs no translation in each route.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.console.deps import LoginRequired, optional_user
from bot.console.templating import render
from storage.scope import OutOfScope, ReadOnly

log = logging.getLogger(__name__)

_DEFAULT = {
    400: "请求有误，请检查后再试。",
    401: "请先登录。",
    403: "您的账号没有这个权限。",
    404: "没有找到。",
    405: "不支持这个操作。",
    413: "文件太大了。",
    422: "填写的内容不对，请检查后再试。",
    429: "操作太频繁，请稍后再试。",
    500: "系统出错了，请稍后再试；一直这样请告诉镇管理员。",
}

_FIELD_ERRORS = {
    "missing": "必须填写",
    "int_parsing": "应当是整数",
    "int_type": "应当是整数",
    "string_type": "应当是文字",
    "string_too_long": "太长了",
    "string_too_short": "太短了",
    "greater_than_equal": "太小了",
    "less_than_equal": "太大了",
    "greater_than": "太小了",
    "less_than": "太大了",
    "bool_parsing": "应当是 true 或 false",
    "json_invalid": "不是有效的 JSON",
    "model_attributes_type": "格式不对",
    "dict_type": "应当是 JSON 对象",
    "list_type": "应当是列表",
    "literal_error": "不是可选的值",
    "enum": "不是可选的值",
    "value_error": "格式不对",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _is_console(request: Request) -> bool:
    return request.url.path.startswith("/console")


def _page(request: Request, code: int, message: str) -> Response:
    try:
        user = optional_user(request)
    except Exception:  # noqa: BLE001 - an error page must render even when the database is down
        user = None
    return render(request, "error.html", user, code, message=message, code=code)


def _respond(request: Request, code: int, message: str, headers: dict[str, str] | None = None,
             **extra: object) -> Response:
    if _is_console(request) and not _is_api(request):
        response = _page(request, code, message)
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response
    return JSONResponse({"detail": message, **extra}, status_code=code, headers=headers)


def describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "form")]
        field = ".".join(location) or "请求"
        errors.append({"field": field, "message": _FIELD_ERRORS.get(str(error.get("type")), "格式不对")})
    summary = "；".join(f"{e['field']}：{e['message']}" for e in errors[:5])
    return f"填写的内容不对：{summary}。" if summary else _DEFAULT[422], errors


def install(app: FastAPI) -> None:
    """Register the handlers on the app (pages and API share them)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) and not exc.detail.isascii() else None
        message = detail or _DEFAULT.get(exc.status_code, "请求没有完成。")
        if exc.status_code == 401 and _is_console(request) and not _is_api(request):
            return RedirectResponse("/console/login", status.HTTP_303_SEE_OTHER)
        return _respond(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, errors = describe_validation(exc)
        if _is_console(request) and not _is_api(request):
            return _page(request, 422, message)
        return JSONResponse(jsonable_encoder({"detail": message, "errors": errors}), status_code=422)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"/console/login?next={quote(exc.next_url)}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(OutOfScope)
    @app.exception_handler(ReadOnly)
    async def forbidden(request: Request, exc: PermissionError) -> Response:
        return _respond(request, status.HTTP_403_FORBIDDEN, str(exc))

    @app.exception_handler(DataError)
    async def bad_data(request: Request, exc: DataError) -> Response:
        # PostgreSQL refuses what SQLite takes (a NUL character, a number past 32 bits): the input was bad.
        log.info("database refused a value on %s: %s", request.url.path, type(exc.orig).__name__)
        return _respond(request, 400, "填写的内容有不支持的字符，或数字太大了，请检查后再试。")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if not (_is_api(request) or _is_console(request)):
            return PlainTextResponse("Internal Server Error", status_code=500)
        log.exception("console/API error on %s", request.url.path)
        return _respond(request, 500, _DEFAULT[500])


__all__ = ["HTTPException", "install", "describe_validation"]
