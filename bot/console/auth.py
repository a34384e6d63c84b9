"""Console login and logout, for browsers (form + cookie) and scripts (access token).

Browsers carry a session cookie (HttpOnly, SameSite=Lax, Secure on https);
scripts send ``Authorization: Bearer <token>``. The login form carries a
double-submit CSRF token (a random cookie the hidden field must match, since
there is no session yet); every later form the session's own token. Failed
logins are limited per account and per client address, so guessing a password
is slow both for one account and from one machine.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from bot.console.deps import SESSION_COOKIE, Csrf, ServicesDep, optional_user
from bot.console.templating import render
from storage.accounts import IDLE, Principal, authenticate, new_session, revoke

CSRF_COOKIE = "sisong_csrf"
# Failed logins allowed per account and per client address before refusing for a while.
LOGIN_FAILURES = "5/10 minutes"
TOO_MANY = "登录失败次数太多，请 10 分钟后再试。忘记密码请找镇管理员重设。"

router = APIRouter(prefix="/console", include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["登录"])


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


class LoginRefused(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def check_login(services: ServicesDep, request: Request, name: str, password: str) -> Principal:
    """The one login rule for pages and the API: limits first, then the password, failures counted."""
    name = name.strip()
    client = _client(request)
    keys = (("console-login", "account", name), ("console-login", "client", client))
    if not all(services.limiter.would_allow(LOGIN_FAILURES, *key) for key in keys):
        raise LoginRefused(status.HTTP_429_TOO_MANY_REQUESTS, TOO_MANY)
    user = authenticate(services.db, name, password, client=client)
    if user is None:
        for key in keys:
            services.limiter.allow(LOGIN_FAILURES, *key)
        raise LoginRefused(status.HTTP_401_UNAUTHORIZED, "账号或密码不对，请再试一次。")
    return user


def _safe_next(target: str) -> str:
    """Only our own console pages, so a crafted link cannot send a cadre elsewhere after login."""
    return target if target.startswith("/console/") and not target.startswith("//") and "\\" not in target \
        else "/console/"


def _login_page(request: Request, message: str = "", name: str = "", code: int = 200,
                next_url: str = "/console/") -> Response:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", None, code, csrf=token, message=message, name=name,
                      next=_safe_next(next_url))
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request),
                        path="/console")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/console/") -> Response:
    if optional_user(request) is not None:
        return RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    return _login_page(request, next_url=next)


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console/",
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not csrf or not hmac.compare_digest(cookie, csrf):
        return _login_page(request, "页面已过期，请重新输入后再登录。", name, status.HTTP_403_FORBIDDEN, next)
    try:
        user = check_login(services, request, name, password)
    except LoginRefused as refused:
        return _login_page(request, refused.message, name, refused.status_code, next)
    token = new_session(services.db, user, client=_client(request))
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(IDLE.total_seconds()), httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    response.delete_cookie(CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, services: ServicesDep, user: Csrf) -> Response:
    revoke(services.db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/console/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"


@api_router.post("/login/access-token", response_model=AccessToken,
                 responses={401: {"description": "账号或密码不对"}, 429: {"description": "失败次数太多"}})
def login_access_token(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> AccessToken:
    """脚本登录：表单字段 username、password；返回的 access_token 放在 `Authorization: Bearer …` 里。

    令牌 12 小时不用就失效（和网页登录一样）；长期用的脚本请用 `sisong users token` 生成 API 令牌。
    """
    try:
        user = check_login(services, request, username, password)
    except LoginRefused as refused:
        raise HTTPException(refused.status_code, refused.message,
                            headers={"WWW-Authenticate": "Bearer"}) from None
    return AccessToken(access_token=new_session(services.db, user, client=_client(request)))
