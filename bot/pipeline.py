"""From a trusted message to the reply XML: dedupe, bookkeeping, routing, logging.

Runs in a worker thread (wechatpy, SQLAlchemy and redis-py are synchronous).
The webhook waits for it up to the reply deadline; a late answer is handed to
:class:`Delivery`, which sends it as a customer-service message instead.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from wechatpy.replies import BaseReply, EmptyReply, TextReply
from wechatpy.messages import BaseMessage

from bot import metrics
from bot.context import Context, Conversation
from bot.inbound import Inbound
from bot.privacy import short_openid
from bot.router import Handler, Router, handler_name
from bot.services import Services
from bot.textfit import MORE_HINT, split_pages
from storage import followers, message_log

log = logging.getLogger(__name__)

SUCCESS = "success"
BUSY_TEXT = "系统繁忙，请稍后再试。"
ERROR_TEXT = "抱歉，刚才出了点小问题，请稍后再试。也可以回复“0”请工作人员帮您。"
PENDING = "pending"
DONE_PREFIX = "done:"

# Messages that show a person is there, opening the customer-service window.
_INTERACTIVE_EVENTS = {"subscribe", "subscribe_scan", "scan", "click", "view", "scancode_push",
                       "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin",
                       "location_select"}
# Events WeChat sends about our own sends, not from the follower.
_SYSTEM_EVENTS = {"templatesendjobfinish", "masssendjobfinish", "subscribe_msg_sent_event"}
# Events whose handlers record the follower themselves.
_SELF_RECORDING_EVENTS = {"subscribe", "subscribe_scan", "unsubscribe"}


def dedupe_key(message: BaseMessage) -> str:
    """MsgId for messages; FromUserName + CreateTime (+ event) for events, as WeChat advises."""
    msg_id = getattr(message, "id", 0)
    if msg_id:
        return f"dedupe:m:{msg_id}"
    event = getattr(message, "event", "") or message.type
    created = message._data.get("CreateTime", "")
    return f"dedupe:e:{message.source}:{created}:{event}"


@dataclass
class Delivery:
    """Hands a reply to whoever is still waiting for it: the webhook, or the queue if it gave up."""

    services: Services
    openid: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _late: bool = False
    _claimed: bool = False
    _text: str | None = None

    def give_up(self) -> tuple[bool, str | None]:
        """The webhook's deadline passed; says whether the answer was already claimed in time."""
        with self._lock:
            self._late = True
            return self._claimed, self._text

    def arrived_in_time(self, text: str | None) -> bool:
        """True if the webhook is still waiting; else ``text`` goes out through the queue."""
        with self._lock:
            if not self._late:
                self._claimed, self._text = True, text
                return True
        if text:
            self.services.queue.send_text(self.openid, text)
        return False


class Pipeline:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router

    # -- entry point ----------------------------------------------------------

    def process(self, inbound: Inbound, delivery: Delivery) -> str:
        """Return the plaintext reply XML, or ``success``."""
        message = inbound.message
        key = dedupe_key(message)
        state = self.services.state
        if not state.claim(key, PENDING, self.services.settings.dedupe_ttl):
            metrics.DEDUPE_HITS.inc()
            return self._wait_for_first(key)

        try:
            reply_xml = self._answer(message, delivery)
        except Exception:  # a bug outside any handler: still answer, never leave the key pending
            log.exception("message pipeline failed")
            in_time = delivery.arrived_in_time(ERROR_TEXT)
            reply_xml = TextReply(message=message, content=ERROR_TEXT).render() if in_time else SUCCESS
        state.set(key, DONE_PREFIX + reply_xml, self.services.settings.dedupe_ttl)
        return reply_xml

    def _wait_for_first(self, key: str) -> str:
        """A retry: wait for the first delivery's reply rather than run the handler twice."""
        deadline = time.monotonic() + self.services.settings.reply_deadline - 0.3
        while time.monotonic() < deadline:
            value = self.services.state.get(key)
            if value and value.startswith(DONE_PREFIX):
                return value[len(DONE_PREFIX):]
            if value is None:
                break
            time.sleep(0.05)
        return SUCCESS

    # -- the answer -----------------------------------------------------------

    def _answer(self, message: BaseMessage, delivery: Delivery) -> str:
        started = time.perf_counter()
        openid = str(message.source or "")
        ctx = Context(
            message=message,
            openid=openid,
            services=self.services,
            conversation=Conversation(self.services, openid),
            text=_words_of(message),
        )
        name, outcome = "unresolved", "ok"
        # One unit of work per message: the handler's writes, the follower's
        # last-seen time and the log line commit together, once.
        with self.services.db.sessions() as session:
            ctx.session = session
            try:
                handler = self._route(ctx)
                name = handler_name(handler)
                text, reply = self._shape(ctx, handler(ctx))
                self._bookkeep(ctx, name, text, started)
                session.commit()
                ctx.conversation.save()
            except SQLAlchemyError as exc:
                session.rollback()
                log.error("database unavailable while handling %s: %s", name, type(exc).__name__)
                outcome, text, reply = "db_error", BUSY_TEXT, TextReply(message=message, content=BUSY_TEXT)
            except Exception:
                session.rollback()
                log.exception("handler %s failed for %s", name, short_openid(openid))
                outcome, text, reply = "error", ERROR_TEXT, TextReply(message=message, content=ERROR_TEXT)
                self._log_failure(ctx, name, text, started)
        metrics.HANDLER_OUTCOMES.labels(name, outcome).inc()

        in_time = delivery.arrived_in_time(text)
        log.info(
            "handled",
            extra={"openid": short_openid(openid), "type": ctx.msg_type, "event": ctx.event or "",
                   "handler": name, "outcome": outcome, "late": not in_time,
                   "ms": int((time.perf_counter() - started) * 1000)},
        )
        if not in_time or isinstance(reply, EmptyReply):
            return SUCCESS
        return str(reply.render())

    def _route(self, ctx: Context) -> Handler:
        if ctx.event is None:  # events are WeChat's doing, not the follower typing
            allowed = self.services.limiter.allow(self.services.settings.follower_rate, "in", ctx.openid)
            ctx.extras["too_fast"] = not allowed
        return self.router.resolve(ctx)

    def _bookkeep(self, ctx: Context, handler: str, reply: str | None, started: float) -> None:
        event = ctx.event
        if event not in _SYSTEM_EVENTS and event not in _SELF_RECORDING_EVENTS:
            interactive = event is None or event in _INTERACTIVE_EVENTS
            followers.touch(ctx.session, ctx.openid, interaction=interactive)
        message_log.log_inbound(
            ctx.session,
            openid=ctx.openid,
            msg_type=ctx.msg_type,
            event=event,
            msg_id=str(getattr(ctx.message, "id", "") or "") or None,
            text=ctx.text,
            handler=handler,
            latency_ms=int((time.perf_counter() - started) * 1000),
            reply=reply,
        )

    def _log_failure(self, ctx: Context, handler: str, reply: str, started: float) -> None:
        """A handler bug must not also lose the follower's message."""
        try:
            with self.services.db.session() as session:
                ctx.session = session
                self._bookkeep(ctx, handler, reply, started)
        except SQLAlchemyError as exc:
            log.error("message log not written: %s", type(exc).__name__)

    def _shape(self, ctx: Context, result: object) -> tuple[str | None, BaseReply]:
        """Turn what a handler returned into a reply, paging long text behind "更多"."""
        if result is None or result == SUCCESS:
            return None, EmptyReply()
        if isinstance(result, BaseReply):
            result.source = ctx.message.target
            result.target = ctx.message.source
            return getattr(result, "content", None), result
        text = str(result)
        pages = split_pages(text)
        if len(pages) > 1:
            ctx.conversation.set(more_pages=pages[1:])
            text = pages[0] + MORE_HINT
        return text, TextReply(message=ctx.message, content=text)


def _words_of(message: BaseMessage) -> str | None:
    """The follower's words: text content, or the speech recognised from a voice message."""
    if message.type == "text":
        return str(message.content or "")
    if message.type == "voice":
        recognition = (getattr(message, "recognition", None) or "").strip()
        return recognition or None
    return None
