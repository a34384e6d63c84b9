"""Notices to the cadres: which WeCom group hears about a household, and the queue to its robot.

Routing. A question handed to a person goes to the household's own people: the
most specific group covering the household (a group covering its village beats
one covering the village's area, which beats one covering the household's
pioneer team), else the township group (``covers_all``), else
``SISONG_WECOM_ROBOT_URL``. A follower not bound to a household goes to the
township group. The household's helper is also told privately, by a
customer-service message, when they have bound their own WeChat and wrote to
the account within the last 48 hours (WeChat allows nothing else).

What a group sees is masked: the village, the household head's family name
(``mask_name``), the question masked, never the household's phone. The helper's
private message carries their own household's details, phone included: they are
the one who calls back.

Sending. Notices are rows (``GroupNotice``) written in the caller's unit of
work, so a notice exists exactly when the hand-over it announces committed.
A sender (the Huey task kicked after the commit, and the sweeper as backstop)
takes a robot's pending rows, merges as many as fit one markdown message
(4096 bytes), sends and marks them sent. WeCom allows 20 robot messages a
minute per group: the sender counts against that (``services.limiter``) and
backs off on WeCom's 45009, leaving the rows for later; nothing is dropped.

Claims: while a sender holds rows, ``holder`` is its token and
``held_until`` the end of its lease; a failed send leaves ``held_until`` at
the end of a back-off (and the reason in ``error``). A row is free when
``sent_at`` is NULL and ``held_until`` is not in the future, and the claim is
one ``UPDATE … WHERE`` that re-checks exactly that, so two senders never take
the same row, and a sender killed mid-send leaves rows that are free again
once its lease ends (at worst that notice reaches the group twice).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot.wecom import RATE_LIMITED, WECOM_MARKDOWN_LIMIT, WeComError, WeComRobot, split_markdown
from knowledge.store.unanswered import window_open
from storage.households import household_of
from storage.models.base import utcnow
from storage.models.org import (
    Cadre,
    GroupNotice,
    Household,
    MessagingGroup,
    Township,
    Village,
    group_areas,
    group_teams,
    group_villages,
)
from storage.privacy import mask_name, mask_text, short_openid

if TYPE_CHECKING:
    from bot.context import Context
    from bot.services import Services

log = logging.getLogger(__name__)

ROBOT_RATE = "20/minute"  # WeCom: 20 messages a minute per group robot
LEASE = timedelta(seconds=30)  # a sender's hold on the rows it is sending (robot timeout is 5 s)
BACKOFF_45009 = timedelta(seconds=60)  # WeCom said "over 20 a minute": wait for the minute to pass
BACKOFF_MAX = timedelta(minutes=10)  # other failures back off 30 s, 60 s, ... up to this
BATCH_ROWS = 100  # rows looked at per message; more than ever fit in 4096 bytes
JOIN = "\n\n"
QUESTION_CHARS = 300  # of a household's question quoted in a notice


@dataclass(frozen=True)
class Target:
    """Where a notice goes: a group's robot (``group_id`` None for ``SISONG_WECOM_ROBOT_URL``)."""

    robot_url: str
    group_id: int | None
    name: str


@dataclass
class Notice:
    """What :func:`notify` queued; :meth:`dispatch` it after the unit of work commits."""

    targets: list[Target] = field(default_factory=list)
    helper_openid: str | None = None
    helper_text: str | None = None

    def dispatch(self, services: "Services") -> None:
        """Kick the senders of these robots and send the helper's message. Call after the commit."""
        for url in dict.fromkeys(t.robot_url for t in self.targets):
            services.queue.send_notices(url)
        if self.helper_openid and self.helper_text:
            services.queue.send_text(self.helper_openid, self.helper_text)


# -- routing ---------------------------------------------------------------------------------

def groups_for(
    session: Session,
    household: Household | None = None,
    village: Village | None = None,
    *,
    township_id: int | None = None,
    fallback_url: str | None = None,
) -> list[Target]:
    """The groups a notice about this household (or village) goes to: the most specific level only.

    Village groups, else area groups, else team groups (a household's), else the
    township's ``covers_all`` groups, else ``fallback_url`` (``SISONG_WECOM_ROBOT_URL``).
    Several groups on the same level all get it; one robot URL is one target.
    An empty list means nobody can be told (no group and no fallback URL).
    """
    if household is not None and village is None:
        village = household.village
    if township_id is None:
        township_id = household.township_id if household is not None else (
            village.township_id if village is not None else None)
    levels = []
    if village is not None:
        levels.append((group_villages, group_villages.c.village_id, village.id))
        if village.area_id is not None:
            levels.append((group_areas, group_areas.c.area_id, village.area_id))
    if household is not None and household.team_id is not None:
        levels.append((group_teams, group_teams.c.team_id, household.team_id))
    columns = (MessagingGroup.id, MessagingGroup.name, MessagingGroup.robot_url)
    for table, column, value in levels:
        query = (select(*columns).join(table, table.c.group_id == MessagingGroup.id)
                 .where(column == value).order_by(MessagingGroup.id))
        if township_id is not None:
            query = query.where(MessagingGroup.township_id == township_id)
        found = _targets(session.execute(query).all())
        if found:
            return found
    query = select(*columns).where(MessagingGroup.covers_all.is_(True)).order_by(MessagingGroup.id)
    if township_id is not None:
        query = query.where(MessagingGroup.township_id == township_id)
    found = _targets(session.execute(query).all())
    if found:
        return found
    return [Target(fallback_url, None, "镇工作群")] if fallback_url else []


def supervisor_groups(session: Session, household: Household, *, fallback_url: str | None = None) -> list[Target]:
    """Where a survey alert about this household goes: the groups of its area that the 督查 team is in,
    else the groups of its area, else the usual routing (``groups_for``)."""
    from storage.models.org import Team

    village = household.village
    if village is not None and village.area_id is not None:
        columns = (MessagingGroup.id, MessagingGroup.name, MessagingGroup.robot_url)
        area_groups = (select(*columns).join(group_areas, group_areas.c.group_id == MessagingGroup.id)
                       .where(group_areas.c.area_id == village.area_id,
                              MessagingGroup.township_id == household.township_id)
                       .order_by(MessagingGroup.id))
        supervised = area_groups.join(group_teams, group_teams.c.group_id == MessagingGroup.id).join(
            Team, Team.id == group_teams.c.team_id).where(Team.name == "督查")
        for query in (supervised, area_groups):
            found = _targets(session.execute(query).all())
            if found:
                return found
    return groups_for(session, household, fallback_url=fallback_url)


def _targets(rows: Sequence[tuple[int, str, str]]) -> list[Target]:
    seen: dict[str, Target] = {}
    for group_id, name, url in rows:
        if url and url.strip() and url.strip() not in seen:
            seen[url.strip()] = Target(url.strip(), group_id, name)
    return list(seen.values())


def _township_id(session: Session, services: "Services") -> int | None:
    return session.scalar(select(Township.id).where(Township.name == services.settings.township))


# -- queueing ----------------------------------------------------------------------------------

def notify(
    session: Session,
    services: "Services",
    markdown: str,
    household: Household | None = None,
    village: Village | None = None,
    *,
    helper_text: str | None = None,
    now: datetime | None = None,
    targets: list[Target] | None = None,
) -> Notice:
    """Queue ``markdown`` (masked) for the groups covering the household or village, in ``session``.

    Nothing is sent here: rows commit with the caller's unit of work, and the
    caller runs ``notice.dispatch(services)`` after the commit. A notice over
    WeCom's 4096 bytes is stored as several rows, each one message. With
    ``helper_text`` the household's helper is told privately too, if they can be.
    """
    if targets is None:
        township_id = None if household is not None or village is not None else _township_id(session, services)
        targets = groups_for(session, household, village, township_id=township_id,
                             fallback_url=services.settings.wecom_robot_url)
    notice = Notice(targets=targets)
    if not targets:
        log.info("no WeCom group covers this notice and SISONG_WECOM_ROBOT_URL is unset: not sent")
    pieces = split_markdown(mask_text(markdown))
    for target in targets:
        for piece in pieces:
            session.add(GroupNotice(group_id=target.group_id, robot_url=target.robot_url, markdown=piece))
    if targets:
        session.flush()
    if helper_text and household is not None:
        openid = helper_openid(session, household.helper, now)
        if openid:
            notice.helper_openid, notice.helper_text = openid, helper_text
    return notice


def queue_notice(services: "Services", robot_url: str, markdown: str, group_id: int | None = None) -> int:
    """Queue a notice for one robot in its own unit of work (not a household's: no routing); rows written."""
    pieces = split_markdown(mask_text(markdown))
    with services.db.session() as session:
        session.add_all([GroupNotice(group_id=group_id, robot_url=robot_url, markdown=p) for p in pieces])
    return len(pieces)


def helper_openid(session: Session, helper: Cadre | None, now: datetime | None = None) -> str | None:
    """The helper's WeChat, if bound, active, and inside the 48-hour window (else None)."""
    if helper is None or not helper.active or not helper.openid:
        return None
    return helper.openid if window_open(session, helper.openid, now) else None


# -- the hand-over notice ------------------------------------------------------------------------

def announce_question(ctx: "Context", title: str, question: str | None, item_id: int) -> Notice:
    """Tell the household's group (and helper) about a question waiting for a person.

    Runs inside the message's unit of work; the notice is sent after it commits.
    """
    household = household_of(ctx.session, ctx.openid)
    markdown = group_markdown(title, question, item_id, household, ctx.openid)
    helper_text = helper_message(title, question, item_id, household) if household is not None else None
    notice = notify(ctx.session, ctx.services, markdown, household=household, helper_text=helper_text)
    services = ctx.services
    ctx.after_commit(lambda: notice.dispatch(services))
    return notice


def _place(household: Household) -> str:
    village = household.village.name if household.village is not None else ""
    hamlet = household.hamlet.name if household.hamlet is not None else ""
    return village + hamlet


def group_markdown(title: str, question: str | None, item_id: int, household: Household | None,
                   openid: str) -> str:
    """The group's notice: where, whose (masked), the question (masked), how to answer. No phone."""
    lines = [f"### {title}"]
    if household is not None:
        lines.append(f"> 村组：{_place(household) or '-'}")
        who = f"> 住户：{mask_name(household.head_name)}"
        helper = household.helper
        if helper is not None:
            who += f"（帮扶责任人：{helper.name}"
            who += f" <@{helper.wecom_userid}>）" if helper.wecom_userid else "）"
        lines.append(who)
    else:
        lines.append(f"> 住户：未绑定（{short_openid(openid)}）")
    if question:
        lines.append(f"> 问题：{mask_text(question[:QUESTION_CHARS])}")
    lines.append(f"> 编号 {item_id}：私下答复 `sisong unanswered reply {item_id} \"答复\"`，"
                 f"或转成常见问题 `sisong faq add --from-unanswered {item_id} \"答案\"`")
    return "\n".join(lines)


def helper_message(title: str, question: str | None, item_id: int, household: Household) -> str:
    """The helper's private message: their own household's details, phone included."""
    lines = [f"【四送助手】您帮扶的户{title.removeprefix('有住户')}：",
             f"户主：{household.head_name}（户编号 {household.number}）",
             f"村组：{_place(household) or '-'}"]
    if household.phone:
        lines.append(f"电话：{household.phone}")
    if question:
        lines.append(f"问题：{mask_text(question[:QUESTION_CHARS])}")
    lines.append(f"待答编号：{item_id}。请尽快联系。")
    return "\n".join(lines)


# -- sending -------------------------------------------------------------------------------------

def _free(now: datetime, dialect: str):  # type: ignore[no-untyped-def]
    """Rows a sender may claim: not sent, no hold (lease or back-off) running at ``now``."""
    return and_(
        GroupNotice.sent_at.is_(None),
        or_(GroupNotice.held_until.is_(None), GroupNotice.held_until < now),
    )


def _free_at(services: "Services", moment: datetime):  # type: ignore[no-untyped-def]
    return _free(moment, services.db.engine.dialect.name)


def flush_notices(services: "Services", now: datetime | None = None) -> int:
    """Send what every robot has waiting (the sweeper's backstop); returns notices sent.

    Cheap when nothing waits: one query on the pending index. A robot that
    fails is logged and left for the next pass; the others still go.
    """
    with services.db.session() as session:
        urls = list(session.scalars(
            select(GroupNotice.robot_url).where(GroupNotice.sent_at.is_(None))
            .distinct().order_by(GroupNotice.robot_url)
        ))
    sent = 0
    for url in urls:
        try:
            sent += send_pending(services, url, now=now)
        except Exception:  # noqa: BLE001 - one robot must not stop the others
            log.exception("group notices not sent for one robot")
    return sent


def send_pending(services: "Services", robot_url: str, now: datetime | None = None) -> int:
    """Send ``robot_url``'s pending notices, merged, within its rate; returns notices sent."""
    sent = 0
    while True:
        batch = _claim(services, robot_url, now)
        if batch is None:
            return sent
        owner, rows = batch
        if not rows:
            continue  # another sender took them between the look and the claim: look again
        done = _send(services, robot_url, owner, rows, now)
        if not done:
            return sent
        sent += done


def _claim(services: "Services", robot_url: str, now: datetime | None) -> tuple[str, list[GroupNotice]] | None:
    """The next merged message's rows, held by a fresh lease; None when none is due or the rate is spent."""
    moment = now or utcnow()
    db = services.db
    with db.session() as session:
        rows = list(session.execute(
            select(GroupNotice.id, GroupNotice.markdown)
            .where(GroupNotice.robot_url == robot_url, _free_at(services, moment))
            .order_by(GroupNotice.id).limit(BATCH_ROWS)
        ).all())
    if not rows:
        return None
    oversized = [row_id for row_id, markdown in rows if _size(markdown) > WECOM_MARKDOWN_LIMIT]
    if oversized:  # written by hand or by older code: make them rows of one message each, then look again
        _split_rows(services, oversized, moment)
        return "", []
    # Test the rate now, count it only for rows this sender actually holds: a sender
    # that loses the race for the rows must not spend one of the group's 20.
    if not services.limiter.would_allow(ROBOT_RATE, "wecom", robot_url):
        return None  # the group had its 20 this minute: the rows wait, merged later
    packed, total = [], 0
    for row_id, markdown in rows:
        size = _size(markdown) + (len(JOIN) if packed else 0)
        if packed and total + size > WECOM_MARKDOWN_LIMIT:
            break
        packed.append(row_id)
        total += size
    owner = secrets.token_hex(8)
    with db.session() as session:
        session.execute(
            update(GroupNotice).where(GroupNotice.id.in_(packed), _free_at(services, moment))
            .values(holder=owner, held_until=moment + LEASE, attempts=GroupNotice.attempts + 1)
            .execution_options(synchronize_session=False)
        )
    with db.session() as session:
        mine = list(session.scalars(
            select(GroupNotice).where(GroupNotice.id.in_(packed), GroupNotice.holder == owner).order_by(GroupNotice.id)
        ))
        session.expunge_all()
    if mine and not services.limiter.allow(ROBOT_RATE, "wecom", robot_url):
        with db.session() as session:  # another sender spent the last of the minute meanwhile
            session.execute(update(GroupNotice).where(GroupNotice.holder == owner)
                            .values(holder=None, held_until=None).execution_options(synchronize_session=False))
        return None
    return owner, mine


def _size(markdown: str) -> int:
    return len(mask_text(markdown).encode("utf-8"))


def _split_rows(services: "Services", ids: list[int], moment: datetime) -> None:
    """Replace each too-long row by rows that each fit one message (claimed first: one splitter)."""
    owner = secrets.token_hex(8)
    with services.db.session() as session:
        session.execute(update(GroupNotice).where(GroupNotice.id.in_(ids), _free_at(services, moment))
                        .values(holder=owner, held_until=moment + LEASE).execution_options(synchronize_session=False))
        held = list(session.scalars(select(GroupNotice).where(GroupNotice.id.in_(ids), GroupNotice.holder == owner)))
        for row in held:
            for piece in split_markdown(mask_text(row.markdown)):
                session.add(GroupNotice(group_id=row.group_id, robot_url=row.robot_url, markdown=piece,
                                        created_at=row.created_at))
            session.execute(delete(GroupNotice).where(GroupNotice.id == row.id))


def _send(services: "Services", robot_url: str, owner: str, rows: list[GroupNotice],
          now: datetime | None) -> int:
    """Post one merged message; settle the rows (sent, or held for a back-off). Returns rows sent."""
    ids = [row.id for row in rows]
    content = JOIN.join(mask_text(row.markdown) for row in rows)
    held_by_me = and_(GroupNotice.id.in_(ids), GroupNotice.holder == owner)
    try:
        WeComRobot(robot_url).send_markdown(content)
    except Exception as exc:  # noqa: BLE001 - WeComError, or a bug: either way the rows wait
        moment = now or utcnow()
        errcode = getattr(exc, "errcode", None)
        if errcode == RATE_LIMITED:
            reason, until = "errcode=45009 over 20 a minute", moment + BACKOFF_45009
            where = and_(GroupNotice.robot_url == robot_url, or_(held_by_me, _free_at(services, moment)))
        else:
            attempts = max(row.attempts for row in rows)
            wait = min(timedelta(seconds=30) * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
            reason, until = mask_text(str(exc))[:200] or type(exc).__name__, moment + wait
            where = held_by_me
        if not isinstance(exc, WeComError):
            log.exception("group notice sender failed")
        log.warning("group notices kept for later (%s): %d", reason, len(ids))
        with services.db.session() as session:
            session.execute(update(GroupNotice).where(where)
                            .values(held_until=until, holder=None, error=reason[:255])
                            .execution_options(synchronize_session=False))
        return 0
    with services.db.session() as session:
        settled = session.execute(
            update(GroupNotice).where(held_by_me).values(sent_at=utcnow(), holder=None, held_until=None, error=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    if settled != len(ids):
        log.warning("a group notice lease ran out while sending: %d notices may reach the group twice",
                    len(ids) - settled)
    return len(ids)


def pending_count(services: "Services", robot_url: str | None = None) -> int:
    """Notices not yet sent (all robots, or one); for tests, health and the console."""
    with services.db.session() as session:
        query = select(func.count()).select_from(GroupNotice).where(GroupNotice.sent_at.is_(None))
        if robot_url is not None:
            query = query.where(GroupNotice.robot_url == robot_url)
        return int(session.scalar(query) or 0)
