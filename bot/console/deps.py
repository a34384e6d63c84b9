"""Dependencies every console page and API route takes, passed as typed ``Annotated`` parameters.

- ``ServicesDep``: the process's services (database, WeChat client, limiter...).
- ``CurrentUser``: the caller's account (API token, API access token or session cookie), else 401.
- ``PageUser``: the same for HTML pages, which send the browser to the login page instead of a 401.
- ``Csrf`` / ``ApiCsrf``: refuse a state-changing request that did not come from our own page.
  A form carries the session's token in a hidden ``csrf`` field; a script calling the API with
  a cookie sends it as ``X-CSRF-Token``. A request authenticated by a Bearer token carries no
  ambient credential a foreign page could borrow, so it needs none.
- ``Writer``: refuse read-only accounts (督查) before the service function would.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Callable

from fastapi import Depends, Form, HTTPException, Request, status

from storage.accounts import Principal, load_api_token, load_session
from storage.scope import ReadOnly

if TYPE_CHECKING:
    from bot.services import Services

SESSION_COOKIE = "sisong_session"


def get_services(request: Request) -> "Services":
    return request.app.state.services


ServicesDep = Annotated["Services", Depends(get_services)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_user(request: Request) -> Principal | None:
    """The caller's account from a Bearer token or the session cookie, or None.

    A Bearer value is either a long-lived API token (``sst_…``, ``sisong users token``)
    or an access token from ``POST /api/v1/login/access-token`` (a session that
    expires like a browser's). ``request.state.bearer`` tells the CSRF check which.
    """
    db = get_services(request).db
    token = _bearer(request)
    request.state.bearer = token is not None
    if token is not None:
        return load_api_token(db, token) or load_session(db, token)
    return load_session(db, request.cookies.get(SESSION_COOKIE))


def current_user(user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "请先登录。", headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]


class LoginRequired(Exception):
    """A page was asked for without a session; the app sends the browser to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def page_user(request: Request, user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


PageUser = Annotated[Principal, Depends(page_user)]


def _same(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def form_csrf(user: PageUser, csrf: Annotated[str, Form()] = "") -> Principal:
    """For pages' POST forms: the hidden field must be this session's token."""
    if not _same(user.csrf, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "页面已过期，请刷新后再试。")
    return user


Csrf = Annotated[Principal, Depends(form_csrf)]


def api_csrf(request: Request, user: CurrentUser) -> Principal:
    """For the API's state-changing routes: Bearer callers pass; cookie callers send X-CSRF-Token."""
    if getattr(request.state, "bearer", False):
        return user
    if not _same(user.csrf, request.headers.get("x-csrf-token")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "缺少或错误的 X-CSRF-Token（用浏览器会话调用接口时需要）。")
    return user


ApiCsrf = Annotated[Principal, Depends(api_csrf)]


def require_role(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets only these roles through (403 with a kind word otherwise)."""

    def check(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "您的账号没有这个权限，如需要请找镇管理员。")
        return user

    return check


def writer(user: CurrentUser) -> Principal:
    if not user.scope.writable:
        raise ReadOnly()
    return user


Writer = Annotated[Principal, Depends(writer)]


def case_assigner(user: CurrentUser) -> Principal:
    """Who may hand out a survey's cases: those who may write, and the supervisors (督查)."""
    if not user.scope.assigns_cases:
        raise ReadOnly()
    return user


CaseAssigner = Annotated[Principal, Depends(case_assigner)]
