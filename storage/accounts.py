"""Console accounts: passwords, sessions, API tokens, village scope and the audit log.

Every function that changes something writes an audit row in the same
transaction, so a change without its row cannot happen. Passwords are hashed
with argon2 (pwdlib) and never logged, audited or returned; session and API
tokens are random and stored only as SHA-256 hashes (they are long enough
that a slow hash would add nothing but latency).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Union
from zoneinfo import ZoneInfo

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models.accounts import (
    ACCOUNT_ROLES,
    ADMIN,
    AREA,
    HELPER,
    INSPECTOR,
    ApiToken,
    AuditLog,
    ConsoleSession,
    User,
    user_villages,
)
from storage.models.base import utcnow
from storage.models.org import Cadre, Household, Township, Village
from storage.privacy import mask_text
from storage.scope import EVERYTHING, Scope

MIN_PASSWORD = 8
MAX_NAME = 32  # users.name
# A console left open over lunch stays logged in; one left overnight does not.
IDLE = timedelta(hours=12)
# Writing last_seen_at on every request would make each page a write; a minute is precise enough.
TOUCH_EVERY = timedelta(minutes=1)
CLI_ACTOR = "命令行"


def actor_name(actor: "User | Principal | None") -> str:
    """Who did it, as the audit log and the rows they wrote record it: the account's name, or 命令行."""
    return (actor.name if actor is not None else CLI_ACTOR)[:64]
TOKEN_PREFIX = "sst_"

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the name is unknown, so a wrong name takes as long as a wrong password.
# Made at the first such login, not at import: hashing costs every worker's start ~0.15 s.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("sisong-no-such-user")
    return _DUMMY_HASH


class AccountError(ValueError):
    """A request the cadre can fix; the message is Chinese and safe to show."""


class NotFound(AccountError):
    """No such account or token (the API answers 404)."""


class WrongPassword(AccountError):
    """The current password given to change it was wrong (callers count these like failed logins)."""


@dataclass(frozen=True)
class Principal:
    """The logged-in account as routes see it: plain values, no live ORM session needed."""

    id: int
    name: str
    role: str
    scope: Scope
    cadre_id: int | None = None
    session_id: int | None = None
    csrf: str | None = None

    @property
    def village_ids(self) -> frozenset[int] | None:
        """Villages shown to this account; None: every village (镇管理员, 督查)."""
        return self.scope.villages


# Who acts: a console account (its row, or the request's Principal), or None for the command line.
Actor = Union[User, Principal, None]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码太短了，请至少用 {MIN_PASSWORD} 位（字母、数字都可以，越长越安全）。")


def audit(session: Session, user: "User | Principal | None", action: str, target: str = "", detail: str = "",
          *, actor: str | None = None) -> None:
    """Add an audit row to ``session`` (committed with the change it records); detail is masked.

    ``user`` is the console account acting (a ``User`` row or the request's
    ``Principal``), or None for the command line, recorded as ``actor`` or "命令行".
    """
    session.add(AuditLog(
        user_id=user.id if user is not None else None,
        actor=_printable(actor or (user.name if user is not None else CLI_ACTOR))[:64],
        action=_printable(action)[:32],
        target=_printable(target)[:128],
        detail=_printable(mask_text(detail)) if detail else "",
    ))


def _printable(text: str) -> str:
    """What a caller typed, storable anywhere: NUL (PostgreSQL refuses it) becomes a visible mark."""
    return text.replace("\x00", "\ufffd")


def _storable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL: such a value names nothing, and must not reach the driver."""
    return "\x00" not in text


def _user_by_name(session: Session, name: str | int) -> User:
    """An account by name (the CLI) or by id (the console and API, where names travel badly in URLs)."""
    if isinstance(name, int):
        user = session.get(User, name)
        if user is None:
            raise NotFound("没有这个账号。")
        return user
    user = session.scalar(select(User).where(User.name == name)) if _storable(name) else None
    if user is None:
        raise NotFound(f"没有名为「{name}」的账号。")
    return user


def _villages(session: Session, township: str | None, names: Iterable[str]) -> list[Village]:
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        return []
    query = select(Village).where(Village.name.in_([n for n in wanted if _storable(n)]))
    if township:
        query = query.join(Township, Township.id == Village.township_id).where(Township.name == township)
    found = {v.name: v for v in session.scalars(query)}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise AccountError(f"找不到村：{'、'.join(missing)}。请先用 sisong org import 导入，或检查名字。")
    return [found[n] for n in wanted]


def _check_role(role: str) -> None:
    if not role:
        raise AccountError(f"请选择角色：{'、'.join(ACCOUNT_ROLES)}。")
    if role not in ACCOUNT_ROLES:
        raise AccountError(f"没有「{role}」这个角色，可选：{'、'.join(ACCOUNT_ROLES)}。")


def _scope_detail(role: str, villages: list[Village]) -> str:
    return f"角色 {role}" + (f"，村 {'、'.join(v.name for v in villages)}" if villages else "")


def create_user(db: Database, name: str, password: str, role: str, villages: Iterable[str] = (),
                *, township: str | None = None, actor: Actor = None) -> User:
    name = name.strip()
    if not name:
        raise AccountError("请填写账号名。")
    if len(name) > MAX_NAME:
        raise AccountError(f"账号名太长了，请不超过 {MAX_NAME} 个字。")
    if not name.isprintable():
        raise AccountError("账号名里有不能用的字符（换行、制表符之类），请只用文字、字母和数字。")
    _check_role(role)
    check_password_strength(password)
    with db.session() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccountError(f"账号「{name}」已经有了，换个名字，或用 sisong users passwd 改密码。")
        scope = _villages(session, township, villages)
        user = User(name=name, password_hash=_hasher.hash(password), role=role, villages=scope)
        session.add(user)
        session.flush()
        audit(session, actor, "user.create", name, _scope_detail(role, scope))
    return user


def set_password(db: Database, name: str | int, password: str, *, actor: Actor = None) -> None:
    """New password set by the command line or a 镇管理员; the account's sessions end
    (someone may have known the old one)."""
    check_password_strength(password)
    with db.session() as session:
        user = _user_by_name(session, name)
        user.password_hash = _hasher.hash(password)
        user.failed_logins = 0
        _end_sessions(session, user.id)
        audit(session, actor, "user.passwd", user.name)


def change_own_password(db: Database, me: Principal, old: str, new: str) -> None:
    """A cadre changes their own password: the old one must be right (a borrowed, unlocked phone
    must not be enough to take the account over). Their other sessions end; this one stays."""
    check_password_strength(new)
    if old == new:
        raise AccountError("新密码和原来的一样，请换一个。")
    with db.session() as session:
        user = session.get(User, me.id)
        if user is None or not user.active:
            raise AccountError("这个账号已经停用了。")
        wrong = not _hasher.verify(old, user.password_hash)
        if wrong:  # recorded (committed) like a failed login, then refused below
            audit(session, me, "user.passwd.fail", user.name, "原密码不对")
        else:
            user.password_hash = _hasher.hash(new)
            user.failed_logins = 0
            _end_sessions(session, user.id, keep=me.session_id)
            audit(session, me, "user.passwd", user.name, "本人修改")
    if wrong:
        raise WrongPassword("原密码不对，请再试一次。")


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count(User.id)).where(User.role == ADMIN, User.active.is_(True))) or 0


def _guard_admin_change(session: Session, user: User, actor: Actor, demote: bool) -> None:
    """Nobody locks the township out: no admin disables or demotes themselves from the console, and
    the last active admin stays one (the command line included: add another admin first)."""
    if isinstance(actor, Principal) and actor.id == user.id:
        raise AccountError(("不能改掉自己的镇管理员角色" if demote else "不能停用自己的账号")
                           + "；需要时请另一位镇管理员来做。")
    if user.role == ADMIN and user.active and _active_admins(session) <= 1:
        raise AccountError(f"「{user.name}」是唯一的镇管理员，不能{'改成别的角色' if demote else '停用'}。"
                           "请先添加另一位镇管理员。")


def disable_user(db: Database, name: str | int, *, actor: Actor = None) -> bool:
    """Disable an account and end its sessions and tokens; False if it was disabled already."""
    with db.session() as session:
        user = _user_by_name(session, name)
        was_active = user.active
        if was_active:
            _guard_admin_change(session, user, actor, demote=False)
        user.active = False
        _end_sessions(session, user.id)
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
        audit(session, actor, "user.disable", user.name)
    return was_active


def enable_user(db: Database, name: str | int, *, actor: Actor = None) -> bool:
    """Let a disabled account log in again (its old API tokens stay revoked); False if it was active."""
    with db.session() as session:
        user = _user_by_name(session, name)
        if user.active:
            return False
        user.active = True
        user.failed_logins = 0
        audit(session, actor, "user.enable", user.name)
    return True


def update_user(db: Database, name: str | int, role: str, villages: Iterable[str], *,
                township: str | None = None, actor: Actor = None) -> User:
    """Set an account's role and villages (a cadre moved, or was given another job)."""
    _check_role(role)
    with db.session() as session:
        user = _user_by_name(session, name)
        if user.role == ADMIN and role != ADMIN:
            _guard_admin_change(session, user, actor, demote=True)
        scope = _villages(session, township, villages)
        user.role = role
        user.villages = scope
        audit(session, actor, "user.update", user.name, _scope_detail(role, scope))
    return user


def find_cadre(session: Session, query: str, township: str | None = None) -> Cadre:
    """One cadre by their 干部码, phone or name; a name two cadres share needs the phone instead."""
    query = query.strip()
    if not query:
        raise AccountError("请写干部的姓名、电话或干部码。")
    base = select(Cadre)
    if township:
        base = base.join(Township, Township.id == Cadre.township_id).where(Township.name == township)
    if not _storable(query):
        raise AccountError(f"找不到干部「{query}」。")
    for column in (Cadre.code, Cadre.phone, Cadre.name):
        found = list(session.scalars(base.where(column == query).order_by(Cadre.id)))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AccountError(f"有 {len(found)} 位干部叫「{query}」，请改用电话或干部码。")
    raise AccountError(f"找不到干部「{query}」。请先用 sisong org import 导入干部，或检查写法。")


def link_cadre(db: Database, name: str | int, cadre: str | None, *, township: str | None = None,
               actor: Actor = None) -> Cadre | None:
    """Link an account to a cadre (帮扶责任人 then see the households they help), or unlink with None."""
    with db.session() as session:
        user = _user_by_name(session, name)
        found = find_cadre(session, cadre, township) if cadre and cadre.strip() else None
        user.cadre_id = found.id if found is not None else None
        user.cadre = found
        audit(session, actor, "user.link", user.name, f"干部 {found.name}" if found is not None else "取消关联")
    return found


def _end_sessions(session: Session, user_id: int, *, keep: int | None = None) -> None:
    """Revoke an account's sessions, except ``keep`` (the one asking, when it changed its own password)."""
    query = update(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(ConsoleSession.id != keep)
    session.execute(query.values(revoked_at=utcnow()))


def purge_sessions(db: Database, *, now: datetime | None = None) -> int:
    """Delete sessions nobody can use any more: revoked ones, and ones idle past ``IDLE`` plus a day.

    Only housekeeping (an expired session is refused either way); the day's margin
    keeps a session that expired a moment ago visible while someone looks into it.
    The sweeper calls this at most hourly. Returns how many rows went.
    """
    cutoff = (now or utcnow()) - IDLE - timedelta(days=1)
    with db.session() as session:
        result = session.execute(delete(ConsoleSession).where(
            or_(ConsoleSession.revoked_at.is_not(None), ConsoleSession.last_seen_at < cutoff)))
        return int(result.rowcount or 0)


def list_users(db: Database) -> list[User]:
    with db.session() as session:
        return list(session.scalars(select(User).order_by(User.id)))


def get_user(db: Database, name: str | int) -> User:
    """One account (with its villages and linked cadre loaded), by name or id; ``NotFound`` otherwise."""
    with db.session() as session:
        return _user_by_name(session, name)


def authenticate(db: Database, name: str, password: str, *, client: str = "") -> User | None:
    """The account if name and password match and it is active; every attempt is audited."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name.strip())) if _storable(name) else None
        ok = _hasher.verify(password, user.password_hash if user is not None else _dummy_hash())
        if user is None:
            audit(session, None, "login.fail", name.strip(), f"无此账号 {client}".strip(), actor=name.strip() or "?")
            return None
        if not ok or not user.active:
            user.failed_logins += 1
            audit(session, user, "login.fail", user.name, ("账号已停用 " if ok else "密码错误 ") + client)
            return None
        user.failed_logins = 0
        user.last_login_at = utcnow()
        audit(session, user, "login", user.name, client)
        return user


def scope_of(db: Database, user: User) -> Scope:
    """What the account may see (``storage.scope``).

    片区干部 see every village of the areas their listed villages belong to, so a
    village added to the area later needs no account change. 帮扶责任人 see their
    own households (through the linked cadre) and every household of any listed
    village. 督查 see everything and change nothing but alerts.
    """
    if user.role == ADMIN:
        return EVERYTHING
    if user.role == INSPECTOR:
        return Scope(writable=False, supervises=True)
    with db.session() as session:
        own = set(session.scalars(select(user_villages.c.village_id).where(user_villages.c.user_id == user.id)))
        if user.role == AREA and own:
            areas = select(Village.area_id).where(Village.id.in_(own), Village.area_id.is_not(None))
            own |= set(session.scalars(select(Village.id).where(Village.area_id.in_(areas))))
        shown = set(own)
        helper_id = None
        if user.role == HELPER and user.cadre_id is not None:
            helper_id = user.cadre_id
            shown |= set(session.scalars(select(Household.village_id).where(Household.helper_id == user.cadre_id)))
    return Scope(villages=frozenset(shown), full_villages=frozenset(own), helper_id=helper_id)


def _principal(db: Database, user: User, cs: ConsoleSession | None = None) -> Principal:
    return Principal(id=user.id, name=user.name, role=user.role, scope=scope_of(db, user),
                     cadre_id=user.cadre_id, session_id=cs.id if cs else None, csrf=cs.csrf if cs else None)


def new_session(db: Database, user: User, *, client: str = "") -> str:
    """A new browser session; returns the cookie value (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    with db.session() as session:
        session.add(ConsoleSession(token_hash=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(32),
                                   client=client[:64] or None))
    return token


def load_session(db: Database, token: str | None, *, now: datetime | None = None) -> Principal | None:
    """The session's account, or None when unknown, revoked, idle too long or the account is disabled."""
    if not token:
        return None
    now = now or utcnow()
    with db.session() as session:
        cs = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
        if cs is None or cs.revoked_at is not None or cs.last_seen_at + IDLE < now:
            return None
        user = session.get(User, cs.user_id)
        if user is None or not user.active:
            return None
        if now - cs.last_seen_at > TOUCH_EVERY:
            cs.last_seen_at = now
    return _principal(db, user, cs)


def revoke(db: Database, token: str | None) -> None:
    """End a browser session (logout)."""
    if not token:
        return
    with db.session() as session:
        cs = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
        if cs is None or cs.revoked_at is not None:
            return
        cs.revoked_at = utcnow()
        user = session.get(User, cs.user_id)
        audit(session, user, "logout", user.name if user else "")


def create_api_token(db: Database, name: str | int, label: str = "", *, actor: Actor = None) -> str:
    """A token for scripts, returned once; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        user = _user_by_name(session, name)
        if not user.active:
            raise AccountError(f"账号「{user.name}」已停用。")
        label = _printable(label.strip())[:64]
        session.add(ApiToken(token_hash=_digest(token), user_id=user.id, label=label))
        audit(session, actor, "token.create", user.name, label)
    return token


def load_api_token(db: Database, token: str | None) -> Principal | None:
    if not token:
        return None
    with db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        user = session.get(User, row.user_id)
        if user is None or not user.active:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
            row.last_used_at = now
    return _principal(db, user)


@dataclass(frozen=True)
class TokenView:
    """An API token as its owner and the CLI see it: never the token itself (only its hash is kept)."""

    id: int
    user: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _token_view(row: ApiToken, user_name: str) -> TokenView:
    return TokenView(row.id, user_name, row.label, row.created_at, row.last_used_at, row.revoked_at)


def list_api_tokens(db: Database, name: str | int) -> list[TokenView]:
    """An account's API tokens, newest first, revoked ones included (they say when they stopped)."""
    with db.session() as session:
        user = _user_by_name(session, name)
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc()))
        return [_token_view(row, user.name) for row in rows]


def revoke_api_token(db: Database, token_id: int, *, owner: int | None = None, actor: Actor = None) -> TokenView:
    """Revoke one API token. ``owner`` limits it to that account's tokens (the console's 我的账号:
    someone else's token is "not found", not "forbidden", so ids reveal nothing)."""
    with db.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None or (owner is not None and row.user_id != owner):
            raise NotFound("没有这个令牌。")
        user = session.get(User, row.user_id)
        name = user.name if user is not None else ""
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit(session, actor, "token.revoke", name, f"令牌 {row.id}" + (f"（{row.label}）" if row.label else ""))
        return _token_view(row, name)


# -- the audit log, as 镇管理员 and 督查 read it ---------------------------------------------------

# Chinese names of the actions every module records; an action not listed is shown as written.
ACTION_LABELS = {
    "login": "登录",
    "login.fail": "登录失败",
    "logout": "退出",
    "user.create": "新建账号",
    "user.passwd": "改密码",
    "user.passwd.fail": "改密码时原密码不对",
    "user.disable": "停用账号",
    "user.enable": "恢复账号",
    "user.update": "修改角色和村",
    "user.link": "关联干部",
    "token.create": "发 API 令牌",
    "token.revoke": "作废 API 令牌",
    "org.import": "导入组织表",
    "households.import": "导入农户",
    "households.codes": "生成绑定码",
    "households.reissue": "重发绑定码",
    "unanswered.reply": "答复问题",
    "unanswered.close": "关闭问题",
    "unanswered.promote": "设为常见问题",
    "faq.add": "添加常见问题",
    "faq.update": "修改常见问题",
    "faq.delete": "删除常见问题",
    "synonym.add": "添加同义词",
    "synonym.delete": "删除同义词",
    "handbook.import": "导入政策",
    "handbook.undo": "撤销政策导入",
    "handbook.delete": "删除政策文件",
    "push.send": "推送",
    "job_add": "新增岗位",
    "job_import": "导入岗位",
    "job_close": "关闭岗位",
    "job_push": "推送岗位",
    "job_outcome": "记录报名结果",
    "survey_start": "发起满意度调查",
    "survey_close": "结束满意度调查",
    "survey_case_assign": "分派问题线索",
    "survey_case_close": "办结问题线索",
    "survey_visit": "记录走访（一查）",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str

    @property
    def label(self) -> str:
        return action_label(self.action)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)


# Days outside these are no filter at all: nothing was recorded then, and the far ends of the
# calendar do not survive a shift to UTC.
_FIRST_DAY, _LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


def _local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(zone))


def list_audit(db: Database, *, actor: str = "", action: str = "", since: date | None = None,
               until: date | None = None, zone: str = "Asia/Shanghai", page: int = 1,
               per_page: int = 50) -> AuditPage:
    """Audit rows, newest first. ``actor`` matches part of the name; ``action`` is exact; ``since`` and
    ``until`` are days on the township's clock, both included. Who may read it is the caller's check."""
    page, per_page = min(max(page, 1), 1_000_000), min(max(per_page, 1), 200)
    where: list[Any] = []
    if not (_storable(actor) and _storable(action)):
        where.append(false())  # no name or action holds NUL (audit() replaces it)
    if actor.strip():
        where.append(AuditLog.actor.contains(actor.strip(), autoescape=True))
    if action.strip():
        where.append(AuditLog.action == action.strip())
    if since is not None and since > _FIRST_DAY:
        where.append(AuditLog.at >= _local_midnight(since, zone))
    if until is not None and until < _LAST_DAY:
        where.append(AuditLog.at < _local_midnight(until + timedelta(days=1), zone))
    with db.session() as session:
        total = session.scalar(select(func.count(AuditLog.id)).where(*where)) or 0
        rows = session.scalars(select(AuditLog).where(*where).order_by(AuditLog.id.desc())
                               .offset((page - 1) * per_page).limit(per_page))
        entries = [AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in rows]
    return AuditPage(entries, int(total), page, per_page)


def audit_actions(db: Database) -> list[str]:
    """The actions recorded so far (for the viewer's filter), known ones first in the labels' order."""
    with db.session() as session:
        seen = set(session.scalars(select(AuditLog.action).distinct()))
    known = [a for a in ACTION_LABELS if a in seen]
    return known + sorted(seen - set(known))
