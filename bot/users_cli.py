"""Command line for console accounts: ``sisong users add|passwd|list|disable|enable|link|token|tokens|revoke-token``.

The first 镇管理员 can only be made here (there is no one yet to log in and
make it), so every account command works from the server's shell. Passwords
are read with hidden input, or one line from stdin for scripts; they are
never echoed, logged or audited.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from storage.accounts import (
    AccountError,
    check_password_strength,
    create_api_token,
    create_user,
    disable_user,
    enable_user,
    link_cadre,
    list_api_tokens,
    list_users,
    revoke_api_token,
    set_password,
)
from storage.clock import iso_local, local
from storage.models.accounts import ACCOUNT_ROLES

users_app = typer.Typer(help="工作台账号：添加、改密码、查看、停用、关联干部、API 令牌。", no_args_is_help=True)

console = Console(highlight=False, soft_wrap=True, emoji=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

NameArgument = Annotated[str, typer.Argument(help="账号名（登录时用）", show_default=False)]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="从标准输入读一行作为密码（给脚本用）")]


def _db():  # type: ignore[no-untyped-def]
    from knowledge.cli import get_db

    return get_db()


def _township() -> str | None:
    from bot.config import get_settings

    return get_settings().township


def _zone() -> str:
    from bot.config import get_settings

    return get_settings().timezone


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(message, style="red", markup=False)
    return typer.Exit(code)


def _read_password(from_stdin: bool) -> str:
    """One password: a stdin line, or typed twice with hidden input (a typo would lock the cadre out)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt="再输入一次密码")
    try:
        check_password_strength(password)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    return password


@users_app.command("add")
def add(
    name: NameArgument,
    role: Annotated[str, typer.Option("--role", help="角色：" + "、".join(ACCOUNT_ROLES), show_default=False)],
    village: Annotated[Optional[list[str]], typer.Option("--village", help="能看哪个村（可写多次）")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """添加账号（第一个镇管理员也用它建）。"""
    if role not in ACCOUNT_ROLES:
        raise _fail(f"没有「{role}」这个角色，可选：{'、'.join(ACCOUNT_ROLES)}。", 2)
    password = _read_password(password_stdin)
    try:
        user = create_user(_db(), name, password, role, village or [], township=_township())
    except AccountError as exc:
        raise _fail(str(exc)) from None
    scope = "、".join(v.name for v in user.villages)
    console.print(f"已添加账号「{user.name}」（{user.role}）" + (f"，可看：{scope}" if scope else "") + "。",
                  markup=False)


@users_app.command("passwd")
def passwd(name: NameArgument, password_stdin: PasswordStdin = False) -> None:
    """给账号设新密码（已登录的地方会退出）。"""
    password = _read_password(password_stdin)
    try:
        set_password(_db(), name, password)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"「{name}」的密码已更新，请用新密码登录。", markup=False)


@users_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON（给脚本用）")] = False) -> None:
    """列出所有账号。"""
    users = list_users(_db())
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "active": u.active,
            "villages": [v.name for v in u.villages],
            "cadre": u.cadre.name if u.cadre else None,
            "created_at": u.created_at.isoformat(),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "failed_logins": u.failed_logins,
        }
        for u in users
    ]
    if as_json:
        print(json.dumps({"users": rows}, ensure_ascii=False))
        return
    if not rows:
        console.print("还没有账号。先建一个镇管理员：sisong users add 名字 --role 镇管理员", markup=False)
        return
    table = Table(box=box.SIMPLE)
    for column in ("账号", "角色", "状态", "村", "关联干部", "最近登录"):
        table.add_column(column)
    for row, user in zip(rows, users):
        table.add_row(row["name"], row["role"], "正常" if row["active"] else "已停用",
                      "、".join(row["villages"]) or "—", row["cadre"] or "—",
                      local(user.last_login_at, _zone()) or "从未")
    console.print(table)


@users_app.command("disable")
def disable(name: NameArgument) -> None:
    """停用账号：不能再登录，已登录的也立即失效。"""
    try:
        changed = disable_user(_db(), name)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"已停用「{name}」。" if changed else f"「{name}」之前已经停用了。", markup=False)


@users_app.command("token")
def token(
    name: NameArgument,
    label: Annotated[str, typer.Option("--label", help="这个令牌给谁用，比如“导出脚本”")] = "",
) -> None:
    """给脚本发一个 API 令牌（请求头 Authorization: Bearer 令牌）。令牌只显示这一次，请存好。"""
    try:
        issued = create_api_token(_db(), name, label)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    typer.echo(issued)
    console.print(f"已为「{name}」发了一个 API 令牌（上面一行，只显示这一次）。", markup=False)


@users_app.command("enable")
def enable(name: NameArgument) -> None:
    """恢复停用的账号（原来的 API 令牌仍然作废）。"""
    try:
        changed = enable_user(_db(), name)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"已恢复「{name}」，可以登录了。" if changed else f"「{name}」本来就是正常的。", markup=False)


@users_app.command("link")
def link(
    name: NameArgument,
    cadre: Annotated[Optional[str], typer.Option("--cadre", help="干部的姓名、电话或干部码", show_default=False)] = None,
    unlink: Annotated[bool, typer.Option("--none", help="取消关联")] = False,
) -> None:
    """把账号关联到一位干部：帮扶责任人因此能看到这位干部帮扶的户。"""
    if not unlink and not (cadre and cadre.strip()):
        raise _fail("请用 --cadre 写干部的姓名、电话或干部码；取消关联用 --none。", 2)
    try:
        found = link_cadre(_db(), name, None if unlink else cadre, township=_township())
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"已把「{name}」关联到干部「{found.name}」。" if found else f"已取消「{name}」关联的干部。",
                  markup=False)


@users_app.command("tokens")
def tokens(name: NameArgument,
           as_json: Annotated[bool, typer.Option("--json", help="输出 JSON（给脚本用）")] = False) -> None:
    """列出账号的 API 令牌（编号、用途、时间；令牌本身不保存，看不到）。"""
    try:
        found = list_api_tokens(_db(), name)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    zone = _zone()
    if as_json:
        print(json.dumps({"tokens": [
            {"id": t.id, "label": t.label, "created_at": iso_local(t.created_at, zone),
             "last_used_at": iso_local(t.last_used_at, zone), "revoked_at": iso_local(t.revoked_at, zone)}
            for t in found]}, ensure_ascii=False))
        return
    if not found:
        console.print(f"「{name}」没有 API 令牌。", markup=False)
        return
    table = Table(box=box.SIMPLE)
    for column in ("编号", "用途", "发出", "最近使用", "状态"):
        table.add_column(column)
    for t in found:
        table.add_row(str(t.id), t.label or "—", local(t.created_at, zone), local(t.last_used_at, zone) or "没用过",
                      "有效" if t.active else f"{local(t.revoked_at, zone)} 已作废")
    console.print(table)


@users_app.command("revoke-token")
def revoke_token(token_id: Annotated[int, typer.Argument(help="令牌编号（sisong users tokens 名字 可查）",
                                                         show_default=False)]) -> None:
    """作废一个 API 令牌：用它的脚本立即不能再调用。"""
    try:
        revoked = revoke_api_token(_db(), token_id)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"已作废「{revoked.user}」的令牌 {revoked.id}" + (f"（{revoked.label}）" if revoked.label else "")
                  + "。", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
