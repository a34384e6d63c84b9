"""送岗位: job postings, the villages they were pushed to, and households' sign-ups (issue 9).

A posting's ``status`` is what cadres set (草稿 draft, 已发布 open, 已关闭
closed) or what follows from the data (已满 full when the confirmed sign-ups
reach ``headcount``, 已截止 expired once ``deadline`` has passed on the
township's clock). ``storage/jobs.py`` keeps the two in step; readers also
compute the deadline at read time, so a posting never shows as open the day
after its deadline even before the sweeper has run.

A sign-up is one row per (posting, household), unique in the database: a
retry, a repeat or a second family member finds the row instead of adding one.
Withdrawing keeps the row (``cancelled``) so signing up again reuses it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow

# Posting statuses: stored codes and the words cadres and households read.
DRAFT, OPEN, FULL, EXPIRED, CLOSED = "draft", "open", "full", "expired", "closed"
POSTING_LABELS = {DRAFT: "草稿", OPEN: "已发布", FULL: "已满", EXPIRED: "已截止", CLOSED: "已关闭"}

# Sign-up statuses and outcomes.
SIGNED, WAITING, CANCELLED = "signed", "waiting", "cancelled"
SIGNUP_LABELS = {SIGNED: "已报名", WAITING: "排队中", CANCELLED: "已取消"}
HIRED, REJECTED, NO_SHOW = "hired", "rejected", "no_show"
OUTCOME_LABELS = {HIRED: "录用", REJECTED: "未录用", NO_SHOW: "未到岗"}

job_posting_villages = Table(
    "job_posting_villages",
    Base.metadata,
    Column("posting_id", ForeignKey("job_postings.id", ondelete="CASCADE"), primary_key=True),
    Column("village_id", ForeignKey("villages.id", ondelete="CASCADE"), primary_key=True),
)


class JobPosting(Base):
    """A job opening the township screened. ``id`` is the 编号 households reply with."""

    __tablename__ = "job_postings"
    __table_args__ = (Index("ix_job_postings_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    title: Mapped[str] = mapped_column(String(64))
    employer: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))
    salary: Mapped[str] = mapped_column(String(64))  # as written: "4500-6000元/月", "150元/天"
    headcount: Mapped[int] = mapped_column(Integer)
    requirements: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(128))  # a name and a phone, shown to households who sign up
    deadline: Mapped[date | None] = mapped_column(Date, default=None)  # last day to sign up (township's clock)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Bumped by every sign-up change: the first write of that unit of work, so concurrent sign-ups
    # to one posting queue on its row (PostgreSQL) or the writer lock (SQLite) before counting places.
    signup_version: Mapped[int] = mapped_column(Integer, default=0)


class JobSignup(Base):
    """One household's sign-up for one posting (whoever in the family sent it)."""

    __tablename__ = "job_signups"
    __table_args__ = (
        UniqueConstraint("posting_id", "household_id", name="uq_job_signups_posting_household"),
        Index("ix_job_signups_household", "household_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    posting_id: Mapped[int] = mapped_column(ForeignKey("job_postings.id", ondelete="CASCADE"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    openid: Mapped[str | None] = mapped_column(String(64), default=None)  # the member who signed up
    via: Mapped[str] = mapped_column(String(8), default="chat")  # chat | cadre
    status: Mapped[str] = mapped_column(String(16), default=SIGNED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # the place in the waiting list
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    outcome_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome_by: Mapped[str | None] = mapped_column(String(64), default=None)
