"""The township's organisation and its registered households (issue 7).

镇 (township) → 片区 (area committee) → 村/社区 (village) → 组 (hamlet, 村民小组).
Five pioneer teams (先锋队) pair cadres with households. Every table carries a
township so a county can later run several in one database; one township per
deployment today (``ensure_township``).

Households are keyed by their 户编号 (``number``). Family members' WeChat
accounts are bound to a household through ``household_bindings``: one row per
follower (a follower belongs to at most one household), several per household.
Messaging groups are the cadres' WeCom groups with a robot URL and what they
cover; notices to them wait in ``group_notices`` (WeCom allows 20 robot
messages a minute per group, so notices are queued and merged, never dropped).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, utcnow

TEAM_NAMES = ("帮扶", "建房", "产业", "就业", "督查")
# Cadre roles as the township names them.
ROLES = ("镇", "片区", "村", "帮扶责任人", "督查")


class Township(Base):
    __tablename__ = "townships"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Area(Base):
    """片区: an area committee grouping several villages."""

    __tablename__ = "areas"
    __table_args__ = (UniqueConstraint("township_id", "name", name="uq_areas_township_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    name: Mapped[str] = mapped_column(String(64))


class Village(Base):
    """村/社区. ``tag_id`` is its WeChat user tag, created on demand when a follower binds."""

    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("township_id", "name", name="uq_villages_township_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), default=None)
    name: Mapped[str] = mapped_column(String(64))
    tag_id: Mapped[int | None] = mapped_column(Integer, default=None)

    area: Mapped[Area | None] = relationship(lazy="joined")


class Hamlet(Base):
    """组 (村民小组) of a village, e.g. "三组"."""

    __tablename__ = "hamlets"
    __table_args__ = (UniqueConstraint("village_id", "name", name="uq_hamlets_village_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))


class Team(Base):
    """先锋队: 帮扶、建房、产业、就业、督查 (seeded by the migration)."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(16), unique=True)


cadre_teams = Table(
    "cadre_teams",
    Base.metadata,
    Column("cadre_id", ForeignKey("cadres.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)

cadre_villages = Table(
    "cadre_villages",
    Base.metadata,
    Column("cadre_id", ForeignKey("cadres.id", ondelete="CASCADE"), primary_key=True),
    Column("village_id", ForeignKey("villages.id", ondelete="CASCADE"), primary_key=True),
)


class Cadre(Base):
    """干部. ``phone`` identifies a cadre on re-import when names repeat; ``openid`` is set when
    the cadre binds their own WeChat with ``code`` (then helpers get customer-service notices)."""

    __tablename__ = "cadres"
    __table_args__ = (UniqueConstraint("township_id", "name", "phone", name="uq_cadres_township_name_phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    name: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20), default="")
    role: Mapped[str] = mapped_column(String(16), default="帮扶责任人")
    wecom_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    openid: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    code: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    teams: Mapped[list[Team]] = relationship(secondary=cadre_teams, lazy="selectin")
    villages: Mapped[list[Village]] = relationship(secondary=cadre_villages, lazy="selectin")


class Household(Base):
    """建档立卡户 or 监测户, keyed by 户编号. ``code`` is the binding code every family member uses."""

    __tablename__ = "households"
    __table_args__ = (
        UniqueConstraint("township_id", "number", name="uq_households_township_number"),
        Index("ix_households_village", "village_id"),
        Index("ix_households_helper", "helper_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    number: Mapped[str] = mapped_column(String(32))  # 户编号
    head_name: Mapped[str] = mapped_column(String(32))  # 户主姓名
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    hamlet_id: Mapped[int | None] = mapped_column(ForeignKey("hamlets.id"), default=None)
    population: Mapped[int | None] = mapped_column(Integer, default=None)  # 人口数
    labourers: Mapped[int | None] = mapped_column(Integer, default=None)  # 劳动力人数
    work_intent: Mapped[str | None] = mapped_column(String(255), default=None)  # 务工意向
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("cadres.id"), default=None)  # 帮扶责任人
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), default=None)  # 先锋队
    lifted: Mapped[bool] = mapped_column(Boolean, default=False)  # 脱贫状态: 已脱贫
    monitored: Mapped[bool] = mapped_column(Boolean, default=False)  # 监测对象
    phone: Mapped[str | None] = mapped_column(String(20), default=None)  # 联系电话
    code: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    code_issued_at: Mapped[datetime | None] = mapped_column(default=None)
    qr_scene: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)  # looked up on every scan
    qr_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    village: Mapped[Village] = relationship(lazy="joined")
    hamlet: Mapped[Hamlet | None] = relationship(lazy="joined")
    helper: Mapped[Cadre | None] = relationship(lazy="joined")
    team: Mapped[Team | None] = relationship(lazy="joined")


class HouseholdBinding(Base):
    """One follower (a family member's WeChat) bound to one household."""

    __tablename__ = "household_bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    via: Mapped[str] = mapped_column(String(8), default="code")  # code | qr
    bound_at: Mapped[datetime] = mapped_column(default=utcnow)
    tagged: Mapped[bool] = mapped_column(Boolean, default=False)  # village tag applied at WeChat


group_villages = Table(
    "group_villages",
    Base.metadata,
    Column("group_id", ForeignKey("messaging_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("village_id", ForeignKey("villages.id", ondelete="CASCADE"), primary_key=True),
)
group_areas = Table(
    "group_areas",
    Base.metadata,
    Column("group_id", ForeignKey("messaging_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("area_id", ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True),
)
group_teams = Table(
    "group_teams",
    Base.metadata,
    Column("group_id", ForeignKey("messaging_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)


class MessagingGroup(Base):
    """A cadres' WeCom group with its robot; ``covers_all`` marks the township group."""

    __tablename__ = "messaging_groups"
    __table_args__ = (UniqueConstraint("township_id", "name", name="uq_messaging_groups_township_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"))
    name: Mapped[str] = mapped_column(String(64))
    robot_url: Mapped[str] = mapped_column(Text)
    covers_all: Mapped[bool] = mapped_column(Boolean, default=False)

    villages: Mapped[list[Village]] = relationship(secondary=group_villages, lazy="selectin")
    areas: Mapped[list[Area]] = relationship(secondary=group_areas, lazy="selectin")
    teams: Mapped[list[Team]] = relationship(secondary=group_teams, lazy="selectin")


class GroupNotice(Base):
    """A notice waiting for (or sent to) a group's robot; several pending ones go out merged."""

    __tablename__ = "group_notices"
    __table_args__ = (Index("ix_group_notices_pending", "robot_url", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("messaging_groups.id", ondelete="SET NULL"), default=None)
    robot_url: Mapped[str] = mapped_column(Text)  # the township group of SISONG_WECOM_ROBOT_URL has no row
    markdown: Mapped[str] = mapped_column(Text)  # masked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A sender's lease (with ``holder``, its token) or a back-off after a failed send.
    holder: Mapped[str | None] = mapped_column(String(32), default=None)
    held_until: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(255), default=None)  # why the last send failed
