"""The task queue (Huey): outbound sends and voice transcription, which must not hold up a webhook reply.

``SqliteHuey`` beside the database on the embedded default, ``RedisHuey`` when
Redis is configured. Tasks are registered on the instance (not at import) so
the app, the CLI and tests can each build a queue from their own settings.

Enqueueing never waits on a sick Redis: the shared Redis breaker sends the
task to a thread at once while it is open. What must not be lost does not
depend on the queue alone: a late answer is an ``owed`` inbox row, and the
sweeper re-enqueues it if its task vanished (``send_reply``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from storage.privacy import mask_text
from bot.wechat_client import UNREACHABLE_ERRORS, WeChatAPIError
from storage import followers, inbox, message_log
from storage.models.messages import ANSWERED, OWED, UNDELIVERABLE
from storage.redis_client import REDIS_DOWN, redis_pool

if TYPE_CHECKING:
    from bot.services import Services
    from bot.voice.service import VoiceService

log = logging.getLogger(__name__)

# Seconds a consumer's blocking read waits for a task before looking at its stop flag again.
BLOCKING_READ = 0.1
# Recorded as the errcode of a send that timed out after it may have reached WeChat.
MAYBE_DELIVERED = -3


def _errcode(exc: WeChatAPIError) -> int:
    if getattr(exc, "maybe_delivered", False):
        return MAYBE_DELIVERED
    return exc.errcode if exc.errcode is not None else -2


def _unreachable(errcode: int) -> str | None:
    """43004/43101: the follower cannot be reached any more."""
    return UNREACHABLE_ERRORS.get(errcode)


def build_huey(services: "Services") -> Huey:
    settings = services.settings
    if settings.uses_redis:
        assert settings.redis_url is not None
        # The socket timeout must outlast the consumer's blocking read. The read is short because a
        # stopping consumer waits for it: a tenth of a second keeps shutdown (and each test's teardown)
        # quick at the cost of a few idle BRPOPs a second.
        pool = redis_pool(settings.redis_url, settings.redis_timeout,
                          read_timeout=BLOCKING_READ + settings.redis_timeout)
        return RedisHuey("sisong", connection_pool=pool, blocking=True, read_timeout=BLOCKING_READ)
    path = settings.queue_file
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("sisong", filename=str(path))


class _EmbeddedConsumer(Consumer):
    """A consumer that runs inside the web process: uvicorn owns the signals."""

    def _set_signal_handlers(self) -> None:
        return None


class TaskQueue:
    def __init__(self, services: "Services") -> None:
        self.services = services
        self.huey = build_huey(services)
        task = self.huey.task
        self.send_text_task = task(name="send_text", retries=3, retry_delay=30)(self._send_text)
        # No queue-level retries: the sweeper re-arms an owed reply whose send failed or vanished.
        self.send_reply_task = task(name="send_reply")(self._send_reply)
        # Group notices are rows (bot.notices); the task sends a robot's pending ones, merged. No queue
        # retries: rows that could not go wait for the next kick or the sweeper (flush_notices).
        self.notices_task = task(name="wecom_notices")(self._send_notices)
        # Tasks named "wecom_notice" (one markdown each) may still sit in Redis from before the notice rows.
        self.wecom_task = task(name="wecom_notice")(self._wecom_notice)
        # A cadre's private reply kept until the follower wrote again (bot.private_replies); the row is the claim.
        self.replies_task = task(name="deliver_replies")(self._deliver_replies)
        # Pushes (bot.push): the rows are the work; the task only wakes this process's sender.
        self.push_task = task(name="push_kick")(self._push_kick)
        # A voice message WeChat did not transcribe (bot.voice.task). No queue retries: the inbox row's
        # claim is the job; if this task vanishes or its worker dies, the sweeper takes the message over.
        self.voice_task = task(name="transcribe_voice")(self._transcribe_voice)
        self._voice: VoiceService | None = None
        self._voice_lock = threading.Lock()
        self._consumer: _EmbeddedConsumer | None = None

    @property
    def voice(self) -> "VoiceService":
        """This process's speech recogniser and its rules (``bot.voice.service``); the model loads on first use."""
        with self._voice_lock:  # one per process: two would each load the model
            if self._voice is None:
                from bot.voice.service import VoiceService

                self._voice = VoiceService(self.services.settings)
            return self._voice

    # -- enqueueing ---------------------------------------------------------

    def enqueue(self, task: Any, *args: Any) -> None:
        """Enqueue; if the broker is down or hung, run in a thread rather than lose the task."""
        breaker = self.services.redis_breaker
        if breaker is None or breaker.allow():
            try:
                task(*args)
                return
            except REDIS_DOWN as exc:
                if breaker is not None:
                    breaker.trip(exc)
                else:
                    log.error("queue unavailable (%s), running %s in-process", type(exc).__name__, task.name)
            except Exception as exc:  # sqlite3.OperationalError, ...
                log.error("queue unavailable (%s), running %s in-process", type(exc).__name__, task.name)
        threading.Thread(target=task.call_local, args=args, daemon=True).start()

    def send_text(self, openid: str, text: str) -> None:
        self.enqueue(self.send_text_task, openid, text)

    def send_reply(self, row_id: int) -> None:
        """Send the owed reply of inbox row ``row_id`` as a customer-service message (exactly one sender)."""
        self.enqueue(self.send_reply_task, row_id)

    def send_notices(self, robot_url: str) -> None:
        """Send this robot's pending group notices (``bot.notices.send_pending``); call after the commit."""
        self.enqueue(self.notices_task, robot_url)

    def deliver_replies(self, openid: str) -> None:
        """Send the private replies kept for ``openid`` now that they wrote (``bot.private_replies.deliver_now``)."""
        self.enqueue(self.replies_task, openid)

    def push_kick(self) -> None:
        """Wake a push sender (in whichever process consumes the queue) for rows that are due."""
        self.enqueue(self.push_task)

    def transcribe_voice(self, row_id: int, owner: str) -> None:
        """Transcribe and answer the voice message of inbox row ``row_id``, whose claim ``owner`` holds."""
        self.enqueue(self.voice_task, row_id, owner)

    # -- task bodies --------------------------------------------------------

    def _send_text(self, openid: str, text: str) -> None:
        """A customer-service text; permanent refusals are recorded, not retried."""
        errcode = 0
        try:
            self.services.wechat.send_text(openid, text)
        except WeChatAPIError as exc:
            errcode = _errcode(exc)
            reason = exc.unreachable_reason
            self._record_send(openid, text, errcode, reason)
            if errcode == MAYBE_DELIVERED:
                log.warning("customer message may have reached WeChat (timed out); not sent again")
                return
            if reason or exc.errcode not in (None, -1, 45009):
                log.warning("customer message not delivered: %s", exc)
                return
            raise
        self._record_send(openid, text, errcode, None)

    def _send_reply(self, row_id: int) -> None:
        """An owed late answer: claim it, send it, settle it; a failed claim means someone else has it."""
        db = self.services.db
        owner = inbox.new_owner()
        timeout = self.services.settings.api_timeout * (self.services.settings.api_retry_attempts + 1)
        with db.session() as session:
            claimed = inbox.claim_send(session, row_id, owner, lease=max(60.0, timeout * 2))
        if claimed is None:
            return
        openid, text = claimed
        status, errcode, retry_after = ANSWERED, 0, None
        try:
            self.services.wechat.send_text(openid, text)
        except WeChatAPIError as exc:
            errcode = _errcode(exc)
            if errcode == MAYBE_DELIVERED:
                log.warning("late answer may have reached WeChat (timed out); not sent again")
            elif exc.unreachable_reason or exc.errcode not in (None, -1, 45009):
                status = UNDELIVERABLE
                log.warning("late answer not deliverable: %s", exc)
            else:
                status, retry_after = OWED, 30.0
                log.warning("late answer not sent yet (%s); the sweeper will retry", exc)
        with db.session() as session:
            inbox.finish_send(session, row_id, owner, status, errcode, retry_after)
        if status != OWED:
            self._record_send(openid, text, errcode, _unreachable(errcode))

    def _record_send(self, openid: str, text: str, errcode: int, unreachable: str | None) -> None:
        """The outbound log line (masked) and, for 43004/43101, the follower marked unreachable."""
        try:
            with self.services.db.session() as session:
                message_log.log_outbound(
                    session, openid=openid, msg_type="text", text=mask_text(text), channel="custom",
                    errcode=errcode,
                )
                if unreachable:
                    followers.mark_unreachable(session, openid, unreachable)
        except Exception:
            log.exception("could not record outbound message")

    def _send_notices(self, robot_url: str) -> None:
        from bot.notices import send_pending

        send_pending(self.services, robot_url)

    def _wecom_notice(self, markdown: str) -> None:
        """A notice for the township group (SISONG_WECOM_ROBOT_URL), queued as a row, then sent."""
        url = self.services.settings.wecom_robot_url
        if not url:
            log.info("no SISONG_WECOM_ROBOT_URL, notice not sent")
            return
        from bot.notices import queue_notice, send_pending

        queue_notice(self.services, url, markdown)
        send_pending(self.services, url)

    def _push_kick(self) -> None:
        self.services.pusher.kick()

    def _transcribe_voice(self, row_id: int, owner: str) -> None:
        from bot.voice.task import transcribe

        transcribe(self.services, row_id, owner)

    def _deliver_replies(self, openid: str) -> None:
        from bot.private_replies import deliver_now

        deliver_now(self.services, openid)

    # -- consumers ----------------------------------------------------------

    def create_consumer(self, workers: int = 2, embedded: bool = False) -> Consumer:
        cls = _EmbeddedConsumer if embedded else Consumer
        # A short poll ceiling keeps customer-service messages prompt and shutdown quick.
        return cls(
            self.huey, workers=workers, worker_type="thread", periodic=True,
            initial_delay=0.05, max_delay=1.0, shutdown_timeout=5,
        )

    def start_embedded(self, workers: int = 2) -> None:
        """Start the in-process consumer once; a second app on the same services reuses it.

        Starting another would leave the first running unseen after ``stop_embedded``.
        """
        if self._consumer is not None:
            return
        self._consumer = self.create_consumer(workers=workers, embedded=True)  # type: ignore[assignment]
        self._consumer.start()

    def stop_embedded(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def pending(self) -> int:
        return int(self.huey.pending_count())
