"""The push engine's database side: who gets a push, and each delivery row from claim to outcome.

Generic over the purpose (``kind`` + ``ref_id``: a job posting now, a survey
invitation next); what is sent is the purpose's business (``bot.push``).

Why rows and not queue messages: a follower must get one copy of a posting
whatever happens - a cadre pushing twice, WeChat timing out, a worker killed
mid-call. The unique (kind, ref_id, openid) key makes a second copy
impossible to even queue, and the row's state says what is known about its
one send:

``pending`` → ``claimed`` (a sender's owner + lease; not called yet) →
``sending`` (committed *before* the HTTP call) → ``sent`` / ``failed`` /
``unreachable`` / ``skipped``, or back to ``pending`` with ``not_before`` when
WeChat was busy (45009, -1) or could not be reached at all.

A lease that runs out means the worker died. A ``claimed`` row never
reached WeChat and simply goes back to ``pending``. A ``sending`` row may have:
it becomes ``unconfirmed`` (待确认) and is never sent again, except a template
row still inside WeChat's ``client_msg_id`` dedupe window, which goes back to
``pending`` to be sent again with the same id (WeChat delivers one). Every
transition is one ``UPDATE … WHERE`` re-checking the owner and the state, so
two workers and a sweeper can race for a row and only one wins.

The per-row statements on the sending path are built once per dialect (as in
``storage.inbox``): at 20,000 rows, building them per call through the ORM
would cost more than the round trips.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models.base import UTCDateTime, utcnow
from storage.models.followers import Follower
from storage.models.org import Area, Household, HouseholdBinding, Village
from storage.models.pushes import (
    CLAIMED,
    DELIVERED,
    FAILED,
    IN_FLIGHT,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    TEMPLATE,
    UNCONFIRMED,
    UNREACHABLE,
    EarlyReceipt,
    Push,
    PushDelivery,
    PushOptOut,
    PushSender,
)

# Why a candidate was left out when the push was made (push.skipped_detail keys).
ALREADY, UNSUBSCRIBED, OPTED_OUT, NOT_FOLLOWING = "already", "unsubscribed", "opted_out", "not_following"
SKIP_LABELS = {ALREADY: "之前已推送过", UNSUBSCRIBED: "已取消关注", OPTED_OUT: "已退订", NOT_FOLLOWING: "已不再关注（微信告知）"}
# A row put back for transient errors this many times is given up (hours of back-off by then).
MAX_BACKOFFS = 12
# A template row is sent again after a lost worker at most this many times (each within the dedupe window).
MAX_ATTEMPTS = 4


class TargetError(ValueError):
    """The targets name villages or areas that do not exist, or nothing at all; the message is Chinese."""


def new_owner() -> str:
    """A sender's token: the process and a random part (a restarted process gets a new one)."""
    return f"{os.getpid()}:{uuid.uuid4().hex[:12]}"


def client_msg_id(row_id: int, kind: str, ref_id: int) -> str:
    """The id WeChat dedupes a template send on: fixed per delivery row, so a resend carries the same."""
    return f"sisong-{kind}-{ref_id}-{row_id}"


# -- targeting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """What a cadre chose: village names, area names, or the whole township; households with labour only."""

    villages: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    everyone: bool = False
    labour_only: bool = False

    def to_json(self) -> dict[str, object]:
        return {"villages": list(self.villages), "areas": list(self.areas), "all": self.everyone,
                "labour_only": self.labour_only}

    def describe(self) -> str:
        """In Chinese, for notices and the CLI: 全镇 / 青山村、绿水村 / 东片区 (+ 有劳动力的户)."""
        parts = ["全镇"] if self.everyone else []
        if self.areas:
            parts.append("片区：" + "、".join(self.areas))
        if self.villages:
            parts.append("、".join(self.villages))
        text = "；".join(parts) or "（无）"
        return text + ("（只推有劳动力的户）" if self.labour_only else "")


def resolve_villages(session: Session, township_id: int, targets: Targets) -> list[Village] | None:
    """The villages the targets cover (None: the whole township). Unknown names raise TargetError."""
    if targets.everyone:
        if targets.villages or targets.areas:
            raise TargetError("--all 是全镇，不能再同时指定村或片区。")
        return None
    if not targets.villages and not targets.areas:
        raise TargetError("请指定推送范围：--village 村名（可多个）、--area 片区（可多个），或 --all 全镇。")
    found: dict[int, Village] = {}
    missing: list[str] = []
    for name in targets.villages:
        village = session.scalar(select(Village).where(Village.township_id == township_id, Village.name == name))
        if village is None:
            missing.append(f"村「{name}」")
        else:
            found[village.id] = village
    for name in targets.areas:
        area = session.scalar(select(Area).where(Area.township_id == township_id, Area.name == name))
        if area is None:
            missing.append(f"片区「{name}」")
            continue
        for village in session.scalars(select(Village).where(Village.area_id == area.id)):
            found[village.id] = village
    if missing:
        raise TargetError(f"没有{'、'.join(missing)}。请检查名字（sisong households list 可以看到村名）。")
    return sorted(found.values(), key=lambda v: v.id)


@dataclass(frozen=True)
class Candidate:
    openid: str
    household_id: int
    village_id: int
    reason: str | None  # why left out (ALREADY, UNSUBSCRIBED, …), None: a recipient


def candidates(session: Session, township_id: int, village_ids: Sequence[int] | None, *, kind: str,
               ref_id: int, labour_only: bool = False) -> list[Candidate]:
    """Bound followers of the households in these villages (all when None), each with why it is skipped.

    One query: households → bindings → the follower row (subscribed? reachable?),
    the household's opt-out of ``kind``, and whether this follower already has a
    row for this purpose (pushed before). A binding without a follower row is
    someone WeChat never told us about: skipped as not following.
    """
    opted = exists().where(PushOptOut.household_id == Household.id, PushOptOut.kind == kind)
    already = exists().where(PushDelivery.kind == kind, PushDelivery.ref_id == ref_id,
                             PushDelivery.openid == HouseholdBinding.openid)
    query = (
        select(HouseholdBinding.openid, Household.id, Household.village_id, Follower.subscribed,
               Follower.unreachable_reason, opted.label("opted"), already.label("already"))
        .join(Household, Household.id == HouseholdBinding.household_id)
        .outerjoin(Follower, Follower.openid == HouseholdBinding.openid)
        .where(Household.township_id == township_id)
        .order_by(Household.village_id, Household.id, HouseholdBinding.id)
    )
    if village_ids is not None:
        query = query.where(Household.village_id.in_(list(village_ids)))
    if labour_only:
        query = query.where(Household.labourers > 0)
    found = []
    for openid, household_id, village_id, subscribed, unreachable, opted_out, pushed in session.execute(query):
        reason = None
        if pushed:
            reason = ALREADY
        elif subscribed is None or unreachable == "not_following":
            reason = NOT_FOLLOWING
        elif not subscribed:
            reason = UNSUBSCRIBED
        elif opted_out:
            reason = OPTED_OUT
        found.append(Candidate(openid, household_id, village_id, reason))
    return found


@dataclass
class PushCreated:
    push: Push
    recipients: int
    skipped: dict[str, int] = field(default_factory=dict)


def create_push(session: Session, *, kind: str, ref_id: int, targets: Targets, found: list[Candidate],
                actor: str, user_id: int | None = None) -> PushCreated:
    """The push row and one delivery row per new recipient, in the caller's unit of work.

    ``ON CONFLICT DO NOTHING`` on (kind, ref_id, openid): a follower another push
    of the same purpose reached (or is reaching) in the meantime gets no
    second row, even if two cadres push at the same moment.
    """
    skipped = Counter(c.reason for c in found if c.reason)
    push = Push(kind=kind, ref_id=ref_id, targets=json.dumps(targets.to_json(), ensure_ascii=False),
                actor=actor[:64], user_id=user_id, candidates=len(found))
    session.add(push)
    session.flush()
    now = utcnow()
    rows = [{"push_id": push.id, "kind": kind, "ref_id": ref_id, "openid": c.openid, "household_id": c.household_id,
             "village_id": c.village_id, "status": PENDING, "attempts": 0, "backoffs": 0, "created_at": now}
            for c in found if c.reason is None]
    if rows:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(PushDelivery).on_conflict_do_nothing(index_elements=["kind", "ref_id", "openid"])
        for start in range(0, len(rows), 2000):
            session.execute(stmt, rows[start:start + 2000])
    added = int(session.scalar(select(func.count()).select_from(PushDelivery)
                               .where(PushDelivery.push_id == push.id)) or 0)
    if added < len(rows):
        skipped[ALREADY] += len(rows) - added
    push.recipients = added
    push.skipped = sum(skipped.values())
    push.skipped_detail = json.dumps(dict(skipped), ensure_ascii=False)
    return PushCreated(push, added, dict(skipped))


# -- the sending path: claim, mark, complete ----------------------------------------------------


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    push_id: int
    kind: str
    ref_id: int
    openid: str
    household_id: int | None
    channel: str | None
    client_msg_id: str | None
    first_sent_at: datetime | None
    attempts: int
    backoffs: int


_STATEMENTS: dict[tuple[str, str], Any] = {}
_COLUMNS = ("id", "push_id", "kind", "ref_id", "openid", "household_id", "channel", "client_msg_id",
            "first_sent_at", "attempts", "backoffs")


def _statement(dialect: str, name: str) -> Any:
    stmt = _STATEMENTS.get((dialect, name))
    if stmt is None:
        stmt = _STATEMENTS[(dialect, name)] = _BUILDERS[name](dialect)
    return stmt


def _build_claim(dialect: str) -> Any:
    table = PushDelivery.__table__
    now = bindparam("p_now", type_=UTCDateTime())
    due = (
        select(table.c.id)
        .where(table.c.status == PENDING, or_(table.c.not_before.is_(None), table.c.not_before <= now))
        .order_by(table.c.id).limit(bindparam("p_limit"))
    )
    if dialect == "postgresql":
        # Two workers claim disjoint rows without waiting. A CTE, not ``IN (subquery)``: PostgreSQL may
        # run an IN subquery again per row, and its LIMIT then holds per run, not for the statement.
        due = due.with_for_update(skip_locked=True).cte("due")
        return (
            update(table).where(table.c.id == due.c.id, table.c.status == PENDING)
            .values(status=CLAIMED, owner=bindparam("p_owner"),
                    lease_until=bindparam("p_lease_until", type_=UTCDateTime()))
            .returning(*(table.c[name] for name in _COLUMNS))
        )
    return (  # SQLite has one writer at a time: the statement is atomic as it is
        update(table).where(table.c.id.in_(due.scalar_subquery()), table.c.status == PENDING)
        .values(status=CLAIMED, owner=bindparam("p_owner"),
                lease_until=bindparam("p_lease_until", type_=UTCDateTime()))
        .returning(*(table.c[name] for name in _COLUMNS))
    )


def _build_begin(dialect: str) -> Any:
    table = PushDelivery.__table__
    now = bindparam("p_now", type_=UTCDateTime())
    is_template = bindparam("p_channel") == TEMPLATE
    return (
        update(table)
        .where(table.c.id == bindparam("p_id"), table.c.owner == bindparam("p_owner"),
               table.c.status == bindparam("p_from"),
               or_(table.c.status == SENDING, table.c.lease_until >= now))
        .values(status=SENDING, channel=bindparam("p_channel"), client_msg_id=bindparam("p_client_msg_id"),
                first_sent_at=case((and_(is_template, table.c.first_sent_at.is_(None)), now),
                                   else_=table.c.first_sent_at),
                attempts=table.c.attempts + 1,
                lease_until=bindparam("p_lease_until", type_=UTCDateTime()))
    )


def _build_complete(dialect: str) -> Any:
    table = PushDelivery.__table__
    back = bindparam("c_status") == PENDING
    forget = bindparam("c_forget") == True  # noqa: E712 - a SQL comparison
    return (
        update(table)
        .where(table.c.id == bindparam("c_id"), table.c.owner == bindparam("c_owner"),
               # ORs, not IN: an expanding IN cannot be used with executemany.
               or_(table.c.status == CLAIMED, table.c.status == SENDING, table.c.status == UNCONFIRMED))
        .values(status=bindparam("c_status"), errcode=bindparam("c_errcode"), error=bindparam("c_error"),
                msgid=func.coalesce(bindparam("c_msgid"), table.c.msgid),
                sent_at=bindparam("c_sent_at", type_=UTCDateTime()),
                not_before=bindparam("c_not_before", type_=UTCDateTime()),
                backoffs=table.c.backoffs + case((bindparam("c_counted") == True, 1), else_=0),  # noqa: E712
                owner=case((back, None), else_=table.c.owner),
                client_msg_id=case((forget, None), else_=table.c.client_msg_id),
                first_sent_at=case((forget, None), else_=table.c.first_sent_at),
                lease_until=None)
    )


_BUILDERS = {"claim": _build_claim, "begin": _build_begin, "complete": _build_complete}


def _dialect(conn: Connection) -> str:
    return conn.dialect.name


_PG_CLAIM = (
    "WITH due AS (SELECT id FROM push_deliveries WHERE status = 'pending'"
    " AND (not_before IS NULL OR not_before <= %(p_now)s::timestamptz)"
    " ORDER BY id LIMIT %(p_limit)s::integer FOR UPDATE SKIP LOCKED)"
    " UPDATE push_deliveries d SET status = 'claimed', owner = %(p_owner)s::varchar,"
    " lease_until = %(p_lease_until)s::timestamptz FROM due WHERE d.id = due.id AND d.status = 'pending'"
    " RETURNING d.id, d.push_id, d.kind, d.ref_id, d.openid, d.household_id, d.channel, d.client_msg_id,"
    " d.first_sent_at, d.attempts, d.backoffs"
)


def claim(db: Database, owner: str, limit: int, lease: float, now: datetime | None = None) -> list[ClaimedRow]:
    """Take up to ``limit`` due rows (oldest first) for ``owner``; committed before anything is sent."""
    now = now or utcnow()
    params = {"p_now": now, "p_limit": limit, "p_owner": owner, "p_lease_until": now + timedelta(seconds=lease)}
    if db.engine.dialect.name == "postgresql":
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute(_PG_CLAIM, params)
                found = cur.fetchall()
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        return sorted((ClaimedRow(*row) for row in found), key=lambda r: r.id)
    with db.engine.begin() as conn:
        rows = conn.execute(_statement(_dialect(conn), "claim"), {
            "p_now": now, "p_limit": limit, "p_owner": owner, "p_lease_until": now + timedelta(seconds=lease),
        }).all()
    return sorted((ClaimedRow(*row) for row in rows), key=lambda r: r.id)


@dataclass(frozen=True)
class Completion:
    """The outcome of one row's attempt (or a decision not to call), written in batches.

    ``counted``: a back-off that counts toward MAX_BACKOFFS (a pause the whole
    account is under, or a resend after a timeout, does not). ``forget_id``:
    WeChat answered that nothing was sent and no earlier attempt is in doubt,
    so the row goes back as if never tried: its next send may pick the channel
    afresh, and the dedupe window of a ``client_msg_id`` no longer binds it.
    """

    id: int
    owner: str
    status: str
    errcode: int | None = None
    error: str | None = None
    msgid: str | None = None
    sent_at: datetime | None = None
    not_before: datetime | None = None
    counted: bool = False
    forget_id: bool = False

    def params(self) -> dict[str, Any]:
        return {"c_id": self.id, "c_owner": self.owner, "c_status": self.status, "c_errcode": self.errcode,
                "c_error": (self.error or None) and self.error[:255], "c_msgid": self.msgid,
                "c_sent_at": self.sent_at, "c_not_before": self.not_before,
                "c_counted": self.status == PENDING and self.counted,
                "c_forget": self.status == PENDING and self.forget_id}


def write_completions(conn: Connection, completions: Sequence[Completion]) -> int:
    """Settle rows in one executemany; a row another sender or the sweeper took meanwhile is left alone."""
    if not completions:
        return 0
    result = conn.execute(_statement(_dialect(conn), "complete"), [c.params() for c in completions])
    return int(result.rowcount or 0)


# The sending path's statements as plain SQL for psycopg on PostgreSQL: at 20,000 sends in 30 s the
# sender is CPU-bound, and SQLAlchemy's execution path cost more than the round trips. The sender's
# connections are in autocommit (``bot.push``), so each statement is its own transaction and one round
# trip: no BEGIN, no COMMIT. Outcomes of earlier sends ride in the same statement as the next row's
# ``sending`` mark, as arrays (one ``UPDATE … FROM unnest(…)``, a data-modifying CTE).
_PG_COMPLETE = (
    "UPDATE push_deliveries d SET status = c.status, errcode = c.errcode, error = c.error,"
    " msgid = COALESCE(c.msgid, d.msgid), sent_at = c.sent_at, not_before = c.not_before,"
    " backoffs = d.backoffs + CASE WHEN c.counted THEN 1 ELSE 0 END,"
    " owner = CASE WHEN c.status = 'pending' THEN NULL ELSE d.owner END,"
    " client_msg_id = CASE WHEN c.forget THEN NULL ELSE d.client_msg_id END,"
    " first_sent_at = CASE WHEN c.forget THEN NULL ELSE d.first_sent_at END, lease_until = NULL"
    " FROM unnest(%(c_id)s::integer[], %(c_owner)s::varchar[], %(c_status)s::varchar[], %(c_errcode)s::integer[],"
    " %(c_error)s::varchar[], %(c_msgid)s::varchar[], %(c_sent_at)s::timestamptz[],"
    " %(c_not_before)s::timestamptz[], %(c_counted)s::boolean[], %(c_forget)s::boolean[])"
    " AS c(id, owner, status, errcode, error, msgid, sent_at, not_before, counted, forget)"
    " WHERE d.id = c.id AND d.owner = c.owner AND d.status IN ('claimed', 'sending', 'unconfirmed')"
)
_PG_BEGIN_SET = (
    " SET status = 'sending', channel = s.channel, client_msg_id = s.cmid,"
    " first_sent_at = CASE WHEN s.channel = 'template' AND d.first_sent_at IS NULL"
    " THEN %(p_now)s::timestamptz ELSE d.first_sent_at END,"
    " attempts = d.attempts + 1, lease_until = %(p_lease_until)s::timestamptz"
    " FROM unnest(%(s_id)s::integer[], %(s_channel)s::varchar[], %(s_cmid)s::varchar[]) AS s(id, channel, cmid)"
    " WHERE d.id = s.id AND d.owner = %(p_owner)s::varchar AND d.status = %(p_from)s::varchar"
    " AND (d.status = 'sending' OR d.lease_until >= %(p_now)s::timestamptz) RETURNING d.id"
)
_PG_BEGIN = "UPDATE push_deliveries d" + _PG_BEGIN_SET
# The CTE and the outer UPDATE never touch the same row (a row being begun has no outcome queued).
_PG_COMPLETE_AND_BEGIN = "WITH done AS (" + _PG_COMPLETE + " RETURNING d.id) UPDATE push_deliveries d" + _PG_BEGIN_SET


def _pg_arrays(completions: Sequence[Completion]) -> dict[str, list[Any]]:
    params = [c.params() for c in completions]
    return {key: [p[key] for p in params] for key in params[0]}


def _pg_send(db: Database, completions: Sequence[Completion], begin: dict[str, Any] | None) -> set[int]:
    """``begin_send`` / ``complete`` on PostgreSQL: one statement on an autocommit connection."""
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            if begin is None:
                cur.execute(_PG_COMPLETE, _pg_arrays(completions))
                started: set[int] = set()
            else:
                cur.execute(_PG_COMPLETE_AND_BEGIN if completions else _PG_BEGIN,
                            {**_pg_arrays(completions), **begin} if completions else begin)
                started = {int(row[0]) for row in cur.fetchall()}
        raw.commit()  # nothing to do in autocommit; a connection from any other pool commits here
        return started
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


@dataclass(frozen=True)
class Start:
    """A row about to be sent: its channel and, for a template, the ``client_msg_id`` it goes with."""

    id: int
    channel: str
    client_msg_id: str | None = None


def begin_send(db: Database, starts: Sequence[Start], owner: str, lease: float,
               completions: Sequence[Completion] = (), *, continuing: bool = False) -> set[int]:
    """Mark rows ``sending`` (committed) right before their HTTP calls; returns the ids that are still ours.

    Outcomes of earlier calls ride along in the same statement, so sends cost
    one commit per batch, not two per row. Only a ``claimed`` row whose lease
    still runs may start: the owner is per process, so a row whose claim
    expired while its task queued, and that this process then claimed again,
    must not start twice. ``continuing``: the same call's second channel (a
    custom message refused with 45015 going out as a template), from
    ``sending``.

    Several rows are marked at once only when a lost mark-without-call is
    harmless: templates, which go out again with the same ``client_msg_id``
    (``recover_stale``). A customer-service row is marked alone, just before
    its own call.
    """
    if not starts:
        if completions:
            complete(db, completions)
        return set()
    now = utcnow()
    start_from = SENDING if continuing else CLAIMED
    params = {"p_owner": owner, "p_now": now, "p_from": start_from, "p_lease_until": now + timedelta(seconds=lease)}
    if db.engine.dialect.name == "postgresql":
        return _pg_send(db, completions, {**params, "s_id": [s.id for s in starts],
                                          "s_channel": [s.channel for s in starts],
                                          "s_cmid": [s.client_msg_id for s in starts]})
    started = set()
    with db.engine.begin() as conn:
        write_completions(conn, completions)
        statement = _statement(_dialect(conn), "begin")
        for start in starts:
            if conn.execute(statement, {**params, "p_id": start.id, "p_channel": start.channel,
                                        "p_client_msg_id": start.client_msg_id}).rowcount:
                started.add(start.id)
    return started


def complete(db: Database, completions: Sequence[Completion]) -> int:
    if not completions:
        return 0
    if db.engine.dialect.name == "postgresql":
        _pg_send(db, completions, None)
        return len(completions)
    with db.engine.begin() as conn:
        return write_completions(conn, completions)


def recipient_facts(db: Database,
                    rows: Sequence[ClaimedRow]) -> tuple[dict[str, tuple[Any, ...]], set[tuple[int, str]]]:
    """For claimed rows: each follower's (subscribed, unreachable_reason, last_interaction), and the
    (household, kind) opt-outs among them. Two reads per batch, plain SQL on PostgreSQL."""
    openids = list({row.openid for row in rows})
    households = list({row.household_id for row in rows if row.household_id})
    if db.engine.dialect.name == "postgresql":
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT openid, subscribed, unreachable_reason, last_interaction FROM followers"
                            " WHERE openid = ANY(%s)", (openids,))
                facts = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
                cur.execute("SELECT household_id, kind FROM push_optouts WHERE household_id = ANY(%s)",
                            (households,))
                opted = {(int(h), str(k)) for h, k in cur.fetchall()}
            raw.commit()
        finally:
            raw.close()
        return facts, opted
    with db.engine.connect() as conn:
        facts = {r[0]: tuple(r[1:]) for r in conn.execute(
            select(Follower.openid, Follower.subscribed, Follower.unreachable_reason, Follower.last_interaction)
            .where(Follower.openid.in_(openids)))}
        opted = {(int(h), str(k)) for h, k in conn.execute(
            select(PushOptOut.household_id, PushOptOut.kind).where(PushOptOut.household_id.in_(households)))}
    return facts, opted


# -- recovery (the sweeper, and every drain before it starts) -----------------------------------


@dataclass
class Recovered:
    requeued: int = 0  # claimed rows whose sender died before calling: pending again
    resend: int = 0  # template rows within the dedupe window: pending, same client_msg_id
    unconfirmed: int = 0  # rows whose call may or may not have gone out

    def __bool__(self) -> bool:
        return bool(self.requeued or self.resend or self.unconfirmed)


def recover_stale(db: Database, dedupe_window: float, template_ok: bool = True, now: datetime | None = None,
                  dead_after: float | None = None) -> Recovered:
    """Rows whose sender is gone: requeue what never reached WeChat, settle what may have.

    A sender is gone when its lease on the row ran out, or (``dead_after``)
    when its heartbeat stopped that long ago: a killed worker's rows come
    back within seconds. Taking a live but frozen sender for dead is safe:
    every later step of its own re-checks the owner and the state, so it can
    neither start a requeued row nor overwrite another sender's outcome.
    Three ``UPDATE … WHERE`` statements; a second sweeper running at the same
    moment finds nothing left to do.
    """
    now = now or utcnow()
    table = PushDelivery.__table__
    stale = and_(table.c.lease_until.is_not(None), table.c.lease_until < now)
    if dead_after is not None:
        # On PostgreSQL the heartbeat is the server's clock on both sides (senders may run on other hosts).
        clock = func.now() if db.engine.dialect.name == "postgresql" else now
        dead = select(PushSender.owner).where(PushSender.seen_at < clock - timedelta(seconds=dead_after))
        stale = or_(stale, and_(table.c.lease_until.is_not(None), table.c.owner.in_(dead.scalar_subquery())))
    done = Recovered()
    with db.engine.connect() as conn:  # a read first: every sweeper asks every pass, and on SQLite
        held = conn.execute(  # a write (even of nothing) would queue on the process's writer lock
            select(table.c.id).where(table.c.status.in_((CLAIMED, SENDING)), stale).limit(1)).first()
    if held is None:
        return done
    with db.engine.begin() as conn:
        done.requeued = conn.execute(
            update(table).where(table.c.status == CLAIMED, stale)
            .values(status=PENDING, owner=None, lease_until=None)
        ).rowcount or 0
        if template_ok and dedupe_window > 0:
            done.resend = conn.execute(
                update(table).where(
                    table.c.status == SENDING, stale, table.c.channel == TEMPLATE,
                    table.c.client_msg_id.is_not(None),
                    table.c.first_sent_at >= now - timedelta(seconds=dedupe_window),
                    table.c.attempts < MAX_ATTEMPTS,
                ).values(status=PENDING, owner=None, lease_until=None,
                         error="发送进程中断，在微信去重时限内用同一编号重发")
            ).rowcount or 0
        done.unconfirmed = conn.execute(
            update(table).where(table.c.status == SENDING, stale)
            .values(status=UNCONFIRMED, lease_until=None, error="发送进程中断，不知道是否已发出")
        ).rowcount or 0
    return done


def heartbeat(db: Database, owner: str) -> None:
    """This sender is alive (once a second while it drains); the database's clock on PostgreSQL."""
    now: Any = func.now() if db.engine.dialect.name == "postgresql" else utcnow()
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(PushSender).values(owner=owner, seen_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["owner"], set_={"seen_at": now})
    with db.engine.begin() as conn:
        conn.execute(stmt)


def sign_off(db: Database, owner: str) -> None:
    """A sender stopping cleanly: its heartbeat row goes, and claims it never started go back at once.
    Old heartbeats of senders that died (a day and more) are cleared on the way."""
    table = PushDelivery.__table__
    with db.engine.begin() as conn:
        conn.execute(update(table).where(table.c.status == CLAIMED, table.c.owner == owner)
                     .values(status=PENDING, owner=None, lease_until=None))
        conn.execute(PushSender.__table__.delete().where(
            or_(PushSender.owner == owner, PushSender.seen_at < utcnow() - timedelta(days=1))))


def due(db: Database, now: datetime | None = None) -> bool:
    """Whether a row is waiting for a sender now (one indexed lookup; the sweeper asks every pass)."""
    now = now or utcnow()
    with db.engine.connect() as conn:
        return conn.execute(
            select(PushDelivery.id).where(PushDelivery.status == PENDING,
                                          or_(PushDelivery.not_before.is_(None), PushDelivery.not_before <= now))
            .limit(1)
        ).first() is not None


def in_flight(db: Database, push_ids: Iterable[int] | None = None) -> int:
    """Rows not settled yet (pending, claimed, sending), of these pushes or all."""
    query = select(func.count()).select_from(PushDelivery).where(PushDelivery.status.in_(IN_FLIGHT))
    if push_ids is not None:
        query = query.where(PushDelivery.push_id.in_(list(push_ids)))
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def next_due_at(db: Database, push_ids: Iterable[int] | None = None) -> datetime | None:
    """When the earliest backed-off row (of these pushes, or any) may go again; None: none is waiting."""
    query = select(func.min(PushDelivery.not_before)).where(PushDelivery.status == PENDING)
    if push_ids is not None:
        query = query.where(PushDelivery.push_id.in_(list(push_ids)))
    with db.engine.connect() as conn:
        return conn.execute(query).scalar()


def only_waiting_past(db: Database, push_ids: Iterable[int], until: datetime) -> bool:
    """Whether every unsettled row of these pushes is on a back-off that ends after ``until`` (the day's
    quota used up, say): someone waiting for the push to finish can stop and say when it resumes."""
    ids = list(push_ids)
    other = select(PushDelivery.id).where(
        PushDelivery.push_id.in_(ids), PushDelivery.status.in_(IN_FLIGHT),
        or_(PushDelivery.status != PENDING, PushDelivery.not_before.is_(None), PushDelivery.not_before <= until),
    ).limit(1)
    with db.engine.connect() as conn:
        return conn.execute(other).first() is None


# -- progress, results, receipts ----------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    push_id: int
    kind: str
    ref_id: int
    recipients: int
    skipped_at_push: int
    by_status: dict[str, int]
    finished: bool

    @property
    def sent(self) -> int:
        return self.by_status.get(SENT, 0) + self.by_status.get(DELIVERED, 0)

    @property
    def failed(self) -> int:
        return self.by_status.get(FAILED, 0) + self.by_status.get(UNREACHABLE, 0)

    @property
    def unconfirmed(self) -> int:
        return self.by_status.get(UNCONFIRMED, 0)

    @property
    def skipped(self) -> int:
        return self.skipped_at_push + self.by_status.get(SKIPPED, 0)

    @property
    def waiting(self) -> int:
        return sum(self.by_status.get(s, 0) for s in IN_FLIGHT)

    @property
    def done(self) -> int:
        return self.recipients - self.waiting

    def to_json(self) -> dict[str, object]:
        """The contract of ``jobs push --wait --json`` (docs/jobs.md), plus the finer counts."""
        return {"push": self.push_id, "recipients": self.recipients, "sent": self.sent, "failed": self.failed,
                "skipped": self.skipped, "unconfirmed": self.unconfirmed,
                "unreachable": self.by_status.get(UNREACHABLE, 0), "delivered": self.by_status.get(DELIVERED, 0),
                "pending": self.waiting, "finished": self.finished}


def progress(session: Session, push_id: int) -> Progress | None:
    push = session.get(Push, push_id)
    if push is None:
        return None
    counts = dict(session.execute(
        select(PushDelivery.status, func.count()).where(PushDelivery.push_id == push_id).group_by(PushDelivery.status)
    ).all())
    waiting = sum(counts.get(s, 0) for s in IN_FLIGHT)
    return Progress(push.id, push.kind, push.ref_id, push.recipients, push.skipped, counts,
                    push.finished_at is not None or waiting == 0)


def finishable(session: Session) -> list[int]:
    """Pushes every row of which is settled but that were not announced as finished yet."""
    busy = exists().where(PushDelivery.push_id == Push.id, PushDelivery.status.in_(IN_FLIGHT))
    return list(session.scalars(select(Push.id).where(Push.finished_at.is_(None), ~busy).order_by(Push.id)))


def mark_finished(session: Session, push_id: int) -> bool:
    """Take the right to announce ``push_id``'s result: True for exactly one caller."""
    done = session.execute(
        update(Push).where(Push.id == push_id, Push.finished_at.is_(None)).values(finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(done)


# TEMPLATESENDJOBFINISH Status → (row status, the reason kept on the row).
RECEIPTS = {
    "success": (DELIVERED, None),
    "failed:user block": (FAILED, "用户拒收（failed:user block）"),
    "failed: system failed": (FAILED, "微信发送失败（failed: system failed）"),
    "failed:system failed": (FAILED, "微信发送失败（failed: system failed）"),
    "failed:freq limit": (FAILED, "发送太频繁被微信拦下（failed:freq limit）"),
}


def record_receipt(session: Session, msgid: str, status: str, *, keep: bool = True) -> bool:
    """A template's delivery receipt, found by its msgid; True if a row took it.

    Any ``failed…`` status WeChat invents later counts as failed, kept
    verbatim. A receipt no row takes yet is kept (``keep``): the row's msgid
    is written a moment after the call, in a batch, and WeChat may be faster;
    ``apply_early_receipts`` tries it again.
    """
    key = (status or "").strip()
    outcome = RECEIPTS.get(key.lower())
    if outcome is None:
        outcome = (FAILED, f"微信回执：{key[:60]}") if key.lower().startswith("failed") else (DELIVERED, None)
    row_status, reason = outcome
    values: dict[str, Any] = {"receipt": key[:32], "receipt_at": utcnow(), "status": row_status}
    if reason:
        values["error"] = reason
    done = session.execute(
        update(PushDelivery)
        .where(PushDelivery.msgid == str(msgid), PushDelivery.channel == TEMPLATE,
               PushDelivery.status.in_((SENT, DELIVERED, FAILED)))
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if not done and keep:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(EarlyReceipt).values(msgid=str(msgid)[:32], status=key[:32],
                                                            received_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["msgid"]))
    return bool(done)


def apply_early_receipts(db: Database, max_age: timedelta = timedelta(days=1)) -> int:
    """Receipts kept because their row had no msgid yet: apply those whose row has one now; drop those
    older than ``max_age`` (a template sent from elsewhere, say). Returns how many were applied."""
    with db.engine.connect() as conn:
        if conn.execute(select(EarlyReceipt.msgid).limit(1)).first() is None:
            return 0
    applied = 0
    with db.session() as session:
        for receipt in session.scalars(select(EarlyReceipt).order_by(EarlyReceipt.received_at).limit(500)):
            if record_receipt(session, receipt.msgid, receipt.status, keep=False):
                applied += 1
                session.delete(receipt)
            elif receipt.received_at < utcnow() - max_age:
                session.delete(receipt)
    return applied


def last_sent(session: Session, openid: str, kind: str, since: datetime) -> tuple[int, datetime] | None:
    """The purpose (ref_id) of this follower's latest send of ``kind`` since ``since``, and when."""
    row = session.execute(
        select(PushDelivery.ref_id, PushDelivery.sent_at)
        .where(PushDelivery.openid == openid, PushDelivery.kind == kind,
               PushDelivery.status.in_((SENT, DELIVERED)), PushDelivery.sent_at >= since)
        .order_by(PushDelivery.sent_at.desc()).limit(1)
    ).first()
    return (int(row[0]), row[1]) if row else None


# -- opt-outs ------------------------------------------------------------------------------------


def opted_out(session: Session, household_id: int, kind: str) -> bool:
    return session.scalar(select(literal(True)).where(
        PushOptOut.household_id == household_id, PushOptOut.kind == kind)) is not None


def set_opt_out(session: Session, household_id: int, kind: str, out: bool, openid: str | None = None) -> bool:
    """Opt the household out of (or back into) ``kind``; True if that changed anything."""
    if out:
        if opted_out(session, household_id, kind):
            return False
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(PushOptOut).values(household_id=household_id, kind=kind, openid=openid,
                                                          created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["household_id", "kind"]))
        return True
    result = session.execute(
        PushOptOut.__table__.delete().where(PushOptOut.household_id == household_id, PushOptOut.kind == kind))
    return bool(result.rowcount)


__all__ = [
    "ALREADY", "FAILED", "NOT_FOLLOWING", "OPTED_OUT", "SKIP_LABELS", "SKIPPED", "UNREACHABLE", "UNSUBSCRIBED",
    "apply_early_receipts", "begin_send", "candidates", "claim", "ClaimedRow", "client_msg_id", "complete",
    "Completion", "create_push", "due", "finishable", "heartbeat", "in_flight", "last_sent", "mark_finished",
    "new_owner", "next_due_at", "only_waiting_past", "opted_out", "progress", "Progress", "PushCreated",
    "record_receipt", "recover_stale", "Recovered", "resolve_villages", "set_opt_out", "sign_off", "Start",
    "TargetError", "Targets", "write_completions",
]
