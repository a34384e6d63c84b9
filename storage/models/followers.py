"""Followers of the official account, keyed by openid.

Unsubscribing only flips a flag: a household's history (surveys, questions)
stays meaningful if they follow again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow


class Follower(Base):
    __tablename__ = "followers"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    scene: Mapped[str | None] = mapped_column(String(64), default=None)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    # Last message/click that opens WeChat's 48-hour customer-service window.
    last_interaction: Mapped[datetime | None] = mapped_column(default=None)
    subscribed_at: Mapped[datetime | None] = mapped_column(default=None)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when WeChat says the follower can no longer be reached (43004/43101).
    unreachable_reason: Mapped[str | None] = mapped_column(String(64), default=None)
