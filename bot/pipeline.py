"""From a trusted message to the reply XML: inbox claim, routing, one unit of work, hand-off.

Runs in a worker thread (wechatpy, SQLAlchemy and redis-py are synchronous).
The order is what makes a message impossible to lose or to answer twice:

1. **Claim** the message: in Redis when it is configured (``storage.redis_inbox``: one
   script, the replay check included), else its database inbox row
   (``storage.inbox.claim``), committed before anything else. A claim whose
   worker died is taken over by a retry or by the sweeper once its lease runs out.
2. **Answer** in one unit of work: the handler's writes, the follower's
   last-seen time and the settled inbox row commit together, and only if the
   claim is still ours (a Redis claim whose unit of work wrote nothing settles
   in Redis instead, and its log row follows in a batch: ``bot.flusher``).
   Effects a handler attached (notices to cadres, customer-service sends) run
   after that commit, never before.
3. **Hand off** through :class:`Delivery`: the webhook takes the reply if it is
   still waiting; otherwise the row says ``owed`` and the reply goes out as a
   customer-service message (``TaskQueue.send_reply``).

Every database call here is bounded by ``SISONG_DB_TIMEOUT``. A database that
is down or hung gets "系统繁忙" in time; the message is written to the spool
and reaches the inbox (and a cadre) when the database is back.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from wechatpy import parse_message
from wechatpy.messages import BaseMessage
from wechatpy.replies import BaseReply, EmptyReply, TextReply

from bot import metrics
from bot.context import Context, Conversation, event_of
from bot.inbound import Admission, Inbound, Rejected
from storage.privacy import mask_text, short_openid
from bot.router import Handler, Router, handler_name
from bot.services import Services
from bot.textfit import MORE_HINT, split_pages
from storage import followers, inbox
from storage.db import is_outage, wrote
from storage.models.base import utcnow
from storage.models.messages import ANSWERED, BUSY, FAILED, OWED, RECEIVED
from storage.redis_client import REDIS_ERRORS
from storage.redis_inbox import Claim

if TYPE_CHECKING:
    from bot.voice.service import VoiceResult

log = logging.getLogger(__name__)

SUCCESS = "success"
BUSY_TEXT = "系统繁忙，请稍后再试。"
ERROR_TEXT = "抱歉，刚才出了点小问题，请稍后再试。也可以回复“0”请工作人员帮您。"

# Events that open WeChat's 48-hour customer-service window (a message the follower sends always does). A
# menu click, a link or a scan from the menu does not (WeChat allows 3 messages within a minute of those,
# which is not a window to push into): they update last_seen only, so a push does not try a customer-service
# message that WeChat would refuse with 45015.
_INTERACTIVE_EVENTS = {"subscribe", "subscribe_scan", "scan"}
# Events WeChat sends about our own sends, not from the follower.
_SYSTEM_EVENTS = {"templatesendjobfinish", "masssendjobfinish", "subscribe_msg_sent_event"}
# Events whose handlers record the follower themselves.
_SELF_RECORDING_EVENTS = {"subscribe", "subscribe_scan", "unsubscribe"}


def dedupe_key(message: BaseMessage) -> str:
    """MsgId for messages; FromUserName + CreateTime + Event for events, as WeChat advises.

    The EventKey (hashed: a VIEW event's key is a whole URL) is added so two
    different menu clicks within one second are not taken for a retry.
    """
    msg_id = getattr(message, "id", 0)
    if msg_id:
        return f"m:{msg_id}"
    event = getattr(message, "event", "") or message.type
    created = message._data.get("CreateTime", "")
    event_key = str(message._data.get("EventKey") or "")
    suffix = ":" + hashlib.blake2b(event_key.encode(), digest_size=6).hexdigest() if event_key else ""
    return f"e:{message.source}:{created}:{event}{suffix}"[:200]


class Delivery:
    """The hand-off between the webhook, waiting up to the deadline, and the pipeline thread.

    ``reserve`` (before the commit) tells the pipeline whether the webhook is
    still there to carry the reply; the webhook then waits a short grace for
    the commit. ``offer`` (after it) hands the XML over, or says the webhook
    has gone and a customer-service message must carry it instead. Never both.
    """

    WAITING, RESERVED, DELIVERED, GONE = range(4)

    def __init__(self, waiting: bool = True) -> None:
        self._lock = threading.Lock()
        self._state = self.WAITING if waiting else self.GONE
        self.future: concurrent.futures.Future[str] = concurrent.futures.Future()

    @classmethod
    def nobody_waiting(cls) -> "Delivery":
        """For the sweeper: the answer always goes out as a customer-service message."""
        return cls(waiting=False)

    def reserve(self) -> bool:
        with self._lock:
            if self._state == self.WAITING:
                self._state = self.RESERVED
                return True
            return False

    def offer(self, xml: str) -> bool:
        with self._lock:
            if self._state in (self.WAITING, self.RESERVED):
                self._state = self.DELIVERED
                self.future.set_result(xml)
                return True
            return False

    def refuse(self, exc: Exception) -> None:
        """The delivery must not be answered at all (a replayed signature): the webhook raises ``exc``."""
        with self._lock:
            if self._state in (self.WAITING, self.RESERVED):
                self._state = self.DELIVERED
                self.future.set_exception(exc)

    def give_up(self, final: bool = False) -> bool:
        """The webhook's deadline passed; True if a reserved reply is worth a short wait."""
        with self._lock:
            if self._state == self.RESERVED and not final:
                return True
            if self._state != self.DELIVERED:
                self._state = self.GONE
            return False

    @property
    def gone(self) -> bool:
        return self._state == self.GONE


@dataclass
class Claimed:
    """The claim an attempt holds: its database inbox row, or its Redis claim (``key``) with the
    log record that settling it will write (``row_id`` is set too once a row is inserted)."""

    owner: str
    row_id: int | None = None
    key: str | None = None
    record: dict[str, Any] | None = None
    # Read along with a Redis claim: the follower's rate-limit verdict and conversation state.
    too_fast: bool = False
    conversation: str | None = None
    # Settling found the message's row committed by another attempt (a Redis claim only).
    found_in_database: bool = False

    @property
    def in_redis(self) -> bool:
        return self.key is not None


class Pipeline:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router

    # -- entry points ------------------------------------------------------------

    def process(self, inbound: Inbound, delivery: Delivery, admission: Admission | None = None) -> None:
        """Answer one inbound message; the reply goes through ``delivery``. Never raises.

        ``admission`` is the webhook's last check (the replay guard); if it fails
        the delivery is refused with :class:`~bot.inbound.Rejected` and nothing runs.
        """
        try:
            with self.services.db.bounded():
                if not self._process_in_redis(inbound, delivery, admission):
                    if admission is not None:
                        admission.check()
                    self._process(inbound.message, inbound.raw_xml, delivery)
        except Rejected as exc:
            delivery.refuse(exc)
        except Exception:  # a bug outside any handler: still answer
            log.exception("message pipeline failed")
            self._offer_text(inbound.message, ERROR_TEXT, delivery)

    def resume(self, row: inbox.InboxRow, owner: str) -> None:
        """The sweeper took over ``row`` (its worker died): answer it as a customer-service message."""
        try:
            message = parse_message(row.payload or "")
        except Exception:  # noqa: BLE001 - an unreadable payload is a dead letter
            message = None
        with self.services.db.bounded():
            if message is None:
                with self.services.db.session() as session:
                    inbox.give_up(session, row.id, owner, "unreadable")
                return
            if row.attempts > self.services.settings.max_attempts:
                self._poison(message, row, owner)
                return
            self._answer(message, Claimed(owner, row_id=row.id), _words_of(message), Delivery.nobody_waiting(),
                         time.perf_counter())

    def answer_voice(self, message: BaseMessage, row_id: int, owner: str, voice: "VoiceResult",
                     delivery: Delivery, started: float) -> None:
        """The transcription task's answer to a voice message it holds the claim of (``bot.voice.task``).

        What was heard is routed exactly like typed text and the reply starts
        with it; a failure goes to the voice handler (``ctx.voice`` says why).
        """
        self._answer(message, Claimed(owner, row_id=row_id), voice.text if voice.heard else None, delivery, started,
                     voice=voice)

    # -- claim in Redis --------------------------------------------------------------

    def _process_in_redis(self, inbound: Inbound, delivery: Delivery, admission: Admission | None) -> bool:
        """The Redis claim (``storage.redis_inbox``); False when the database inbox must take the message:
        no Redis inbox, Redis or the database unavailable, or a voice message (its transcription task
        needs a database row)."""
        redis_inbox = self.services.redis_inbox
        breaker = self.services.redis_breaker
        message = inbound.message
        if redis_inbox is None or message.type == "voice" or not self.services.db.breaker.allow() \
                or (breaker is not None and not breaker.allow()):
            return False
        started = time.perf_counter()
        key = dedupe_key(message)
        owner = inbox.new_owner()
        settings = self.services.settings
        lease = settings.claim_lease
        openid = str(message.source or "")
        # Events are WeChat's doing, not the follower typing: they are not rate-limited.
        rate = None if event_of(message) else self.services.limiter.shared_window(settings.follower_rate, "in", openid)
        try:
            claim = redis_inbox.claim(
                key, owner, lease, inbound.raw_xml, replay_key=admission.key if admission else None,
                digest=admission.digest if admission else "", replay_ttl=admission.ttl if admission else 600,
                rate=rate, conversation_key=Conversation.key_of(openid))
        except REDIS_ERRORS as exc:  # down, or refusing (out of memory, read-only): the database path
            if breaker is not None:
                breaker.trip(exc)
            return False
        if claim.status == "replayed":
            raise Rejected(403, "replayed signature")
        words = _words_of(message)
        while not claim.mine:
            if claim.status != RECEIVED:
                metrics.DEDUPE_HITS.inc()
                self._offer_settled(message, key, claim, words, delivery, started)
                return True
            # Another attempt is answering: wait for its reply, or take over once its lease ran out.
            if time.perf_counter() - started > self.services.settings.reply_deadline - 0.3 or delivery.gone:
                metrics.DEDUPE_HITS.inc()
                delivery.offer(SUCCESS)
                return True
            time.sleep(0.1)
            try:
                claim = redis_inbox.claim(key, owner, lease, inbound.raw_xml, rate=rate,
                                          conversation_key=Conversation.key_of(openid))
            except REDIS_ERRORS:
                delivery.offer(SUCCESS)  # the first attempt answers; the database path would wait the same
                return True
        if claim.attempts > 1:
            log.warning("took over message from a worker that did not finish", extra={"attempt": claim.attempts})
        record = {
            "key": key, "openid": str(message.source or ""), "msg_type": str(message.type),
            "event": event_of(message), "msg_id": _msg_id_of(message), "text": _masked(words),
            "attempts": claim.attempts, "created_at": utcnow().isoformat(),
        }
        claimed = Claimed(owner, key=key, record=record, too_fast=claim.too_fast, conversation=claim.conversation)
        if claim.attempts > self.services.settings.max_attempts:
            self._poison_in_redis(message, claimed, words)
            delivery.offer(SUCCESS)
            return True
        self._answer(message, claimed, words, delivery, started)
        return True

    def _offer_settled(self, message: BaseMessage, key: str, claim: Claim, words: str | None,
                       delivery: Delivery, started: float) -> None:
        """A retry of a message already settled: the first attempt's reply, "系统繁忙", or nothing."""
        if claim.status == ANSWERED:
            self._offer_text(message, claim.reply, delivery)
        elif claim.status == BUSY:
            self._offer_text(message, BUSY_TEXT, delivery)
        elif claim.status == "moved":  # the sweeper handed it to the database inbox
            self._follow_first(message, key, words, delivery, started)
        else:  # owed (a customer-service message carries it), failed
            delivery.offer(SUCCESS)

    def _follow_database(self, message: BaseMessage, claim: Claimed, words: str | None, delivery: Delivery,
                         started: float) -> None:
        """Another attempt committed this message (this one had taken over its Redis claim): later
        retries follow the database row, and this delivery gets its reply as a database retry would."""
        assert self.services.redis_inbox is not None and claim.key is not None
        try:
            self.services.redis_inbox.moved(claim.key, claim.owner)
        except REDIS_ERRORS:
            pass  # the claim's lease runs out; the sweeper then finds the settled row
        self._follow_first(message, claim.key, words, delivery, started)

    def _poison_in_redis(self, message: BaseMessage, claim: Claimed, words: str | None) -> None:
        """Tried SISONG_MAX_ATTEMPTS times in Redis (each attempt's worker died): as :meth:`_poison`."""
        assert claim.key is not None and claim.record is not None
        log.error("message abandoned after %d attempts", claim.record["attempts"])
        record = claim.record | {"status": FAILED, "handler": "gave up", "settled_at": utcnow().isoformat()}
        try:
            with self.services.db.session() as session:
                inbox.insert_settled(session, record, payload=None)
        except inbox.LostClaim:
            pass
        self._settle_in_redis(claim, FAILED, ERROR_TEXT, None)
        self.services.queue.send_text(str(message.source or ""), ERROR_TEXT)
        if words:
            self.services.keep_for_cadre(str(message.source or ""), _masked(words) or "")

    def _settle_in_redis(self, claim: Claimed, status: str, reply: str | None, record: dict[str, Any] | None,
                         conversation: str | None = None) -> bool:
        """Record the outcome in Redis (``record``: the write-behind log row; ``conversation``: the
        follower's changed state). False if another attempt took the message over; True as well when
        Redis failed, unless ``record`` had to reach the log."""
        assert self.services.redis_inbox is not None and claim.key is not None
        settings = self.services.settings
        saved = None
        if conversation is not None and claim.record is not None:
            saved = (Conversation.key_of(claim.record["openid"]), conversation, settings.session_ttl)
        try:
            return self.services.redis_inbox.settle(claim.key, claim.owner, status, reply, record,
                                                    settings.dedupe_ttl, conversation=saved)
        except REDIS_ERRORS as exc:
            if self.services.redis_breaker is not None:
                self.services.redis_breaker.trip(exc)
            if record is None:  # the database row is written already: retries will find it there
                return True
            raise

    # -- claim in the database -----------------------------------------------------------

    def _process(self, message: BaseMessage, raw_xml: str, delivery: Delivery) -> None:
        started = time.perf_counter()
        db = self.services.db
        key = dedupe_key(message)
        words = _words_of(message)
        if not db.breaker.allow():
            self._busy(message, key, words, delivery, started)
            return
        owner = inbox.new_owner()
        try:
            with db.sessions() as session:
                row = inbox.claim(
                    session, key=key, owner=owner, lease=self.services.settings.claim_lease,
                    openid=str(message.source or ""), msg_type=str(message.type), event=event_of(message),
                    msg_id=_msg_id_of(message), text=_masked(words), payload=raw_xml,
                )
                session.commit()
        except SQLAlchemyError as exc:
            if is_outage(exc):
                db.breaker.trip(exc)
            log.error("inbox claim failed: %s", type(exc).__name__)
            self._busy(message, key, words, delivery, started)
            return
        if row.mine(owner):
            if row.attempts > 1:
                log.warning("took over message from a worker that did not finish", extra={"attempt": row.attempts})
            if row.attempts > self.services.settings.max_attempts:
                self._poison(message, row, owner)
                delivery.offer(SUCCESS)
                return
            self._answer(message, Claimed(owner, row_id=row.id), words, delivery, started)
        else:
            metrics.DEDUPE_HITS.inc()
            self._follow_first(message, key, words, delivery, started)

    def _follow_first(self, message: BaseMessage, key: str, words: str | None, delivery: Delivery,
                      started: float) -> None:
        """A retry or duplicate: give the first attempt's reply, or take over if its worker died."""
        db = self.services.db
        deadline = time.monotonic() + self.services.settings.reply_deadline - 0.3
        while True:
            with db.sessions() as session:
                row = inbox.look(session, key)
            if row is None:  # pragma: no cover - claimed rows are never deleted
                delivery.offer(SUCCESS)
                return
            if row.status == ANSWERED:
                self._offer_text(message, row.payload, delivery)
                return
            if row.status == BUSY:
                self._offer_text(message, BUSY_TEXT, delivery)
                return
            if row.status != RECEIVED:  # owed/sending (a customer message carries it), failed
                delivery.offer(SUCCESS)
                return
            if row.lease_until is not None and row.lease_until < datetime.now(timezone.utc):
                owner = inbox.new_owner()
                with db.sessions() as session:
                    taken = inbox.take_over(session, row.id, owner, self.services.settings.claim_lease)
                    session.commit()
                if taken is not None:
                    log.warning("retry took over a message whose worker did not finish")
                    if taken.attempts > self.services.settings.max_attempts:
                        self._poison(message, taken, owner)
                        delivery.offer(SUCCESS)
                        return
                    self._answer(message, Claimed(owner, row_id=row.id), words, delivery, started)
                    return
            if time.monotonic() > deadline or delivery.gone:
                delivery.offer(SUCCESS)
                return
            time.sleep(0.1)

    # -- the answer ----------------------------------------------------------------

    def _answer(self, message: BaseMessage, claim: Claimed, words: str | None,
                delivery: Delivery, started: float, voice: "VoiceResult | None" = None) -> None:
        if words is None and voice is None and message.type == "voice" and claim.row_id is not None \
                and self._defer_voice(claim.row_id, claim.owner, delivery):
            return
        openid = str(message.source or "")
        ctx = Context(
            message=message,
            openid=openid,
            services=self.services,
            conversation=Conversation(self.services, openid),
            text=words,
            voice=voice,
        )
        if claim.in_redis:
            ctx.conversation.preload(claim.conversation)
        name, outcome, status = "unresolved", "ok", ANSWERED
        text: str | None = None
        # One unit of work per message: the handler's writes, the follower's
        # last-seen time and the settled inbox row commit together, once.
        with self.services.db.sessions() as session:
            ctx.session = session
            try:
                handler = self._route(ctx, claim)
                name = handler_name(handler)
                text = self._shape(ctx, handler(ctx))
                passive = delivery.reserve()
                status = ANSWERED if passive or text is None else OWED
                if claim.in_redis:
                    self._settle_claimed_in_redis(ctx, claim, status, name, text, started)
                else:
                    inbox.settle(session, row_id=claim.row_id, owner=claim.owner, status=status, handler=name,
                                 reply=_masked(text), payload=text, latency_ms=_ms(started))
                    self._touch(ctx)
                    session.commit()
            except inbox.LostClaim:
                session.rollback()
                log.warning("message taken over by another worker; this attempt's work is dropped")
                metrics.HANDLER_OUTCOMES.labels(name, "lost_claim").inc()
                if claim.found_in_database:
                    self._follow_database(message, claim, words, delivery, started)
                else:
                    delivery.offer(SUCCESS)
                return
            except SQLAlchemyError as exc:
                session.rollback()
                if is_outage(exc):
                    self.services.db.breaker.trip(exc)
                log.error("database unavailable while handling %s: %s", name, type(exc).__name__)
                metrics.HANDLER_OUTCOMES.labels(name, "db_error").inc()
                self._busy(message, dedupe_key(message), words, delivery, started, claim)
                return
            except Exception:
                session.rollback()
                log.exception("handler %s failed for %s", name, short_openid(openid))
                outcome, status, text = "error", FAILED, ERROR_TEXT
                self._record_failure(ctx, claim, name, started)
        metrics.HANDLER_OUTCOMES.labels(name, outcome).inc()
        log.info(
            "handled",
            extra={"openid": short_openid(openid), "type": ctx.msg_type, "event": ctx.event or "",
                   "handler": name, "outcome": outcome, "late": status == OWED, "ms": _ms(started)},
        )
        if outcome == "ok":
            # Before the reply: a follower who answers at once ("0" for a person, "更多") must find
            # the state this message left. One small write; the effects still wait for the reply.
            self._save_conversation(ctx)
        # The reply first: effects (notices, sends) must not delay what the follower waits for.
        offered = status != OWED and delivery.offer(
            SUCCESS if text is None else TextReply(message=message, content=text).render()
        )
        if outcome == "ok":
            self._after_commit(ctx)
        if status == OWED:
            assert claim.row_id is not None
            self.services.queue.send_reply(claim.row_id)
        elif not offered and text is not None:
            if status == FAILED:  # a failed row is final, never owed: its apology goes out directly
                self.services.queue.send_text(openid, text)
            else:
                self._owe(claim, text, openid)

    def _settle_claimed_in_redis(self, ctx: Context, claim: Claimed, status: str, handler: str,
                                 text: str | None, started: float) -> None:
        """Settle a Redis claim in the handler's unit of work (``ctx.session``).

        A unit of work that only read settles in Redis, its log row written behind; one that wrote,
        or a late answer (its row must exist for the customer-service send), inserts its row in the
        same transaction (:func:`storage.inbox.insert_settled`) and then tells Redis for retries.
        """
        assert claim.record is not None
        session = ctx.session
        record = claim.record = claim.record | {
            "status": status, "handler": handler, "reply": _masked(text), "latency_ms": _ms(started),
            "settled_at": utcnow().isoformat(), "touch": _touch_kind(ctx.event),
        }
        # A takeover (attempts > 1) always commits its row: the attempt it took over may be slow rather
        # than dead and commit too, and only the database's unique key can tell which one counts.
        if status == ANSWERED and record["attempts"] == 1 and not wrote(session):
            session.rollback()  # ends the read-only transaction: nothing to commit
            changes = ctx.conversation.take_changes()  # saved in the same script, before the reply
            try:
                if not self._settle_in_redis(claim, status, text, record, conversation=changes):
                    raise inbox.LostClaim(claim.key)
                return
            except REDIS_ERRORS:
                log.warning("Redis failed while settling; the message is logged in the database instead")
                if changes is not None:
                    ctx.conversation.keep_changes()  # saved the usual way (in-process while Redis is down)
        try:
            claim.row_id = inbox.insert_settled(session, record, payload=text)
        except inbox.LostClaim:
            claim.found_in_database = True  # another attempt committed this message: its reply counts
            raise
        self._touch(ctx)
        session.commit()
        if not self._settle_in_redis(claim, status, text, None):
            log.warning("message settled in the database after another attempt took its Redis claim")

    def _defer_voice(self, row_id: int, owner: str, delivery: Delivery) -> bool:
        """Voice that WeChat did not transcribe goes to the recogniser in the task queue (``bot.voice.task``)."""
        from bot.voice.task import defer

        return defer(self.services, row_id, owner, delivery)

    @staticmethod
    def _save_conversation(ctx: Context) -> None:
        try:
            ctx.conversation.save()
        except Exception:
            log.exception("conversation state not saved")

    def _after_commit(self, ctx: Context) -> None:
        """The effects handlers attached; a failure here loses no message."""
        for effect in ctx.effects:
            try:
                effect()
            except Exception:
                log.exception("after-commit effect failed")
        # A cadre's private reply kept until this follower wrote again goes out now (a set lookup
        # when none is kept; never raises).
        from bot.private_replies import deliver_pending_replies

        deliver_pending_replies(self.services, ctx.openid)

    def _owe(self, claim: Claimed, text: str, openid: str) -> None:
        """The webhook left during our commit: the committed passive reply goes as a customer message."""
        try:
            with self.services.db.session() as session:
                if claim.row_id is None:  # settled in Redis: its row may not be written yet
                    assert claim.record is not None
                    try:
                        claim.row_id = inbox.insert_settled(session, claim.record | {"status": OWED}, payload=text)
                    except inbox.LostClaim:  # the flusher wrote it as answered meanwhile
                        row = inbox.look(session, str(claim.key))
                        assert row is not None
                        claim.row_id = row.id
                        inbox.owe(session, row.id, text)
                else:
                    inbox.owe(session, claim.row_id, text)
            row_id = claim.row_id
            if claim.in_redis and self.services.redis_inbox is not None:
                try:
                    self.services.redis_inbox.mark(str(claim.key), OWED)  # a retry now gets "success"
                except REDIS_ERRORS:
                    pass  # a retry may get the passive reply too; the customer message still goes once
        except SQLAlchemyError as exc:
            log.error("could not mark reply as owed (%s); sending it directly", type(exc).__name__)
            self.services.queue.send_text(openid, text)
            return
        self.services.queue.send_reply(row_id)

    def _route(self, ctx: Context, claim: Claimed) -> Handler:
        if ctx.event is None:  # events are WeChat's doing, not the follower typing
            if claim.in_redis:  # counted by the claim script
                ctx.too_fast = claim.too_fast
            else:
                ctx.too_fast = not self.services.limiter.allow(self.services.settings.follower_rate, "in", ctx.openid)
        return self.router.resolve(ctx)

    def _touch(self, ctx: Context) -> None:
        kind = _touch_kind(ctx.event)
        if kind:
            followers.touch(ctx.session, ctx.openid, interaction=kind == "interaction")

    def _record_failure(self, ctx: Context, claim: Claimed, handler: str, started: float) -> None:
        """A handler bug must not also lose the follower's message: settle it as failed, apologise."""
        try:
            with self.services.db.session() as session:
                ctx.session = session
                if claim.in_redis:
                    assert claim.record is not None
                    record = claim.record | {"status": FAILED, "handler": handler, "reply": ERROR_TEXT,
                                             "latency_ms": _ms(started), "settled_at": utcnow().isoformat()}
                    claim.row_id = inbox.insert_settled(session, record, payload=ERROR_TEXT)
                else:
                    inbox.settle(session, row_id=claim.row_id, owner=claim.owner, status=FAILED, handler=handler,
                                 reply=ERROR_TEXT, payload=ERROR_TEXT, latency_ms=_ms(started))
                self._touch(ctx)
        except (SQLAlchemyError, inbox.LostClaim) as exc:
            log.error("failed message not recorded: %s", type(exc).__name__)
        if claim.in_redis:
            self._release_in_redis(claim, FAILED, ERROR_TEXT)

    def _release_in_redis(self, claim: Claimed, status: str, reply: str) -> None:
        """Close a Redis claim whose outcome is recorded elsewhere (the database, the spool): never raises."""
        try:
            self._settle_in_redis(claim, status, reply, None)
        except Exception:  # noqa: BLE001 - the claim's lease runs out; the sweeper finds the database row
            log.warning("Redis claim not closed", exc_info=True)

    def _shape(self, ctx: Context, result: object) -> str | None:
        """Turn what a handler returned into the reply text, paging long text behind "更多"."""
        echo = ctx.voice.echo() if ctx.voice is not None else ""  # "您说的是：……" before a transcript's answer
        if result is None or result == SUCCESS or isinstance(result, EmptyReply):
            return echo.strip() or None
        if isinstance(result, BaseReply):
            content = getattr(result, "content", None)
            return echo + str(content) if content else (echo.strip() or None)
        text = echo + str(result)
        pages = split_pages(text)
        if len(pages) > 1:
            ctx.conversation.set(more_pages=pages[1:])
            text = pages[0] + MORE_HINT
        return text

    # -- when the database cannot be used -------------------------------------------

    def _busy(self, message: BaseMessage, key: str, words: str | None, delivery: Delivery,
              started: float, claim: Claimed | None = None) -> None:
        """"系统繁忙" in time; the message is spooled to disk and reaches a cadre later."""
        metrics.HANDLER_OUTCOMES.labels("busy", "db_error").inc()
        if claim is not None and claim.in_redis:  # the spool carries it now: retries get "系统繁忙"
            self._release_in_redis(claim, BUSY, BUSY_TEXT)
        record = {
            "key": key, "openid": str(message.source or ""), "msg_type": str(message.type),
            "event": event_of(message), "msg_id": _msg_id_of(message), "text": _masked(words),
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        try:
            self.services.spool.append(record)
        except OSError as exc:
            log.error("spool not writable (%s): message from %s kept only in this log line: %s",
                      exc, short_openid(record["openid"]), record["text"])
        xml = TextReply(message=message, content=BUSY_TEXT).render()
        if not delivery.offer(xml):
            self.services.queue.send_text(str(message.source or ""), BUSY_TEXT)
        log.info("busy", extra={"openid": short_openid(record["openid"]), "ms": _ms(started)})

    def _poison(self, message: BaseMessage, row: inbox.InboxRow, owner: str) -> None:
        """Tried SISONG_MAX_ATTEMPTS times (each attempt's worker died): apologise, keep it for a cadre."""
        log.error("message abandoned after %d attempts", row.attempts)
        with self.services.db.session() as session:
            inbox.give_up(session, row.id, owner, "gave up")
        self.services.queue.send_text(str(message.source or ""), ERROR_TEXT)
        words = _words_of(message)
        if words:
            self.services.keep_for_cadre(str(message.source or ""), _masked(words) or "")

    def _offer_text(self, message: BaseMessage, text: str | None, delivery: Delivery) -> None:
        delivery.offer(SUCCESS if not text else TextReply(message=message, content=text).render())


def logged_text(message: BaseMessage) -> str | None:
    """The follower's words as the message log keeps them (masked)."""
    return _masked(_words_of(message))


def _touch_kind(event: str | None) -> str | None:
    """What a message does to the follower's row: ``interaction`` (opens the 48-hour window),
    ``seen`` (last-seen only), or None (WeChat's own events; subscribe handlers record themselves)."""
    if event in _SYSTEM_EVENTS or event in _SELF_RECORDING_EVENTS:
        return None
    return "interaction" if event is None or event in _INTERACTIVE_EVENTS else "seen"


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _masked(text: str | None) -> str | None:
    return None if text is None else mask_text(text)


def _msg_id_of(message: BaseMessage) -> str | None:
    return str(getattr(message, "id", "") or "") or None


def _words_of(message: BaseMessage) -> str | None:
    """The follower's words: text content, or the speech recognised from a voice message."""
    if message.type == "text":
        return str(message.content or "")
    if message.type == "voice":
        recognition = (getattr(message, "recognition", None) or "").strip()
        return recognition or None
    return None
