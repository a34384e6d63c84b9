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

Who sees what (issue 8): a question belongs to the household its follower is
bound to (``household_bindings``), so every read and change takes a
``storage.scope.Scope`` and applies ``scope.households()`` here, not in the
routes: a village cadre cannot read or answer another village's question by
guessing its number, from the console, the API or any later caller. A question
from a follower bound to no household is seen only by accounts that see
everything (镇管理员, 督查) and the command line (``EVERYTHING``). Every reply
and close writes an audit row in the transaction that makes the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from knowledge.search.faq_match import core
from storage.accounts import audit
from storage.db import Database
from storage.households import household_of
from storage.models import Follower
from storage.models.base import utcnow
from storage.models.knowledge import KbUnanswered
from storage.models.org import Household, HouseholdBinding, Village
from storage.privacy import mask_text
from storage.scope import EVERYTHING, OutOfScope, Scope

if TYPE_CHECKING:
    from storage.accounts import Principal

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_REPLY_BYTES = 1800  # a customer-service text is at most 2048 bytes, with our opening line
MAX_REPLY_CHARS = 600  # what a cadre is told the limit is ("600个汉字"); ASCII text is held to it too
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
    """An operation on a queued question that cannot be done; the message is for the cadre.

    The subclasses tell the API which status to answer with: the base class is
    bad input (422), :class:`UnansweredNotFound` 404, :class:`UnansweredConflict`
    409 (the item is not in a state that allows it).
    """


class UnansweredNotFound(UnansweredError):
    """No item with this number."""


class UnansweredConflict(UnansweredError):
    """The item exists but its state forbids the operation (closed, a send under way)."""


NOT_YOURS = "这个问题不是您负责的住户问的，不能查看或答复。"


@dataclass(frozen=True)
class HouseholdInfo:
    """The household an item's follower is bound to, as the cadre answering needs to see it."""

    id: int
    number: str
    head_name: str
    village: str
    hamlet: str | None
    helper_name: str | None
    helper_phone: str | None

    @property
    def label(self) -> str:
        """户主 and 户编号, how cadres name a household."""
        return f"{self.head_name}家（{self.number}）"


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
    household: HouseholdInfo | None = None

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


def _household_info(household: Household | None) -> HouseholdInfo | None:
    if household is None:
        return None
    helper = household.helper
    return HouseholdInfo(household.id, household.number, household.head_name, household.village.name,
                         household.hamlet.name if household.hamlet else None,
                         helper.name if helper else None, (helper.phone or None) if helper else None)


def _record(row: KbUnanswered, household: Household | None = None) -> UnansweredRecord:
    return UnansweredRecord(row.id, row.openid, mask_text(row.question), row.status, row.created_at, row.faq_id,
                            row.reply, row.replied_by, row.delivery, row.answered_at, row.delivered_at,
                            row.closed_at, _household_info(household))


# -- scope -------------------------------------------------------------------------------------

def _with_household(query: Any) -> Any:
    """Join each item to the household its follower is bound to (at most one: openid is unique there)."""
    return (query.outerjoin(HouseholdBinding, HouseholdBinding.openid == KbUnanswered.openid)
            .outerjoin(Household, Household.id == HouseholdBinding.household_id))


def _visible(scope: Scope):  # type: ignore[no-untyped-def]
    """Items whose household is in scope; items of no household only when the scope is everything."""
    if scope.everything:
        return true()
    return and_(Household.id.is_not(None), scope.households())


def _load(session: Session, item_id: int, scope: Scope) -> tuple[KbUnanswered, Household | None]:
    """The item and its household, or UnansweredNotFound / OutOfScope (a 403, not a 404: the number exists)."""
    row = session.get(KbUnanswered, item_id)
    if row is None:
        raise UnansweredNotFound(f"找不到编号为 {item_id} 的待答问题")
    household = household_of(session, row.openid) if row.openid else None
    if not scope.everything and (household is None or not scope.sees_household(household)):
        raise OutOfScope(NOT_YOURS)
    return row, household


def _acting(scope: Scope | None, actor: "Principal | None") -> Scope:
    """The scope an operation runs in: the one given, else the actor's, else the command line's (everything)."""
    if scope is not None:
        return scope
    return actor.scope if actor is not None else EVERYTHING


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


def list_unanswered(db: Database, status: str | None = "open", limit: int = 200, *, offset: int = 0,
                    scope: Scope = EVERYTHING, village: str | None = None,
                    oldest_first: bool | None = None) -> list[UnansweredRecord]:
    """Items of one state (a key of ``STATES``, a stored status, or None for all) that ``scope`` sees.

    Open items come oldest first (the one waiting longest is answered first),
    the others newest first, unless ``oldest_first`` says otherwise. ``village``
    keeps one village's items (by name). Questions are masked again, for rows
    queued before questions were stored masked.
    """
    if oldest_first is None:
        oldest_first = status == "open"
    order = KbUnanswered.id.asc() if oldest_first else KbUnanswered.id.desc()
    query = _filtered(select(KbUnanswered, Household), status, scope, village)
    with db.session() as session:
        rows = session.execute(query.order_by(order).limit(limit).offset(offset)).all()
        return [_record(item, household) for item, household in rows]


def count_unanswered(db: Database, *, scope: Scope = EVERYTHING, village: str | None = None) -> dict[str, int]:
    """How many items ``scope`` sees in each state (every key of ``STATES``, zeros included)."""
    query = _filtered(select(KbUnanswered.status, KbUnanswered.delivery, func.count(KbUnanswered.id)), None,
                      scope, village).group_by(KbUnanswered.status, KbUnanswered.delivery)
    counts = dict.fromkeys(STATES, 0)
    with db.session() as session:
        for stored, delivery, number in session.execute(query):
            counts[state_of(stored, delivery)] += number
    return counts


def _filtered(query: Any, status: str | None, scope: Scope, village: str | None) -> Any:
    query = _with_household(query).where(_visible(scope))
    if status:
        query = query.where(_state_filter(status))
    if village:
        query = query.where(Household.village_id.in_(select(Village.id).where(Village.name == village)))
    return query


def get_unanswered(db: Database, item_id: int, scope: Scope = EVERYTHING) -> UnansweredRecord | None:
    """One item with its household; None if there is no such number, ``OutOfScope`` if it is not ``scope``'s."""
    with db.session() as session:
        try:
            row, household = _load(session, item_id, scope)
        except UnansweredNotFound:
            return None
        return _record(row, household)


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
    replied_by: str | None = None,
    send: Callable[[str, str], object] | None = None,
    now: datetime | None = None,
    *,
    scope: Scope | None = None,
    actor: "Principal | None" = None,
) -> UnansweredRecord:
    """Answer one household privately; returns the item with its delivery state.

    The reply is stored first (``delivery=pending``), so it is never lost. If
    the follower's 48-hour window is open and ``send`` is given (a
    customer-service send, e.g. ``bot.private_replies.sender(services)``), it goes out
    now: delivered, or ``failed`` if WeChat says the follower cannot be reached;
    any other failure keeps it pending. A pending reply goes out the next
    time the follower writes (``bot.private_replies.deliver_pending_replies``).
    Replying again replaces a reply not yet delivered, and sends a new one otherwise.

    ``scope`` (default: ``actor``'s, or everything for the command line) must see
    the item (``OutOfScope``) and be writable (``ReadOnly``). The audit row
    (``unanswered.reply``; ``actor`` None is the command line, ``replied_by`` is
    then named in the detail) commits with the reply.
    """
    scope = _acting(scope, actor)
    reply = checked_text(reply, "答复")
    if len(reply) > MAX_REPLY_CHARS or len(reply.encode("utf-8")) > MAX_REPLY_BYTES:
        raise UnansweredError(f"答复太长（微信单条消息约{MAX_REPLY_CHARS}个汉字以内），请精简后再发")
    replied_by = (replied_by or "").strip() or (actor.name if actor is not None else "-")
    moment = now or utcnow()
    with db.session() as session:
        row, _ = _load(session, item_id, scope)
        scope.check_writable()
        if row.status == "closed":
            raise UnansweredConflict(f"问题 {item_id} 已关闭，不能再答复")
        if not row.openid:
            raise UnansweredConflict(f"问题 {item_id} 不知道是谁问的，没法私下答复；可以转成常见问题")
        if row.delivery == "sending" and row.delivered_at is not None and row.delivered_at > moment - SENDING_STALE:
            raise UnansweredConflict(f"问题 {item_id} 的答复正在发送，请稍后再试")
        row.reply, row.replied_by = reply, replied_by[:64]
        row.status, row.answered_at = "answered", moment
        row.delivery, row.delivered_at = "pending", None
        openid = row.openid
        open_now = window_open(session, openid, moment)
        audit(session, actor, "unanswered.reply", f"问题 {item_id}",
              (f"答复人 {replied_by}：" if actor is None else "") + reply[:200])
    if open_now and send is not None:
        claimed = claim_reply(db, item_id, moment)
        if claimed is not None:
            settle_reply(db, item_id, attempt(send, *claimed), claimed_at=moment)
    record = get_unanswered(db, item_id)
    assert record is not None
    return record


def close_unanswered(db: Database, item_id: int, closed_by: str | None = None,
                     now: datetime | None = None, *, scope: Scope | None = None,
                     actor: "Principal | None" = None) -> UnansweredRecord:
    """Close an item (handled another way, or not for us). A reply still kept for the follower stays
    kept and is delivered when they next write; closing only takes the item off the cadres' list.

    Scope, read-only accounts and the audit row (``unanswered.close``) as in :func:`reply_unanswered`.
    """
    scope = _acting(scope, actor)
    closed_by = (closed_by or "").strip() or (actor.name if actor is not None else "-")
    with db.session() as session:
        row, _ = _load(session, item_id, scope)
        scope.check_writable()
        if row.status == "closed":
            raise UnansweredConflict(f"问题 {item_id} 已经关闭了")
        row.status, row.closed_at = "closed", now or utcnow()
        audit(session, actor, "unanswered.close", f"问题 {item_id}", f"操作人 {closed_by}" if actor is None else "")
    log.info("unanswered item closed", extra={"item": item_id})
    record = get_unanswered(db, item_id)
    assert record is not None
    return record


def checked_text(text: str | None, what: str) -> str:
    """``text`` stripped, refused when empty or holding characters nothing downstream can store or send.

    PostgreSQL refuses NUL in text and UTF-8 has no lone surrogates (a JSON body
    may carry either): refusing them here keeps a bad request a 422, not a 500.
    """
    text = (text or "").strip()
    if not text:
        raise UnansweredError(f"{what}不能为空")
    if unstorable(text):
        raise UnansweredError(f"{what}里有无法保存的字符，请删掉后再试")
    return text


def unstorable(text: str) -> bool:
    """Control characters other than line breaks and tabs, or lone surrogates (not valid UTF-8)."""
    return any((ch < " " and ch not in "\n\r\t") or "\ud800" <= ch <= "\udfff" for ch in text)


def delivery_note(db: Database, record: UnansweredRecord, now: datetime | None = None) -> str:
    """Where the answer to this item stands, in the words a cadre reads (console, API, command line).

    No closing punctuation, so callers can put it in a sentence.
    """
    state = record.state
    if state == "open":
        return "还没有答复"
    if record.delivery is None and record.faq_id is not None and state == "answered_delivered":
        return "已转为常见问题，答案已发给提问的人"
    if state == "answered_delivered":
        return "已送达"
    if state == "answered_failed":
        return "无法送达（对方已取消关注或拒收消息）"
    if record.delivery in _KEPT:
        opened = False
        if record.openid:
            with db.session() as session:
                opened = window_open(session, record.openid, now)
        kept = ("待送达（这次微信没发出去，对方下次发消息时自动再发）" if opened
                else "待送达（对方48小时内没发消息，下次发消息时自动送达）")
        return kept if state == "answered_pending" else f"已关闭；之前的答复{kept}"
    return "已关闭"


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


def settle_reply(db: Database, item_id: int, outcome: str, now: datetime | None = None,
                 *, claimed_at: datetime | None = None) -> None:
    """After a send: ``delivered``, ``pending`` (kept for the next message) or ``failed``.

    ``claimed_at`` (the moment given to :func:`claim_reply`) makes the settle apply only to that
    claim: a sender that hung past the stale-claim sweep must not settle a newer claim's send.
    """
    assert outcome in ("delivered", "pending", "failed"), outcome
    this_claim = KbUnanswered.delivered_at == claimed_at if claimed_at is not None else true()
    with db.session() as session:
        session.execute(
            update(KbUnanswered).where(KbUnanswered.id == item_id, KbUnanswered.delivery == "sending", this_claim)
            .values(delivery=outcome, delivered_at=(now or utcnow()) if outcome == "delivered" else None)
            .execution_options(synchronize_session=False)
        )
