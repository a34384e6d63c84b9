"""The figures of the console's 概览 (dashboard), for one account's scope.

One function, :func:`dashboard_figures`, serves the page and ``GET /api/v1/dashboard``
so both always show the same numbers.

What counts as a *question*: an inbound message the policy handler or the
"找人工" handler took (free text, recognised voice, "0"), plus messages whose
words were kept for a cadre because the database was busy or the message
failed. The message log does not record whether the handbook answered, so a
question is *handed over* when it put an item in the unanswered queue
(``kb_unanswered``) and *answered by the handbook* otherwise; the queue keeps
one open item per follower and question, so asking the same thing twice counts
as one hand-over.

Scope: an account that sees everything counts every follower and question; any
other account counts only followers bound to a household it may see
(``Scope.households``), so a follower who never bound a household is in the
township's figures only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models.base import utcnow
from storage.models.followers import Follower
from storage.models.knowledge import KbUnanswered
from storage.models.messages import BUSY, FAILED, MessageLog
from storage.models.org import Area, Household, HouseholdBinding, Village
from storage.scope import Scope

# Handlers whose messages are a household's question (see the module docstring).
QUESTION_HANDLERS = ("policy_qa.ask", "handover.handover")
DAYS = 14


@dataclass(frozen=True)
class VillageBinding:
    """Households of one village the account may see, and how many have bound a WeChat."""

    village: str
    area: str | None
    households: int
    bound: int


@dataclass(frozen=True)
class DayCount:
    day: date  # on the township's clock
    questions: int
    handed_over: int

    @property
    def answered(self) -> int:
        return max(self.questions - self.handed_over, 0)


@dataclass(frozen=True)
class Figures:
    followers: int  # subscribed (bound to a visible household, unless the account sees everything)
    villages: list[VillageBinding]
    days: list[DayCount]  # the last ``DAYS`` days, oldest first; the last one is today
    open_unanswered: int
    oldest_open_at: datetime | None
    now: datetime
    everything: bool

    @property
    def households(self) -> int:
        return sum(v.households for v in self.villages)

    @property
    def bound_households(self) -> int:
        return sum(v.bound for v in self.villages)

    @property
    def today(self) -> DayCount:
        return self.days[-1]

    @property
    def answered_share(self) -> float | None:
        """Share of today's questions the handbook answered (0-1); None when nobody asked."""
        today = self.today
        return today.answered / today.questions if today.questions else None

    @property
    def waited(self) -> str:
        return waited_text(self.oldest_open_at, self.now)


def waited_text(since: datetime | None, now: datetime) -> str:
    """How long the oldest open question has waited, as a cadre would say it."""
    if since is None:
        return "没有等着答复的问题"
    seconds = max((now - since).total_seconds(), 0)
    if seconds < 60:
        return "最早的一条刚刚进来"
    if seconds < 3600:
        return f"最早的一条等了 {int(seconds // 60)} 分钟"
    if seconds < 86400:
        return f"最早的一条等了 {int(seconds // 3600)} 小时"
    return f"最早的一条等了 {int(seconds // 86400)} 天"


def _day_starts(now: datetime, zone: str, days: int) -> list[datetime]:
    """Midnights on the township's clock (as aware datetimes) of the last ``days`` days, plus tomorrow's."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    return [datetime.combine(first + timedelta(days=i), time(), tz) for i in range(days + 1)]


def _visible_openids(scope: Scope) -> Any:
    """The followers bound to a household the account may see, as a subquery."""
    return (select(HouseholdBinding.openid)
            .join(Household, Household.id == HouseholdBinding.household_id)
            .where(scope.households()))


def _openid_in_scope(column: Any, scope: Scope) -> ColumnElement[bool]:
    return true() if scope.everything else column.in_(_visible_openids(scope))


def _per_day(session: Session, column: Any, where: list[ColumnElement[bool]], starts: list[datetime]) -> list[int]:
    """Rows per day in one query: a sum of CASE per day, so it runs the same on SQLite and PostgreSQL."""
    buckets = [func.coalesce(func.sum(case((and_(column >= lo, column < hi), 1), else_=0)), 0)
               for lo, hi in zip(starts, starts[1:])]
    row = session.execute(select(*buckets).where(column >= starts[0], column < starts[-1], *where)).one()
    return [int(n) for n in row]


def _villages(session: Session, scope: Scope) -> list[VillageBinding]:
    bound = (select(HouseholdBinding.household_id).distinct()).subquery()
    counts = dict(
        (vid, (int(total), int(with_binding or 0)))
        for vid, total, with_binding in session.execute(
            select(Household.village_id, func.count(Household.id), func.count(bound.c.household_id))
            .outerjoin(bound, bound.c.household_id == Household.id)
            .where(scope.households())
            .group_by(Household.village_id)
        )
    )
    rows = session.execute(
        select(Village.id, Village.name, Area.name).outerjoin(Area, Area.id == Village.area_id)
        .where(scope.village_rows())
    ).all()
    rows.sort(key=lambda r: (r[2] is None, r[2] or "", r[1]))  # by area, villages without one last
    return [VillageBinding(name, area, *counts.get(vid, (0, 0))) for vid, name, area in rows]


def dashboard_figures(db: Database, scope: Scope, zone: str = "Asia/Shanghai", *,
                      now: datetime | None = None, days: int = DAYS) -> Figures:
    """Everything the 概览 shows, counted within ``scope``; days follow ``zone`` (SISONG_TIMEZONE)."""
    now = now or utcnow()
    starts = _day_starts(now, zone, days)
    with db.session() as session:
        followers = session.scalar(
            select(func.count(Follower.id)).where(Follower.subscribed.is_(True),
                                                  _openid_in_scope(Follower.openid, scope))) or 0
        is_question = or_(MessageLog.handler.in_(QUESTION_HANDLERS),
                          and_(MessageLog.status.in_((BUSY, FAILED)), MessageLog.text.is_not(None)))
        questions = _per_day(session, MessageLog.created_at,
                             [MessageLog.direction == "in", is_question,
                              _openid_in_scope(MessageLog.openid, scope)], starts)
        handed = _per_day(session, KbUnanswered.created_at,
                          [_openid_in_scope(KbUnanswered.openid, scope)], starts)
        open_count, oldest = session.execute(
            select(func.count(KbUnanswered.id), func.min(KbUnanswered.created_at))
            .where(KbUnanswered.status == "open", _openid_in_scope(KbUnanswered.openid, scope))
        ).one()
        villages = _villages(session, scope)
    return Figures(
        followers=int(followers),
        villages=villages,
        days=[DayCount(start.date(), q, h) for start, q, h in zip(starts, questions, handed)],
        open_unanswered=int(open_count or 0),
        oldest_open_at=oldest,
        now=now,
        everything=scope.everything,
    )
