"""Console login, logout and the access dependencies the console's API routes use.

Browsers carry a session cookie (HttpOnly, SameSite=Lax, Secure on https);
scripts send ``Authorization: Bearer <API token>``. Forms carry a CSRF token:
the login form a double-submit token (a random cookie the hidden field must
match, since there is no session yet), every later form the session's own
token. Failed logins are limited per account and per client address, so
guessing a password is slow both for one account and from one machine.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from storage.accounts import (
    IDLE,
    Principal,
    authenticate,
    load_api_token,
    load_session,
    new_session,
    revoke,
)

SESSION_COOKIE = "sisong_session"
CSRF_COOKIE = "sisong_csrf"
# Failed logins allowed per account and per client address before refusing for a while.
LOGIN_FAILURES = "5/10 minutes"

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _services(request: Request) -> Any:
    return request.app.state.services


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_user(request: Request) -> Principal | None:
    """The caller's account from a Bearer token or the session cookie, or None."""
    db = _services(request).db
    token = _bearer(request)
    if token is not None:
        return load_api_token(db, token)
    return load_session(db, request.cookies.get(SESSION_COOKIE))


def current_user(user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "请先登录。", headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_role(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets only these roles through (403 with a kind word otherwise)."""

    def check(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "您的账号没有这个权限，如需要请找镇管理员。")
        return user

    return check


def _login_page(request: Request, message: str = "", name: str = "", code: int = 200) -> Response:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = templates.TemplateResponse(request, "login.html", {"csrf": token, "message": message, "name": name},
                                          status_code=code)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request),
                        path="/console")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    if optional_user(request) is not None:
        return RedirectResponse("/console/", status.HTTP_303_SEE_OTHER)
    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not csrf or not hmac.compare_digest(cookie, csrf):
        return _login_page(request, "页面已过期，请重新输入后再登录。", name, status.HTTP_403_FORBIDDEN)
    services = _services(request)
    name = name.strip()
    client = _client(request)
    keys = (("console-login", "account", name), ("console-login", "client", client))
    if not all(services.limiter.would_allow(LOGIN_FAILURES, *key) for key in keys):
        return _login_page(request, "登录失败次数太多，请 10 分钟后再试。忘记密码请找镇管理员重设。", name,
                           status.HTTP_429_TOO_MANY_REQUESTS)
    user = authenticate(services.db, name, password, client=client)
    if user is None:
        for key in keys:
            services.limiter.allow(LOGIN_FAILURES, *key)
        return _login_page(request, "账号或密码不对，请再试一次。", name, status.HTTP_401_UNAUTHORIZED)
    token = new_session(services.db, user, client=client)
    response = RedirectResponse("/console/", status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(IDLE.total_seconds()), httponly=True, samesite="lax",
                        secure=_secure(request), path="/console")
    response.delete_cookie(CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, user: CurrentUser, csrf: Annotated[str, Form()] = "") -> Response:
    if not user.csrf or not hmac.compare_digest(user.csrf, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "页面已过期，请刷新后再试。")
    revoke(_services(request).db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/console/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    user = optional_user(request)
    if user is None:
        return RedirectResponse("/console/login", status.HTTP_303_SEE_OTHER)
    return templates.TemplateResponse(request, "home.html", {"user": user})
