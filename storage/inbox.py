"""The inbox: each inbound message's row in ``message_log``, from claim to settlement.

Why a database row and not only a Redis key: a message must survive a web
worker killed mid-answer, and must be answered once even when Redis is down.
So the row is written (committed) *before* the handler runs; the unique
``dedupe_key`` makes a second claim impossible; ``owner`` + ``lease_until``
let a WeChat retry or the sweeper take over a claim whose worker died; and
the handler's unit of work only commits if its claim is still its own
(:func:`settle`), so a slow first attempt and a takeover can never both
commit. Statuses are listed in :mod:`storage.models.messages`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models.base import UTCDateTime, utcnow
from storage.models.messages import (
    ANSWERED,
    BUSY,
    FAILED,
    OWED,
    RECEIVED,
    SENDING,
    SETTLED,
    UNDELIVERABLE,
    MessageLog,
)

# A customer-service message can only be sent within 48 hours of the follower's message.
REPLY_WINDOW = timedelta(hours=47)


class LostClaim(Exception):
    """Another worker took this message over (our lease ran out); our work must not commit."""


def new_owner() -> str:
    """A token unique to one attempt at one message (host process + random)."""
    return f"{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class InboxRow:
    id: int
    status: str
    owner: str | None
    attempts: int
    lease_until: datetime | None
    payload: str | None = None
    openid: str | None = None

    def mine(self, owner: str) -> bool:
        return self.owner == owner and self.status == RECEIVED


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(MessageLog)


_ROW = (MessageLog.id, MessageLog.status, MessageLog.owner, MessageLog.attempts, MessageLog.lease_until)


def claim(
    session: Session,
    *,
    key: str,
    owner: str,
    lease: float,
    openid: str,
    msg_type: str,
    event: str | None,
    msg_id: str | None,
    text: str | None,
    payload: str,
    attempts: int = 1,
) -> InboxRow:
    """Insert the message's row, or take over a claim whose lease ran out; one statement.

    Returns the row as it now stands: ``row.mine(owner)`` says whether this
    attempt may answer. ``text`` must already be masked; ``payload`` is the
    clear inbound XML, kept until the message is settled. ``attempts``: the attempts it already had
    (a claim moved here from Redis keeps its count, so a message that kills workers is still given up).
    """
    now = utcnow()
    conn = session.connection()
    row = conn.execute(_statement(conn.dialect.name, "claim"), {
        "p_now": now, "p_lease_until": now + timedelta(seconds=lease), "p_openid": openid, "p_msg_type": msg_type,
        "p_event": event, "p_msg_id": msg_id, "p_text": text, "p_key": key, "p_owner": owner, "p_payload": payload,
        "p_attempts": attempts,
    }).first()
    if row is None:  # a retry while the first attempt is alive, or after it settled
        row = session.execute(select(*_ROW).where(MessageLog.dedupe_key == key)).one()
    return InboxRow(*row)


# Statements on the per-message path are built once per dialect: constructing them
# per call (ORM DML, coercion, cache keys) cost more than their round trips.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(dialect: str, name: str) -> Any:
    stmt = _STATEMENTS.get((dialect, name))
    if stmt is None:
        stmt = _STATEMENTS[(dialect, name)] = _BUILDERS[name](dialect)
    return stmt


def _build_claim(dialect: str) -> Any:
    table = MessageLog.__table__
    now, lease_until = bindparam("p_now", type_=UTCDateTime()), bindparam("p_lease_until", type_=UTCDateTime())
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(
        created_at=now, direction="in", openid=bindparam("p_openid"), msg_type=bindparam("p_msg_type"),
        event=bindparam("p_event"), msg_id=bindparam("p_msg_id"), text=bindparam("p_text"), channel="passive",
        dedupe_key=bindparam("p_key"), status=RECEIVED, owner=bindparam("p_owner"), lease_until=lease_until,
        attempts=bindparam("p_attempts"), payload=bindparam("p_payload"),
    )
    return insert.on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={"owner": insert.excluded.owner, "lease_until": insert.excluded.lease_until,
              "attempts": table.c.attempts + 1},
        where=and_(table.c.status == RECEIVED, table.c.lease_until < now),
    ).returning(*(table.c[c.key] for c in _ROW))


def _build_settle(dialect: str) -> Any:
    table = MessageLog.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("p_row_id"), table.c.owner == bindparam("p_owner"),
               table.c.status == RECEIVED)
        .values(status=bindparam("p_status"), handler=bindparam("p_handler"), reply=bindparam("p_reply"),
                payload=bindparam("p_payload"), latency_ms=bindparam("p_latency_ms"),
                lease_until=bindparam("p_lease_until", type_=UTCDateTime()),
                settled_at=bindparam("p_settled_at", type_=UTCDateTime()))
    )


def insert_settled(session: Session, record: dict[str, Any], *, payload: str | None,
                   resend_after: float = 60.0) -> int:
    """The row of a message claimed in Redis (:mod:`storage.redis_inbox`), inserted already settled
    in the handler's own unit of work; returns its id.

    Used when that unit of work wrote something, the answer is late (``owed``: a customer-service
    message will carry ``payload``) or the handler failed. The unique ``dedupe_key`` is the
    exactly-once guard: if another attempt committed this message first, nothing is inserted and
    :class:`LostClaim` is raised, so this attempt's writes roll back.
    """
    conn = session.connection()
    values = _row_values(record)
    owed = values["status"] == OWED
    values.update(payload=payload, settled_at=None if owed else values["settled_at"],
                  lease_until=utcnow() + timedelta(seconds=resend_after) if owed else None, now=utcnow())
    row = conn.execute(_statement(conn.dialect.name, "insert_settled"), values).first()
    if row is None:
        raise LostClaim(record["key"])
    return int(row[0])


def flush_records(session: Session, records: list[dict[str, Any]]) -> int:
    """Write a batch of the write-behind log (settled messages and their followers' last-seen times).

    Idempotent, so a batch written twice (its flusher died after the commit) changes nothing: rows
    whose ``dedupe_key`` exists are skipped (but a database claim whose worker died is settled by
    the Redis attempt that answered it), and a follower's times only move forward. Returns the
    number of records written.
    """
    if not records:
        return 0
    conn = session.connection()
    dialect = conn.dialect.name
    now = utcnow()
    rows = [_row_values(record) | {"payload": None, "lease_until": None, "now": now} for record in records]
    # One executemany: the driver batches the round trips, and ON CONFLICT still applies per row.
    conn.execute(_statement(dialect, "flush"), rows)
    touches: dict[str, dict[str, Any]] = {}
    for record in records:
        touch = record.get("touch")
        if not touch:
            continue
        at = datetime.fromisoformat(record["created_at"])
        seen = touches.setdefault(record["openid"], {"p_openid": record["openid"], "p_seen": at, "p_interaction": None})
        seen["p_seen"] = max(seen["p_seen"], at)
        if touch == "interaction":
            seen["p_interaction"] = max(seen["p_interaction"] or at, at)
    if touches:
        conn.execute(_statement(dialect, "touch_many"), sorted(touches.values(), key=lambda t: t["p_openid"]))
    return len(rows)


def _row_values(record: dict[str, Any]) -> dict[str, Any]:
    settled = record.get("settled_at")
    return {
        "created_at": datetime.fromisoformat(record["created_at"]), "openid": record["openid"],
        "msg_type": record["msg_type"], "event": record.get("event"), "msg_id": record.get("msg_id"),
        "text": record.get("text"), "handler": record.get("handler"), "latency_ms": record.get("latency_ms"),
        "reply": record.get("reply"), "dedupe_key": record["key"], "status": record["status"],
        "attempts": int(record.get("attempts") or 1),
        "settled_at": datetime.fromisoformat(settled) if settled else None,
    }


def _build_insert_settled(dialect: str, returning: bool = True) -> Any:
    table = MessageLog.__table__
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(
        created_at=bindparam("created_at", type_=UTCDateTime()), direction="in", openid=bindparam("openid"),
        msg_type=bindparam("msg_type"), event=bindparam("event"), msg_id=bindparam("msg_id"),
        text=bindparam("text"), handler=bindparam("handler"), latency_ms=bindparam("latency_ms"),
        reply=bindparam("reply"), channel="passive", dedupe_key=bindparam("dedupe_key"),
        status=bindparam("status"), attempts=bindparam("attempts"), payload=bindparam("payload"),
        lease_until=bindparam("lease_until", type_=UTCDateTime()),
        settled_at=bindparam("settled_at", type_=UTCDateTime()),
    )
    # A database claim of the same message whose worker died (claimed while Redis was down) is taken
    # over, as a retry's claim would; a live one (lease not run out) or a settled row is left alone.
    settled = ("status", "handler", "latency_ms", "reply", "payload", "lease_until", "settled_at")
    insert = insert.on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={**{name: insert.excluded[name] for name in settled}, "owner": None,
              "attempts": table.c.attempts + insert.excluded.attempts},
        where=and_(table.c.status == RECEIVED, table.c.lease_until < bindparam("now", type_=UTCDateTime())),
    )
    return insert.returning(table.c.id) if returning else insert


def _build_touch_many(dialect: str) -> Any:
    """Followers' times from a flushed batch: created if new, and only ever moved forward."""
    from sqlalchemy import func

    from storage.models import Follower

    table = Follower.__table__
    seen = bindparam("p_seen", type_=UTCDateTime())
    interaction = bindparam("p_interaction", type_=UTCDateTime())
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    if dialect == "postgresql":
        later_seen = func.greatest(table.c.last_seen, insert.excluded.last_seen)
        later_interaction = func.greatest(table.c.last_interaction, insert.excluded.last_interaction)
    else:  # SQLite's two-argument max() is NULL if either is
        later_seen = func.max(func.coalesce(table.c.last_seen, insert.excluded.last_seen), insert.excluded.last_seen)
        later_interaction = func.coalesce(
            func.max(func.coalesce(table.c.last_interaction, insert.excluded.last_interaction),
                     func.coalesce(insert.excluded.last_interaction, table.c.last_interaction)),
            table.c.last_interaction)
    return insert.values(openid=bindparam("p_openid"), subscribed=True, first_seen=seen, last_seen=seen,
                         last_interaction=interaction).on_conflict_do_update(
        index_elements=["openid"], set_={"last_seen": later_seen, "last_interaction": later_interaction})


_BUILDERS = {"claim": _build_claim, "settle": _build_settle, "insert_settled": _build_insert_settled,
             "flush": lambda dialect: _build_insert_settled(dialect, returning=False),
             "touch_many": _build_touch_many}


def look(session: Session, key: str) -> InboxRow | None:
    """The row of ``key`` with its payload (the clear reply once answered)."""
    row = session.execute(
        select(*_ROW, MessageLog.payload, MessageLog.openid).where(MessageLog.dedupe_key == key)
    ).first()
    return InboxRow(*row) if row else None


def settle(
    session: Session,
    *,
    row_id: int,
    owner: str,
    status: str,
    handler: str | None,
    reply: str | None,
    payload: str | None,
    latency_ms: int,
    resend_after: float = 60.0,
) -> None:
    """Record the outcome in the handler's unit of work; raises :class:`LostClaim` if taken over.

    ``reply`` is masked (for the log); ``payload`` is the clear reply, kept so a
    retry can be answered again and an owed message can be (re)sent.
    """
    now = utcnow()
    owed = status == OWED
    conn = session.connection()
    result = conn.execute(_statement(conn.dialect.name, "settle"), {
        "p_row_id": row_id, "p_owner": owner, "p_status": status, "p_handler": handler, "p_reply": reply,
        "p_payload": payload, "p_latency_ms": latency_ms,
        "p_lease_until": now + timedelta(seconds=resend_after) if owed else None,
        "p_settled_at": None if owed else now,
    })
    if result.rowcount != 1:
        raise LostClaim(row_id)


def owe(session: Session, row_id: int, reply: str, resend_after: float = 60.0) -> None:
    """An answered message whose HTTP reply never left: it must go as a customer-service message."""
    session.execute(
        update(MessageLog)
        .where(MessageLog.id == row_id, MessageLog.status == ANSWERED)
        .values(status=OWED, payload=reply, settled_at=None,
                lease_until=utcnow() + timedelta(seconds=resend_after))
        .execution_options(synchronize_session=False)
    )


def record_busy(
    session: Session,
    *,
    key: str,
    openid: str,
    msg_type: str,
    event: str | None,
    msg_id: str | None,
    text: str | None,
    created_at: datetime,
) -> bool:
    """A message the database could not take when it arrived (replayed from the spool).

    Inserted as ``busy`` with no attempt (no handler ran), or an existing claim
    that never finished is marked ``busy``; a message that was in fact answered
    is left alone. Returns True
    when the row is now ``busy`` (and its words should wait for a cadre).
    """
    now = utcnow()
    stmt = _insert(session).values(
        created_at=created_at, direction="in", openid=openid, msg_type=msg_type, event=event, msg_id=msg_id,
        text=text, channel="passive", dedupe_key=key, status=BUSY, attempts=0, settled_at=now,
    ).on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={"status": BUSY, "settled_at": now, "payload": None},
        where=MessageLog.status == RECEIVED,
    ).returning(MessageLog.id)
    return session.execute(stmt).first() is not None


# -- the sweeper's queries ------------------------------------------------------------


def abandoned(session: Session, grace: float, limit: int = 50) -> list[int]:
    """Claims whose lease ran out ``grace`` seconds ago: their worker died or hung."""
    now = utcnow()
    rows = session.execute(
        select(MessageLog.id)
        .where(MessageLog.status == RECEIVED, MessageLog.lease_until < now - timedelta(seconds=grace))
        .order_by(MessageLog.id)
        .limit(limit)
    ).scalars()
    return list(rows)


def take_over(session: Session, row_id: int, owner: str, lease: float) -> InboxRow | None:
    """Take an abandoned claim (None if someone else just did, or it settled)."""
    now = utcnow()
    row = session.execute(
        update(MessageLog)
        .where(MessageLog.id == row_id, MessageLog.status == RECEIVED, MessageLog.lease_until < now)
        .values(owner=owner, lease_until=now + timedelta(seconds=lease), attempts=MessageLog.attempts + 1)
        .returning(*_ROW, MessageLog.payload, MessageLog.openid, MessageLog.created_at)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    if row.created_at < now - REPLY_WINDOW:  # too old to reach the follower now
        give_up(session, row_id, owner, "too old")
        return None
    return InboxRow(*row[:7])


def give_up(session: Session, row_id: int, owner: str, reason: str) -> None:
    session.execute(
        update(MessageLog)
        .where(MessageLog.id == row_id, MessageLog.owner == owner)
        .values(status=FAILED, handler=reason[:64], settled_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def owed_due(session: Session, resend_after: float, limit: int = 50) -> list[int]:
    """Owed replies nobody is sending (the queue lost the task, or a sender died): re-arm them.

    Pushing the lease forward in the same statement keeps two sweepers from
    enqueueing the same reply twice.
    """
    now = utcnow()
    session.execute(  # past WeChat's 48-hour window: no customer-service message can reach them
        update(MessageLog)
        .where(MessageLog.status.in_((OWED, SENDING)), MessageLog.created_at < now - REPLY_WINDOW)
        .values(status=UNDELIVERABLE, payload=None, settled_at=now)
        .execution_options(synchronize_session=False)
    )
    ids = list(session.execute(
        select(MessageLog.id)
        .where(MessageLog.status.in_((OWED, SENDING)), MessageLog.lease_until < now)
        .order_by(MessageLog.id).limit(limit)
    ).scalars())
    due = []
    for row_id in ids:
        taken = session.execute(
            update(MessageLog)
            .where(MessageLog.id == row_id, MessageLog.status.in_((OWED, SENDING)), MessageLog.lease_until < now)
            .values(status=OWED, lease_until=now + timedelta(seconds=resend_after))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            due.append(row_id)
    return due


def forget_payloads(session: Session, older_than: float) -> int:
    """Drop the clear text of settled messages once a retry can no longer come."""
    result = session.execute(
        update(MessageLog)
        .where(
            MessageLog.status.in_(SETTLED),
            MessageLog.payload.is_not(None),
            MessageLog.settled_at < utcnow() - timedelta(seconds=older_than),
        )
        .values(payload=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- owed replies: exactly one sender at a time ------------------------------------


def claim_send(session: Session, row_id: int, owner: str, lease: float) -> tuple[str, str] | None:
    """Take an owed reply for sending; returns (openid, text) or None if not ours to send."""
    now = utcnow()
    row = session.execute(
        update(MessageLog)
        .where(
            MessageLog.id == row_id,
            or_(MessageLog.status == OWED, and_(MessageLog.status == SENDING, MessageLog.lease_until < now)),
        )
        .values(status=SENDING, owner=owner, lease_until=now + timedelta(seconds=lease))
        .returning(MessageLog.openid, MessageLog.payload)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None or not row.payload:
        return None
    return str(row.openid), str(row.payload)


def finish_send(session: Session, row_id: int, owner: str, status: str, errcode: int | None,
                retry_after: float | None = None) -> None:
    """After a send: settled (``answered``/``undeliverable``) or back to ``owed`` for a retry."""
    values: dict[str, object] = {"status": status, "errcode": errcode, "channel": "custom"}
    if status == OWED:
        values["lease_until"] = utcnow() + timedelta(seconds=retry_after or 30)
    else:  # sent (or never will be): a retry must not repeat it, so the clear text goes
        values["settled_at"] = utcnow()
        values["payload"] = None
    session.execute(
        update(MessageLog)
        .where(MessageLog.id == row_id, MessageLog.owner == owner, MessageLog.status == SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


__all__ = [
    "ANSWERED", "BUSY", "FAILED", "OWED", "RECEIVED", "SENDING", "InboxRow", "LostClaim",
    "abandoned", "claim", "claim_send", "finish_send", "flush_records", "forget_payloads", "give_up",
    "insert_settled", "look",
    "new_owner", "owe", "owed_due", "record_busy", "settle", "take_over",
]
