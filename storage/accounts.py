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
from datetime import datetime, timedelta

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update
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
from storage.models.org import Household, Township, Village
from storage.privacy import mask_text
from storage.scope import EVERYTHING, Scope

MIN_PASSWORD = 8
# A console left open over lunch stays logged in; one left overnight does not.
IDLE = timedelta(hours=12)
# Writing last_seen_at on every request would make each page a write; a minute is precise enough.
TOUCH_EVERY = timedelta(minutes=1)
CLI_ACTOR = "命令行"
TOKEN_PREFIX = "sst_"

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("sisong-no-such-user")


class AccountError(ValueError):
    """A request the cadre can fix; the message is Chinese and safe to show."""


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
        actor=(actor or (user.name if user is not None else CLI_ACTOR))[:64],
        action=action[:32],
        target=target[:128],
        detail=mask_text(detail) if detail else "",
    ))


def _user_by_name(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"没有名为「{name}」的账号。")
    return user


def _villages(session: Session, township: str | None, names: Iterable[str]) -> list[Village]:
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        return []
    query = select(Village).where(Village.name.in_(wanted))
    if township:
        query = query.join(Township, Township.id == Village.township_id).where(Township.name == township)
    found = {v.name: v for v in session.scalars(query)}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise AccountError(f"找不到村：{'、'.join(missing)}。请先用 sisong org import 导入，或检查名字。")
    return [found[n] for n in wanted]


def create_user(db: Database, name: str, password: str, role: str, villages: Iterable[str] = (),
                *, township: str | None = None, actor: User | None = None) -> User:
    name = name.strip()
    if not name:
        raise AccountError("请填写账号名。")
    if role not in ACCOUNT_ROLES:
        raise AccountError(f"没有「{role}」这个角色，可选：{'、'.join(ACCOUNT_ROLES)}。")
    check_password_strength(password)
    with db.session() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccountError(f"账号「{name}」已经有了，换个名字，或用 sisong users passwd 改密码。")
        scope = _villages(session, township, villages)
        user = User(name=name, password_hash=_hasher.hash(password), role=role, villages=scope)
        session.add(user)
        session.flush()
        audit(session, actor, "user.create", name,
              f"角色 {role}" + (f"，村 {'、'.join(v.name for v in scope)}" if scope else ""))
    return user


def set_password(db: Database, name: str, password: str, *, actor: User | None = None) -> None:
    """New password; the account's sessions end (someone may have known the old one)."""
    check_password_strength(password)
    with db.session() as session:
        user = _user_by_name(session, name)
        user.password_hash = _hasher.hash(password)
        user.failed_logins = 0
        _end_sessions(session, user.id)
        audit(session, actor, "user.passwd", name)


def disable_user(db: Database, name: str, *, actor: User | None = None) -> bool:
    """Disable an account and end its sessions and tokens; False if it was disabled already."""
    with db.session() as session:
        user = _user_by_name(session, name)
        was_active = user.active
        user.active = False
        _end_sessions(session, user.id)
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
        audit(session, actor, "user.disable", name)
    return was_active


def _end_sessions(session: Session, user_id: int) -> None:
    session.execute(update(ConsoleSession)
                    .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def list_users(db: Database) -> list[User]:
    with db.session() as session:
        return list(session.scalars(select(User).order_by(User.id)))


def authenticate(db: Database, name: str, password: str, *, client: str = "") -> User | None:
    """The account if name and password match and it is active; every attempt is audited."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name.strip()))
        ok = _hasher.verify(password, user.password_hash if user is not None else _DUMMY_HASH)
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
        return Scope(writable=False)
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


def create_api_token(db: Database, name: str, label: str = "", *, actor: User | None = None) -> str:
    """A token for scripts, returned once; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        user = _user_by_name(session, name)
        if not user.active:
            raise AccountError(f"账号「{name}」已停用。")
        session.add(ApiToken(token_hash=_digest(token), user_id=user.id, label=label[:64]))
        audit(session, actor, "token.create", name, label)
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
