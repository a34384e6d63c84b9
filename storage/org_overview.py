"""干部与群: who works where, and which WeCom group hears about which village, for one account's scope.

One function, :func:`org_overview`, serves the console page and ``GET /api/v1/org``.
What an account sees follows ``storage.scope``:

- cadres linked to a village it may see (``cadre_villages``), or helping a household it may see;
  household counts only count those households;
- villages it may see, by 片区, with the groups covering each;
- groups covering one of those villages (directly, through the 片区, or the township group);
  a group covering only 先锋队 is the township's business and shown to accounts that see everything;
- recent notices of groups covering its villages directly or through the 片区 (the township
  group's notices are about every village, so only accounts that see everything get them).

Robot URLs are never returned: whoever has one can post into the group. Cadres'
phone numbers are masked unless the caller says otherwise (镇管理员 only).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models.org import (
    Area,
    Cadre,
    GroupNotice,
    Household,
    MessagingGroup,
    Team,
    Village,
    cadre_villages,
)
from storage.privacy import mask_text
from storage.scope import Scope

TOWNSHIP_GROUP = "镇工作群（SISONG_WECOM_ROBOT_URL）"


@dataclass(frozen=True)
class TeamRow:
    name: str
    cadres: int
    households: int


@dataclass(frozen=True)
class CadreRow:
    id: int
    name: str
    role: str
    phone: str  # masked unless asked otherwise
    teams: list[str]
    villages: list[str]
    households: int  # households they help, within the scope
    wechat_bound: bool  # bound their own WeChat with their 干部码 (then they get private notices)
    wecom: bool  # a WeCom userid is known (the group notice @-mentions them)
    active: bool


@dataclass(frozen=True)
class VillageRow:
    name: str
    households: int
    groups: list[str]


@dataclass(frozen=True)
class AreaRow:
    name: str | None
    villages: list[VillageRow]


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    covers_all: bool
    villages: list[str]  # named on the group
    areas: list[str]
    teams: list[str]
    covered_villages: list[str]  # its villages and its areas' villages
    pending: int  # notices not sent yet
    last_sent_at: datetime | None
    last_error: str | None  # why a notice still waiting failed to send last time


@dataclass(frozen=True)
class NoticeRow:
    id: int
    group: str
    summary: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    error: str | None

    @property
    def status(self) -> str:
        """sent / failed (a send failed, it will be retried) / pending."""
        if self.sent_at is not None:
            return "sent"
        return "failed" if self.error else "pending"


STATUS_LABELS = {"sent": "已发送", "failed": "发送失败，会重试", "pending": "等待发送"}


@dataclass(frozen=True)
class OrgOverview:
    everything: bool
    teams: list[TeamRow]
    cadres: list[CadreRow]
    areas: list[AreaRow]
    groups: list[GroupRow]
    notices: list[NoticeRow]


def notice_summary(markdown: str) -> str:
    """A notice in one line: its title and 村组 (``bot.notices.group_markdown``), never the question."""
    lines = [line.strip() for line in markdown.splitlines() if line.strip()]
    title = lines[0].lstrip("#").strip() if lines else ""
    place = next((line.split("：", 1)[1].strip() for line in lines if line.startswith("> 村组：")), "")
    summary = f"{title}（{place}）" if place and place != "-" else title
    return mask_text(summary[:80])


def _households_by(session: Session, column: object, scope: Scope) -> dict[int, int]:
    return {key: int(n) for key, n in session.execute(
        select(column, func.count(Household.id)).where(scope.households(), column.is_not(None))  # type: ignore[attr-defined]
        .group_by(column))}


def _cadres(session: Session, scope: Scope, show_phones: bool) -> list[CadreRow]:
    query = select(Cadre)
    if not scope.everything:
        linked = select(cadre_villages.c.cadre_id).where(cadre_villages.c.village_id.in_(sorted(scope.villages or ())))
        helping = select(Household.helper_id).where(scope.households(), Household.helper_id.is_not(None))
        query = query.where(or_(Cadre.id.in_(linked), Cadre.id.in_(helping)))
    helped = _households_by(session, Household.helper_id, scope)
    rows = []
    for cadre in session.scalars(query.order_by(Cadre.name, Cadre.id)):
        rows.append(CadreRow(
            id=cadre.id, name=cadre.name, role=cadre.role,
            phone=cadre.phone if show_phones else mask_text(cadre.phone or ""),
            teams=[t.name for t in cadre.teams], villages=sorted(v.name for v in cadre.villages),
            households=helped.get(cadre.id, 0), wechat_bound=cadre.openid is not None,
            wecom=bool(cadre.wecom_userid), active=cadre.active))
    return rows


def _teams(session: Session, scope: Scope, cadres: list[CadreRow]) -> list[TeamRow]:
    per_team = _households_by(session, Household.team_id, scope)
    return [TeamRow(team.name, sum(1 for c in cadres if team.name in c.teams), per_team.get(team.id, 0))
            for team in session.scalars(select(Team).order_by(Team.id))]


def _groups(session: Session, scope: Scope, villages: list[Village]) -> list[MessagingGroup]:
    groups = list(session.scalars(select(MessagingGroup).order_by(MessagingGroup.name)))
    if scope.everything:
        return groups
    mine = {v.id for v in villages}
    my_areas = {v.area_id for v in villages if v.area_id is not None}
    return [g for g in groups if g.covers_all or any(v.id in mine for v in g.villages)
            or any(a.id in my_areas for a in g.areas)]


def org_overview(db: Database, scope: Scope, *, show_phones: bool = False, notices: int = 20) -> OrgOverview:
    """Teams, cadres, villages by 片区 with their groups, the groups and their latest notices, in ``scope``."""
    with db.session() as session:
        cadres = _cadres(session, scope, show_phones)
        teams = _teams(session, scope, cadres)
        villages = list(session.scalars(select(Village).where(scope.village_rows())))
        all_villages = list(session.scalars(select(Village)))
        per_village = _households_by(session, Household.village_id, scope)
        groups = _groups(session, scope, villages)

        covering: dict[int, list[str]] = defaultdict(list)  # village id → names of groups covering it
        group_rows = []
        pending = {gid: (int(n), error) for gid, n, error in session.execute(
            select(GroupNotice.group_id, func.count(GroupNotice.id), func.max(GroupNotice.error))
            .where(GroupNotice.sent_at.is_(None)).group_by(GroupNotice.group_id))}
        last_sent = dict(session.execute(
            select(GroupNotice.group_id, func.max(GroupNotice.sent_at)).group_by(GroupNotice.group_id)).all())
        for group in groups:
            area_ids = {a.id for a in group.areas}
            covered = [v for v in all_villages if group.covers_all or v.area_id in area_ids
                       or any(v.id == gv.id for gv in group.villages)]
            for village in covered:
                covering[village.id].append(group.name)
            waiting, error = pending.get(group.id, (0, None))
            group_rows.append(GroupRow(
                id=group.id, name=group.name, covers_all=group.covers_all,
                villages=sorted(v.name for v in group.villages), areas=sorted(a.name for a in group.areas),
                teams=[t.name for t in group.teams],
                covered_villages=[] if group.covers_all else sorted(v.name for v in covered),
                pending=waiting, last_sent_at=last_sent.get(group.id), last_error=error))

        by_area: dict[str | None, list[VillageRow]] = defaultdict(list)
        for village in sorted(villages, key=lambda v: v.name):
            by_area[village.area.name if village.area else None].append(
                VillageRow(village.name, per_village.get(village.id, 0), covering.get(village.id, [])))
        areas = [AreaRow(name, rows) for name, rows in
                 sorted(by_area.items(), key=lambda item: (item[0] is None, item[0] or ""))]

        shown = {g.id: g.name for g in groups if scope.everything or not g.covers_all}
        query = select(GroupNotice).order_by(GroupNotice.id.desc()).limit(notices)
        if scope.everything:
            query = query.where(or_(GroupNotice.group_id.is_(None), GroupNotice.group_id.in_(sorted(shown))))
        else:
            query = query.where(GroupNotice.group_id.in_(sorted(shown)))
        notice_rows = [NoticeRow(
            id=n.id, group=shown.get(n.group_id, TOWNSHIP_GROUP) if n.group_id is not None else TOWNSHIP_GROUP,
            summary=notice_summary(n.markdown), created_at=n.created_at, sent_at=n.sent_at,
            attempts=n.attempts, error=n.error) for n in session.scalars(query)]
    return OrgOverview(scope.everything, teams, cadres, areas, group_rows, notice_rows)


def village_names(db: Database) -> list[tuple[str, str | None]]:
    """Every village with its 片区, for the account forms' village choices."""
    with db.session() as session:
        rows = session.execute(select(Village.name, Area.name).outerjoin(Area, Area.id == Village.area_id)).all()
    return sorted(((v, a) for v, a in rows), key=lambda r: (r[1] is None, r[1] or "", r[0]))
