"""Follower bookkeeping: who follows, since when, and when they last wrote to us."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Follower
from storage.models.base import UTCDateTime, utcnow


def get_or_create(session: Session, openid: str) -> Follower:
    """The follower row, created if needed without racing a concurrent first message."""
    follower = session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is not None:
        return follower
    now = utcnow()
    session.execute(
        _insert(session)
        .values(openid=openid, subscribed=True, first_seen=now, last_seen=now)
        .on_conflict_do_nothing(index_elements=["openid"])
    )
    return session.scalars(select(Follower).where(Follower.openid == openid)).one()


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(Follower)


def touch(session: Session, openid: str, *, interaction: bool, now: datetime | None = None) -> None:
    """Record that the follower reached us; ``interaction`` opens the 48-hour reply window.

    One upsert statement, built once per dialect: this runs for every message,
    and building an ORM statement per call cost more than the round trip.
    """
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    stmt = _TOUCH.get((dialect, interaction))
    if stmt is None:
        stmt = _TOUCH[(dialect, interaction)] = _touch_statement(dialect, interaction)
    session.connection().execute(stmt, {"p_openid": openid, "p_now": now})


_TOUCH: dict[tuple[str, bool], Any] = {}


def _touch_statement(dialect: str, interaction: bool) -> Any:
    table = Follower.__table__
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    now = bindparam("p_now", type_=UTCDateTime())
    changes: dict[str, Any] = {"last_seen": now}
    if interaction:
        changes["last_interaction"] = now
    return insert.values(openid=bindparam("p_openid"), subscribed=True, first_seen=now, **changes).on_conflict_do_update(
        index_elements=["openid"], set_=changes
    )


def mark_subscribed(session: Session, openid: str, scene: str | None = None) -> Follower:
    follower = get_or_create(session, openid)
    follower.last_seen = follower.last_interaction = utcnow()
    follower.subscribed = True
    follower.subscribed_at = utcnow()
    follower.unsubscribed_at = None
    follower.unreachable_reason = None
    if scene:
        follower.scene = scene
    return follower


def mark_unsubscribed(session: Session, openid: str) -> Follower:
    follower = get_or_create(session, openid)
    follower.subscribed = False
    follower.unsubscribed_at = utcnow()
    return follower


def mark_unreachable(session: Session, openid: str, reason: str) -> None:
    follower = get_or_create(session, openid)
    follower.unreachable_reason = reason
