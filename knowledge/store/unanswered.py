"""The queue of questions the bot could not answer, for a person to pick up, and its answers.

Questions are stored masked (``storage.privacy.mask_text``): the queue is read by
cadres on the command line, exported as JSON and promoted into FAQ entries that
other households see, so a household's phone, ID or card number must not be in
it at all rather than be masked by each reader.

A question is answered one of two ways. Promoting it to a public FAQ
(``knowledge.store.faq.promote_unanswered``) answers everyone who asked the same.
A private reply (:func:`reply_unanswered`) answers the one household: a
customer-service message while WeChat's 48-hour window is open, otherwise
kept (``delivery=pending``) and delivered the next time that follower writes
(``bot.private_replies``). The reply is stored as the cadre wrote it - it is for that
household, and a helper's phone number in it is the point - and masked
wherever it is shown. :func:`close_unanswered` ends an item without an answer
(say, settled by phone).

What a cadre sees of an item is its ``state``: open, answered_delivered,
answered_pending, answered_failed (the follower cannot be reached: unfollowed
or refused) or closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from knowledge.search.faq_match import core
from storage.db import Database
from storage.models import Follower
from storage.models.base import utcnow
from storage.models.knowledge import KbUnanswered
from storage.privacy import mask_text

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_REPLY_BYTES = 1800  # a customer-service text is at most 2048 bytes, with our opening line
NO_QUESTION = "（请求人工帮助）"  # what a hand-over without a question is queued as
WINDOW = timedelta(hours=48)  # WeChat's customer-service window
SENDING_STALE = timedelta(minutes=5)  # a claim on a reply older than this was a sender that died

# The states a cadre sees, and how the command line names them.
STATES = {
    "open": "待答",
    "answered_delivered": "已答-已送达",
    "answered_pending": "已答-待送达",
    "answered_failed": "已答-无法送达",
    "closed": "已关闭",
}
_KEPT = ("pending", "sending")  # delivery values of a reply that has not reached the follower yet


class UnansweredError(Exception):
    """An operation on a queued question that cannot be done; the message is for the cadre."""


@dataclass(frozen=True)
class UnansweredRecord:
    id: int
    openid: str | None
    question: str
    status: str
    created_at: datetime
    faq_id: int | None
    reply: str | None = None
    replied_by: str | None = None
    delivery: str | None = None
    answered_at: datetime | None = None
    delivered_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def state(self) -> str:
        return state_of(self.status, self.delivery)

    @property
    def label(self) -> str:
        return STATES[self.state]


def state_of(status: str, delivery: str | None) -> str:
    """open / answered_delivered / answered_pending / answered_failed / closed.

    An FAQ promotion sends its answer through the queue without a delivery
    record: it counts as delivered, as it always did.
    """
    if status == "answered":
        if delivery in _KEPT:
            return "answered_pending"
        if delivery == "failed":
            return "answered_failed"
        return "answered_delivered"
    return "closed" if status == "closed" else "open"


def _record(row: KbUnanswered) -> UnansweredRecord:
    return UnansweredRecord(row.id, row.openid, mask_text(row.question), row.status, row.created_at, row.faq_id,
                            row.reply, row.replied_by, row.delivery, row.answered_at, row.delivered_at,
                            row.closed_at)


# -- queueing --------------------------------------------------------------------------------

def record_unanswered(db: Database, openid: str | None, question: str) -> int:
    """Queue a question in its own unit of work (CLI, sweeper); see :func:`queue_unanswered`."""
    with db.session() as session:
        return queue_unanswered(session, openid, question)


def queue_unanswered(session: Session, openid: str | None, question: str) -> int:
    """Queue a question, masked, inside the caller's unit of work; one entry per follower and question.

    Handlers pass the message's session, so the entry commits with the message
    or not at all. Masking comes before truncating (no half number is left at
    the cut) and before normalising, so the dedupe key is built from the stored
    text and the same question typed with ``138-1234-5678`` or
    ``１３８１２３４５６７８`` is one entry.
    """
    question = mask_text(question.strip())[:MAX_QUESTION_CHARS]
    normalized = core(question)[:500]
    existing = session.execute(
        select(KbUnanswered.id).where(
            KbUnanswered.status == "open",
            KbUnanswered.normalized == normalized,
            KbUnanswered.openid.is_(None) if openid is None else KbUnanswered.openid == openid,
        ).order_by(KbUnanswered.id).limit(1)
    ).scalars().first()  # a race may have queued it twice: keep answering with the first
    if existing is not None:
        return int(existing)
    row = KbUnanswered(openid=openid, question=question, normalized=normalized)
    session.add(row)
    session.flush()
    return row.id


# -- reading ---------------------------------------------------------------------------------

def _state_filter(state: str):  # type: ignore[no-untyped-def]
    if state in ("open", "closed", "answered"):  # the stored status, as callers passed it before states
        return KbUnanswered.status == state
    if state == "answered_pending":
        return and_(KbUnanswered.status == "answered", KbUnanswered.delivery.in_(_KEPT))
    if state == "answered_failed":
        return and_(KbUnanswered.status == "answered", KbUnanswered.delivery == "failed")
    if state == "answered_delivered":
        return and_(KbUnanswered.status == "answered",
                    or_(KbUnanswered.delivery.is_(None), KbUnanswered.delivery == "delivered"))
    raise UnansweredError(f"没有这个状态：{state}（可用：{'、'.join(STATES)}）")


def list_unanswered(db: Database, status: str | None = "open", limit: int = 200) -> list[UnansweredRecord]:
    """Newest first, optionally of one state (a key of ``STATES``, or a stored status).

    Questions are masked again, for rows queued before questions were stored masked.
    """
    with db.session() as session:
        query = select(KbUnanswered).order_by(KbUnanswered.id.desc()).limit(limit)
        if status:
            query = query.where(_state_filter(status))
        return [_record(r) for r in session.execute(query).scalars().all()]


def get_unanswered(db: Database, item_id: int) -> UnansweredRecord | None:
    with db.session() as session:
        row = session.get(KbUnanswered, item_id)
        return _record(row) if row is not None else None


def window_open(session: Session, openid: str, now: datetime | None = None) -> bool:
    """Whether a customer-service message may reach ``openid``: they wrote within the last 48 hours."""
    since = (now or utcnow()) - WINDOW
    found = session.scalar(
        select(Follower.id).where(
            Follower.openid == openid, Follower.subscribed.is_(True), Follower.unreachable_reason.is_(None),
            Follower.last_interaction.is_not(None), Follower.last_interaction >= since,
        )
    )
    return found is not None


# -- a private reply ---------------------------------------------------------------------------

def reply_text(question: str, reply: str) -> str:
    """What the household reads: their question (shortened) and the cadre's words."""
    if not question or question == NO_QUESTION:
        return f"您之前请工作人员帮忙，工作人员回复：\n{reply}"
    asked = question if len(question) <= 40 else question[:40] + "…"
    return f"您之前问的“{asked}”，工作人员回复：\n{reply}"


def reply_unanswered(
    db: Database,
    item_id: int,
    reply: str,
    replied_by: str,
    send: Callable[[str, str], object] | None = None,
    now: datetime | None = None,
) -> UnansweredRecord:
    """Answer one household privately; returns the item with its delivery state.

    The reply is stored first (``delivery=pending``), so it is never lost. If
    the follower's 48-hour window is open and ``send`` is given (a
    customer-service send, e.g. ``bot.private_replies.sender(services)``), it goes out
    now: delivered, or ``failed`` if WeChat says the follower cannot be reached;
    any other failure keeps it pending. A pending reply goes out the next
    time the follower writes (``bot.private_replies.deliver_pending_replies``).
    Replying again replaces a reply not yet delivered, and sends a new one otherwise.
    """
    reply = (reply or "").strip()
    if not reply:
        raise UnansweredError("答复不能为空")
    if len(reply.encode("utf-8")) > MAX_REPLY_BYTES:
        raise UnansweredError("答复太长（微信单条消息约600个汉字以内），请精简后再发")
    moment = now or utcnow()
    with db.session() as session:
        row = session.get(KbUnanswered, item_id)
        if row is None:
            raise UnansweredError(f"找不到编号为 {item_id} 的待答问题")
        if row.status == "closed":
            raise UnansweredError(f"问题 {item_id} 已关闭，不能再答复")
        if not row.openid:
            raise UnansweredError(f"问题 {item_id} 不知道是谁问的，没法私下答复；可以转成常见问题")
        if row.delivery == "sending" and row.delivered_at is not None and row.delivered_at > moment - SENDING_STALE:
            raise UnansweredError(f"问题 {item_id} 的答复正在发送，请稍后再试")
        row.reply, row.replied_by = reply, (replied_by or "-")[:64]
        row.status, row.answered_at = "answered", moment
        row.delivery, row.delivered_at = "pending", None
        openid = row.openid
        open_now = window_open(session, openid, moment)
    if open_now and send is not None:
        claimed = claim_reply(db, item_id, moment)
        if claimed is not None:
            settle_reply(db, item_id, attempt(send, *claimed))
    record = get_unanswered(db, item_id)
    assert record is not None
    return record


def close_unanswered(db: Database, item_id: int, closed_by: str | None = None,
                     now: datetime | None = None) -> UnansweredRecord:
    """Close an item (handled another way, or not for us). A reply still kept for the follower stays
    kept and is delivered when they next write; closing only takes the item off the cadres' list."""
    with db.session() as session:
        row = session.get(KbUnanswered, item_id)
        if row is None:
            raise UnansweredError(f"找不到编号为 {item_id} 的待答问题")
        if row.status == "closed":
            raise UnansweredError(f"问题 {item_id} 已经关闭了")
        row.status, row.closed_at = "closed", now or utcnow()
    log.info("unanswered item closed", extra={"item": item_id, "by": closed_by or "-"})
    record = get_unanswered(db, item_id)
    assert record is not None
    return record


# -- delivering a kept reply (bot.private_replies) --------------------------------------------------------

def _deliverable(moment: datetime):  # type: ignore[no-untyped-def]
    """A reply kept for its follower, or claimed by a sender that died (``SENDING_STALE`` ago)."""
    return and_(
        KbUnanswered.status.in_(("answered", "closed")),
        KbUnanswered.reply.is_not(None),
        or_(KbUnanswered.delivery == "pending",
            and_(KbUnanswered.delivery == "sending", KbUnanswered.delivered_at < moment - SENDING_STALE)),
    )


def kept_replies(db: Database, now: datetime | None = None) -> list[tuple[str, datetime | None, datetime | None]]:
    """(openid, answered_at, the follower's last message) of every reply waiting for its follower.

    On the status index; the follower's time says whether they wrote since.
    """
    moment = now or utcnow()
    with db.session() as session:
        rows = session.execute(
            select(KbUnanswered.openid, KbUnanswered.answered_at, Follower.last_interaction)
            .outerjoin(Follower, Follower.openid == KbUnanswered.openid)
            .where(_deliverable(moment), KbUnanswered.openid.is_not(None))
        ).all()
    return [(str(openid), answered, wrote) for openid, answered, wrote in rows]


def pending_reply_ids(session: Session, openid: str, now: datetime | None = None) -> list[int]:
    """Replies waiting for ``openid``, oldest first."""
    return list(session.scalars(
        select(KbUnanswered.id).where(KbUnanswered.openid == openid, _deliverable(now or utcnow()))
        .order_by(KbUnanswered.id)
    ))


def claim_reply(db: Database, item_id: int, now: datetime | None = None) -> tuple[str, str] | None:
    """Take one kept reply for sending: (openid, text), or None if the window is closed or it is taken.

    The ``UPDATE … WHERE delivery='pending'`` is the claim: of two messages or
    sweepers racing for the same reply, one sends it.
    """
    moment = now or utcnow()
    with db.session() as session:
        row = session.get(KbUnanswered, item_id)
        if row is None or not row.openid or not row.reply or not window_open(session, row.openid, moment):
            return None
        claimed = session.execute(
            update(KbUnanswered).where(KbUnanswered.id == item_id, _deliverable(moment))
            .values(delivery="sending", delivered_at=moment).execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            return None
        return row.openid, reply_text(mask_text(row.question), row.reply)


def attempt(send: Callable[[str, str], object], openid: str, text: str) -> str:
    """Send one reply: "delivered", "pending" (again when they next write) or "failed" (unreachable).

    ``send`` raises on failure; WeChat's errors say whether the follower is
    gone (``unreachable_reason``: unfollowed, refused) or whether a timed-out
    send may have reached them (``maybe_delivered``: not sent twice).
    """
    try:
        send(openid, text)
    except Exception as exc:  # noqa: BLE001 - WeChatAPIError or a network error
        if getattr(exc, "unreachable_reason", None):
            log.warning("private reply not deliverable: %s", mask_text(str(exc)))
            return "failed"
        if getattr(exc, "maybe_delivered", False):
            log.warning("private reply may have reached WeChat (timed out); not sent again")
            return "delivered"
        log.warning("private reply kept for the follower's next message: %s", mask_text(str(exc)))
        return "pending"
    return "delivered"


def settle_reply(db: Database, item_id: int, outcome: str, now: datetime | None = None) -> None:
    """After a send: ``delivered``, ``pending`` (kept for the next message) or ``failed``."""
    assert outcome in ("delivered", "pending", "failed"), outcome
    with db.session() as session:
        session.execute(
            update(KbUnanswered).where(KbUnanswered.id == item_id, KbUnanswered.delivery == "sending")
            .values(delivery=outcome, delivered_at=(now or utcnow()) if outcome == "delivered" else None)
            .execution_options(synchronize_session=False)
        )
