"""四问一查: satisfaction campaigns over chat, each household's response, visit checks and cases.

A ``SurveyCampaign`` invites households (through the push engine: one
delivery row per follower, kind ``survey``) and keeps a snapshot of the
questionnaire it asks, so answers always read against the questions that
were asked, whatever the township edits later.

A ``SurveyResponse`` is one household's answers to one campaign, unique per
(campaign, household): the first family member to finish answers for the
household. It is also the conversation's durable state: the question being
asked (``step``), a reading waiting for "是/不是" (``pending``), how many times
the question was re-asked (``tries``), and ``version``, bumped by every
write (``UPDATE … WHERE version = ?``), so two quick messages cannot both
record against the same step. The answers are kept as JSON (key → codes or
text) and, for the figures the township reports, as plain columns too
(``know_team``, ``know_helper``, ``satisfaction``), which the stats group by.

``VisitCheck`` is a cadre's visit (一查: 两不愁三保障). ``SurveyCase`` is what a
不满意 or a 不认识 the helper raises for the supervisors (督查) to act on.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow

# Response statuses (the conversation's own; the disposition shown to cadres is derived, see storage.surveys).
INVITED, IN_PROGRESS, PAUSED, COMPLETED, DECLINED = "invited", "in_progress", "paused", "completed", "declined"
ACTIVE = (IN_PROGRESS,)
# Dispositions per invited household (issue 10).
DONE, PARTIAL, NO_REPLY, UNREACHABLE, REFUSED = "completed", "partial", "no_reply", "unreachable", "refused"
DISPOSITION_LABELS = {DONE: "已完成", PARTIAL: "部分完成", NO_REPLY: "未回复", UNREACHABLE: "无法送达",
                      REFUSED: "已拒绝"}
# Case statuses and reasons.
CASE_OPEN, CASE_ASSIGNED, CASE_CLOSED = "open", "assigned", "closed"
CASE_LABELS = {CASE_OPEN: "待分派", CASE_ASSIGNED: "处理中", CASE_CLOSED: "已办结"}
DISSATISFIED, UNKNOWN_HELPER = "dissatisfied", "unknown_helper"
REASON_LABELS = {DISSATISFIED: "不满意", UNKNOWN_HELPER: "不认识帮扶责任人"}
# The visit checklist (两不愁三保障), in the order the township's forms use.
CHECKS = (("food_clothing", "吃穿不愁"), ("education", "义务教育"), ("medical", "基本医疗"),
          ("housing", "住房安全"), ("water", "饮水安全"))


class SurveyCampaign(Base):
    __tablename__ = "survey_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    title: Mapped[str] = mapped_column(String(64))
    questionnaire: Mapped[str] = mapped_column(Text)  # the YAML asked, as it was
    questionnaire_key: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    targets: Mapped[str] = mapped_column(Text, default="{}")  # JSON, as pushes.targets
    actor: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    push_id: Mapped[int | None] = mapped_column(ForeignKey("pushes.id", ondelete="SET NULL"), default=None)
    remind_after: Mapped[int] = mapped_column(Integer, default=172800)  # seconds after the invitation
    reminders_from: Mapped[datetime | None] = mapped_column(default=None)  # when reminders were queued
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        UniqueConstraint("campaign_id", "household_id", name="uq_survey_responses_campaign_household"),
        Index("ix_survey_responses_household_status", "household_id", "status"),
        Index("ix_survey_responses_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id", ondelete="CASCADE"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id", ondelete="SET NULL"), default=None)
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("cadres.id", ondelete="SET NULL"), default=None)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), default=INVITED)
    step: Mapped[str | None] = mapped_column(String(32), default=None)  # the question being asked
    pending: Mapped[str | None] = mapped_column(String(64), default=None)  # JSON codes awaiting 是/不是
    tries: Mapped[int] = mapped_column(Integer, default=0)  # times the step was asked again
    version: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[str] = mapped_column(Text, default="{}")  # JSON key -> [codes] | text | null (no answer)
    know_team: Mapped[int | None] = mapped_column(Integer, default=None)
    know_helper: Mapped[int | None] = mapped_column(Integer, default=None)
    satisfaction: Mapped[int | None] = mapped_column(Integer, default=None)
    openid: Mapped[str | None] = mapped_column(String(64), default=None)  # the member who answered
    invited_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)


class VisitCheck(Base):
    __tablename__ = "survey_visits"
    __table_args__ = (Index("ix_survey_visits_household", "household_id", "visited_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    cadre_id: Mapped[int | None] = mapped_column(ForeignKey("cadres.id", ondelete="SET NULL"), default=None)
    cadre_name: Mapped[str] = mapped_column(String(32))
    visited_on: Mapped[date] = mapped_column(Date)
    food_clothing: Mapped[bool] = mapped_column(Boolean)
    education: Mapped[bool] = mapped_column(Boolean)
    medical: Mapped[bool] = mapped_column(Boolean)
    housing: Mapped[bool] = mapped_column(Boolean)
    water: Mapped[bool] = mapped_column(Boolean)
    notes: Mapped[str] = mapped_column(Text, default="")  # 生产生活和思想状况
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyCase(Base):
    __tablename__ = "survey_cases"
    __table_args__ = (
        UniqueConstraint("response_id", "reason", name="uq_survey_cases_response_reason"),
        Index("ix_survey_cases_status", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id", ondelete="CASCADE"))
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CASE_OPEN)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("cadres.id", ondelete="SET NULL"), default=None)
    due_on: Mapped[date | None] = mapped_column(Date, default=None)
    action: Mapped[str] = mapped_column(Text, default="")  # what was done
    reply: Mapped[str | None] = mapped_column(Text, default=None)  # what the household was told on closing
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(64), default=None)
