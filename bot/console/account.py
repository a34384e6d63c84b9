"""我的账号 (own password, own API tokens) and, for 镇管理员, 账号管理 (everyone's accounts).

Pages and API routes here are thin: every change is a ``storage.accounts``
function that the ``sisong users`` commands call too, and that writes its own
audit row in the same transaction.

- ``/console/account``: change one's own password (the old one first; other
  sessions end, this one stays) and see or revoke one's own API tokens.
- ``/console/users``: 镇管理员 add accounts, set role and villages, reset a
  password, disable or enable, and link an account to a cadre (a 帮扶责任人
  then sees the households that cadre helps).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from bot.console.auth import LOGIN_FAILURES
from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep
from bot.console.templating import render
from storage.accounts import (
    ADMIN,
    AccountError,
    NotFound,
    Principal,
    TokenView,
    WrongPassword,
    change_own_password,
    create_api_token,
    create_user,
    disable_user,
    enable_user,
    get_user,
    link_cadre,
    list_api_tokens,
    list_users,
    revoke_api_token,
    set_password,
    update_user,
)
from storage.clock import iso_local
from storage.models.accounts import ACCOUNT_ROLES, User
from storage.org_overview import village_names

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1")

ADMIN_ONLY = "只有镇管理员能管理账号。"
TOO_MANY = "原密码错了太多次，请 10 分钟后再试。"
# Ids are 32-bit in the database: a larger number is simply "not found", never a database error.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Role = Literal["镇管理员", "片区干部", "村干部", "督查", "帮扶责任人"]
assert set(Role.__args__) == set(ACCOUNT_ROLES)  # type: ignore[attr-defined]

# Fixed messages a redirect may ask a page to show (``?ok=…``): nothing the URL carries is echoed.
DONE = {
    "password": "密码已修改。其他地方登录的会退出，这里不用重新登录。",
    "revoked": "令牌已作废，用它的脚本不能再调用了。",
    "created": "账号已添加。",
    "updated": "角色和村已保存。",
    "reset": "密码已重设，请把新密码当面或电话告诉本人；他已登录的地方都会退出。",
    "disabled": "账号已停用，已登录的地方和 API 令牌立即失效。",
    "enabled": "账号已恢复，可以登录了（原来的 API 令牌仍然作废）。",
    "linked": "已关联干部。",
    "unlinked": "已取消关联干部。",
}


def _fail(exc: AccountError) -> HTTPException:
    code = status.HTTP_404_NOT_FOUND if isinstance(exc, NotFound) else status.HTTP_400_BAD_REQUEST
    return HTTPException(code, str(exc))


def _flashes(ok: str) -> list[tuple[str, str]]:
    return [("ok", DONE[ok])] if ok in DONE else []


# -- models -------------------------------------------------------------------------------------

class MessageOut(BaseModel):
    detail: str


class TokenOut(BaseModel):
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool


class TokenIssued(TokenOut):
    token: str = Field(description="令牌本身，只返回这一次，请存好")


class TokenIn(BaseModel):
    label: str = Field("", max_length=64, description="这个令牌给谁用，比如“导出脚本”")


class OwnPasswordIn(BaseModel):
    old_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class MeOut(BaseModel):
    id: int
    name: str
    role: str
    villages: list[str]
    cadre: str | None


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    active: bool
    villages: list[str]
    cadre: str | None = Field(description="关联的干部（帮扶责任人按他帮扶的户看数据）")
    created_at: datetime
    last_login_at: datetime | None


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=32)
    role: Role
    villages: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=200)
    password: str = Field(min_length=8, max_length=256)


class UserUpdate(BaseModel):
    role: Role
    villages: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=200)


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=256)


class CadreIn(BaseModel):
    cadre: str | None = Field(None, max_length=64, description="干部的姓名、电话或干部码；null 表示取消关联")


def _token_out(token: TokenView, zone: str) -> dict[str, object]:
    return {"id": token.id, "label": token.label, "created_at": iso_local(token.created_at, zone),
            "last_used_at": iso_local(token.last_used_at, zone), "revoked_at": iso_local(token.revoked_at, zone),
            "active": token.active}


def _user_out(user: User, zone: str) -> UserOut:
    return UserOut(id=user.id, name=user.name, role=user.role, active=user.active,
                   villages=[v.name for v in user.villages], cadre=user.cadre.name if user.cadre else None,
                   created_at=iso_local(user.created_at, zone), last_login_at=iso_local(user.last_login_at, zone))


# -- my account: API -----------------------------------------------------------------------------

def _change_password(services: ServicesDep, user: Principal, old: str, new: str) -> None:
    """The old password is limited like a login: a stolen session must not be a way to guess it."""
    key = ("console-passwd", "account", str(user.id))
    if not services.limiter.would_allow(LOGIN_FAILURES, *key):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, TOO_MANY)
    try:
        change_own_password(services.db, user, old, new)
    except AccountError as exc:
        if isinstance(exc, WrongPassword):
            services.limiter.allow(LOGIN_FAILURES, *key)
        raise _fail(exc) from None


@api.get("/account", response_model=MeOut, tags=["我的账号"])
def me_api(services: ServicesDep, user: CurrentUser) -> MeOut:
    """当前登录的账号：名字、角色、能看的村、关联的干部。"""
    row = get_user(services.db, user.id)
    return MeOut(id=row.id, name=row.name, role=row.role, villages=[v.name for v in row.villages],
                 cadre=row.cadre.name if row.cadre else None)


@api.post("/account/password", response_model=MessageOut, tags=["我的账号"],
          responses={400: {"description": "原密码不对或新密码太短"}, 429: {"description": "原密码错太多次"}})
def own_password_api(services: ServicesDep, user: ApiCsrf, body: OwnPasswordIn) -> MessageOut:
    """改自己的密码（要先输对原密码）。这个账号在其他地方的登录都会退出。"""
    _change_password(services, user, body.old_password, body.new_password)
    return MessageOut(detail="密码已修改。")


@api.get("/account/tokens", response_model=list[TokenOut], tags=["我的账号"])
def own_tokens_api(services: ServicesDep, user: CurrentUser) -> list[dict[str, object]]:
    """自己的 API 令牌（不含令牌本身，只显示用途和时间），新的在前。"""
    zone = services.settings.timezone
    return [_token_out(t, zone) for t in list_api_tokens(services.db, user.id)]


@api.post("/account/tokens", response_model=TokenIssued, status_code=status.HTTP_201_CREATED, tags=["我的账号"])
def new_token_api(services: ServicesDep, user: ApiCsrf, body: TokenIn) -> dict[str, object]:
    """给自己发一个 API 令牌；令牌只在这次返回。"""
    try:
        token = create_api_token(services.db, user.id, body.label.strip(), actor=user)
    except AccountError as exc:
        raise _fail(exc) from None
    issued = list_api_tokens(services.db, user.id)[0]
    return {**_token_out(issued, services.settings.timezone), "token": token}


@api.delete("/account/tokens/{token_id}", response_model=TokenOut, tags=["我的账号"],
            responses={404: {"description": "没有这个令牌（或不是您的）"}})
def revoke_own_token_api(services: ServicesDep, user: ApiCsrf, token_id: Id) -> dict[str, object]:
    """作废自己的一个 API 令牌。"""
    try:
        token = revoke_api_token(services.db, token_id, owner=user.id, actor=user)
    except AccountError as exc:
        raise _fail(exc) from None
    return _token_out(token, services.settings.timezone)


# -- my account: page ---------------------------------------------------------------------------

def _account_page(request: Request, services: ServicesDep, user: Principal, code: int = 200,
                  flashes: list[tuple[str, str]] | None = None, issued: str | None = None) -> Response:
    return render(request, "account.html", user, code, me=get_user(services.db, user.id),
                  tokens=list_api_tokens(services.db, user.id), flashes=flashes or [], issued=issued)


@pages.get("/account", response_class=HTMLResponse)
def account_page(request: Request, services: ServicesDep, user: PageUser, ok: str = "") -> Response:
    return _account_page(request, services, user, flashes=_flashes(ok))


@pages.post("/account/password", response_class=HTMLResponse)
def account_password(
    request: Request,
    services: ServicesDep,
    user: Csrf,
    old_password: Annotated[str, Form(max_length=256)] = "",
    new_password: Annotated[str, Form(max_length=256)] = "",
    new_password2: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    if new_password != new_password2:
        return _account_page(request, services, user, 400, [("error", "两次输入的新密码不一样，请重新输入。")])
    try:
        _change_password(services, user, old_password, new_password)
    except HTTPException as exc:
        return _account_page(request, services, user, exc.status_code, [("error", str(exc.detail))])
    return RedirectResponse("/console/account?ok=password", status.HTTP_303_SEE_OTHER)


@pages.post("/account/tokens", response_class=HTMLResponse)
def account_new_token(request: Request, services: ServicesDep, user: Csrf,
                      label: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The new token is shown on this response only (nothing else could show it again)."""
    try:
        token = create_api_token(services.db, user.id, label.strip(), actor=user)
    except AccountError as exc:
        return _account_page(request, services, user, 400, [("error", str(exc))])
    return _account_page(request, services, user, flashes=[("ok", "新令牌在下面，只显示这一次，请现在复制保存。")],
                         issued=token)


@pages.post("/account/tokens/{token_id}/revoke")
def account_revoke_token(request: Request, services: ServicesDep, user: Csrf, token_id: Id) -> Response:
    try:
        revoke_api_token(services.db, token_id, owner=user.id, actor=user)
    except AccountError as exc:
        return _account_page(request, services, user, 404, [("error", str(exc))])
    return RedirectResponse("/console/account?ok=revoked", status.HTTP_303_SEE_OTHER)


# -- users admin: API ---------------------------------------------------------------------------

def _api_admin(user: CurrentUser) -> Principal:
    if user.role != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, ADMIN_ONLY)
    return user


def _api_admin_write(user: ApiCsrf) -> Principal:
    return _api_admin(user)


AdminReader = Annotated[Principal, Depends(_api_admin)]
AdminWriter = Annotated[Principal, Depends(_api_admin_write)]
USERS = {"tags": ["账号管理"], "responses": {403: {"description": "只有镇管理员"}}}


@api.get("/users", response_model=list[UserOut], **USERS)  # type: ignore[arg-type]
def users_api(services: ServicesDep, user: AdminReader) -> list[UserOut]:
    """所有账号（不含密码）。"""
    zone = services.settings.timezone
    return [_user_out(u, zone) for u in list_users(services.db)]


@api.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, **USERS)  # type: ignore[arg-type]
def create_user_api(services: ServicesDep, user: AdminWriter, body: UserIn) -> UserOut:
    """添加账号：名字、角色、能看的村（村名）、初始密码（至少 8 位）。"""
    try:
        created = create_user(services.db, body.name, body.password, body.role, body.villages,
                              township=services.settings.township, actor=user)
    except AccountError as exc:
        raise _fail(exc) from None
    return _user_out(get_user(services.db, created.id), services.settings.timezone)


@api.get("/users/{user_id}", response_model=UserOut, **USERS)  # type: ignore[arg-type]
def user_api(services: ServicesDep, user: AdminReader, user_id: Id) -> UserOut:
    try:
        return _user_out(get_user(services.db, user_id), services.settings.timezone)
    except AccountError as exc:
        raise _fail(exc) from None


@api.patch("/users/{user_id}", response_model=UserOut, **USERS)  # type: ignore[arg-type]
def update_user_api(services: ServicesDep, user: AdminWriter, user_id: Id, body: UserUpdate) -> UserOut:
    """改角色和能看的村（村的列表整体替换）。"""
    try:
        update_user(services.db, user_id, body.role, body.villages, township=services.settings.township,
                    actor=user)
        return _user_out(get_user(services.db, user_id), services.settings.timezone)
    except AccountError as exc:
        raise _fail(exc) from None


@api.post("/users/{user_id}/password", response_model=MessageOut, **USERS)  # type: ignore[arg-type]
def reset_password_api(services: ServicesDep, user: AdminWriter, user_id: Id, body: PasswordIn) -> MessageOut:
    """重设某个账号的密码；该账号已登录的地方都会退出。"""
    try:
        set_password(services.db, user_id, body.password, actor=user)
    except AccountError as exc:
        raise _fail(exc) from None
    return MessageOut(detail="密码已重设。")


@api.post("/users/{user_id}/disable", response_model=UserOut, **USERS)  # type: ignore[arg-type]
def disable_user_api(services: ServicesDep, user: AdminWriter, user_id: Id) -> UserOut:
    """停用账号：不能再登录，已登录的和 API 令牌立即失效。不能停用自己，也不能停用唯一的镇管理员。"""
    try:
        disable_user(services.db, user_id, actor=user)
        return _user_out(get_user(services.db, user_id), services.settings.timezone)
    except AccountError as exc:
        raise _fail(exc) from None


@api.post("/users/{user_id}/enable", response_model=UserOut, **USERS)  # type: ignore[arg-type]
def enable_user_api(services: ServicesDep, user: AdminWriter, user_id: Id) -> UserOut:
    """恢复停用的账号（原来的 API 令牌仍然作废）。"""
    try:
        enable_user(services.db, user_id, actor=user)
        return _user_out(get_user(services.db, user_id), services.settings.timezone)
    except AccountError as exc:
        raise _fail(exc) from None


@api.put("/users/{user_id}/cadre", response_model=UserOut, **USERS)  # type: ignore[arg-type]
def link_cadre_api(services: ServicesDep, user: AdminWriter, user_id: Id, body: CadreIn) -> UserOut:
    """把账号关联到一位干部（按姓名、电话或干部码找）；帮扶责任人因此能看他帮扶的户。"""
    try:
        link_cadre(services.db, user_id, body.cadre, township=services.settings.township, actor=user)
        return _user_out(get_user(services.db, user_id), services.settings.timezone)
    except AccountError as exc:
        raise _fail(exc) from None


@api.get("/users/{user_id}/tokens", response_model=list[TokenOut], **USERS)  # type: ignore[arg-type]
def user_tokens_api(services: ServicesDep, user: AdminReader, user_id: Id) -> list[dict[str, object]]:
    try:
        return [_token_out(t, services.settings.timezone) for t in list_api_tokens(services.db, user_id)]
    except AccountError as exc:
        raise _fail(exc) from None


@api.delete("/users/{user_id}/tokens/{token_id}", response_model=TokenOut, **USERS)  # type: ignore[arg-type]
def revoke_user_token_api(services: ServicesDep, user: AdminWriter, user_id: Id, token_id: Id) -> dict[str, object]:
    """作废某个账号的一个 API 令牌。"""
    try:
        token = revoke_api_token(services.db, token_id, owner=user_id, actor=user)
    except AccountError as exc:
        raise _fail(exc) from None
    return _token_out(token, services.settings.timezone)


# -- users admin: pages -------------------------------------------------------------------------

def _page_admin(user: PageUser) -> Principal:
    if user.role != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, ADMIN_ONLY)
    return user


def _page_admin_write(user: Csrf) -> Principal:
    return _page_admin(user)


AdminPage = Annotated[Principal, Depends(_page_admin)]
AdminForm = Annotated[Principal, Depends(_page_admin_write)]


def _users_page(request: Request, services: ServicesDep, user: Principal, code: int = 200,
                flashes: list[tuple[str, str]] | None = None, form: dict[str, object] | None = None) -> Response:
    return render(request, "users.html", user, code, users=list_users(services.db), roles=ACCOUNT_ROLES,
                  villages=village_names(services.db), flashes=flashes or [], form=form or {})


@pages.get("/users", response_class=HTMLResponse)
def users_page(request: Request, services: ServicesDep, user: AdminPage, ok: str = "") -> Response:
    return _users_page(request, services, user, flashes=_flashes(ok))


@pages.post("/users", response_class=HTMLResponse)
def users_add(
    request: Request,
    services: ServicesDep,
    user: AdminForm,
    name: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    villages: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    password: Annotated[str, Form(max_length=256)] = "",
    password2: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    form = {"name": name, "role": role, "villages": villages}
    if password != password2:
        return _users_page(request, services, user, 400, [("error", "两次输入的密码不一样，请重新输入。")], form)
    try:
        created = create_user(services.db, name, password, role, villages, township=services.settings.township,
                              actor=user)
    except AccountError as exc:
        return _users_page(request, services, user, 400, [("error", str(exc))], form)
    return RedirectResponse(f"/console/users/{created.id}?ok=created", status.HTTP_303_SEE_OTHER)


def _user_page(request: Request, services: ServicesDep, user: Principal, user_id: int, code: int = 200,
               flashes: list[tuple[str, str]] | None = None) -> Response:
    try:
        account = get_user(services.db, user_id)
    except AccountError as exc:
        raise _fail(exc) from None
    return render(request, "users_edit.html", user, code, account=account, roles=ACCOUNT_ROLES,
                  villages=village_names(services.db), tokens=list_api_tokens(services.db, user_id),
                  flashes=flashes or [])


@pages.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, services: ServicesDep, user: AdminPage, user_id: Id, ok: str = "") -> Response:
    return _user_page(request, services, user, user_id, flashes=_flashes(ok))


def _done(user_id: int, ok: str) -> Response:
    return RedirectResponse(f"/console/users/{user_id}?ok={ok}", status.HTTP_303_SEE_OTHER)


@pages.post("/users/{user_id}/update", response_class=HTMLResponse)
def user_update(request: Request, services: ServicesDep, user: AdminForm, user_id: Id,
                role: Annotated[str, Form(max_length=16)] = "",
                villages: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    try:
        update_user(services.db, user_id, role, villages, township=services.settings.township, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 400, [("error", str(exc))])
    return _done(user_id, "updated")


@pages.post("/users/{user_id}/password", response_class=HTMLResponse)
def user_password(request: Request, services: ServicesDep, user: AdminForm, user_id: Id,
                  password: Annotated[str, Form(max_length=256)] = "",
                  password2: Annotated[str, Form(max_length=256)] = "") -> Response:
    if password != password2:
        return _user_page(request, services, user, user_id, 400, [("error", "两次输入的密码不一样，请重新输入。")])
    try:
        set_password(services.db, user_id, password, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 400, [("error", str(exc))])
    return _done(user_id, "reset")


@pages.post("/users/{user_id}/disable", response_class=HTMLResponse)
def user_disable(request: Request, services: ServicesDep, user: AdminForm, user_id: Id) -> Response:
    try:
        disable_user(services.db, user_id, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 400, [("error", str(exc))])
    return _done(user_id, "disabled")


@pages.post("/users/{user_id}/enable", response_class=HTMLResponse)
def user_enable(request: Request, services: ServicesDep, user: AdminForm, user_id: Id) -> Response:
    try:
        enable_user(services.db, user_id, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 400, [("error", str(exc))])
    return _done(user_id, "enabled")


@pages.post("/users/{user_id}/cadre", response_class=HTMLResponse)
def user_cadre(request: Request, services: ServicesDep, user: AdminForm, user_id: Id,
               cadre: Annotated[str, Form(max_length=64)] = "") -> Response:
    try:
        found = link_cadre(services.db, user_id, cadre, township=services.settings.township, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 400, [("error", str(exc))])
    return _done(user_id, "linked" if found is not None else "unlinked")


@pages.post("/users/{user_id}/tokens/{token_id}/revoke", response_class=HTMLResponse)
def user_revoke_token(request: Request, services: ServicesDep, user: AdminForm, user_id: Id,
                      token_id: Id) -> Response:
    try:
        revoke_api_token(services.db, token_id, owner=user_id, actor=user)
    except AccountError as exc:
        return _user_page(request, services, user, user_id, 404, [("error", str(exc))])
    return _done(user_id, "revoked")
