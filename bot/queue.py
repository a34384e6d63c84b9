"""The task queue (Huey): outbound sends that must not hold up a webhook reply.

``SqliteHuey`` beside the database on the embedded default, ``RedisHuey`` when
Redis is configured. Tasks are registered on the instance (not at import) so
the app, the CLI and tests can each build a queue from their own settings.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from bot.wechat_client import WeChatAPIError
from bot.wecom import WeComError
from storage import followers, message_log

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def build_huey(services: "Services") -> Huey:
    settings = services.settings
    if settings.uses_redis:
        return RedisHuey("sisong", url=settings.redis_url, blocking=True, read_timeout=1)
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
        self.wecom_task = task(name="wecom_notice", retries=3, retry_delay=30)(self._wecom_notice)
        self._consumer: _EmbeddedConsumer | None = None

    # -- enqueueing ---------------------------------------------------------

    def enqueue(self, task: Any, *args: Any) -> None:
        """Enqueue; if the broker is down, run in a thread rather than lose the message."""
        try:
            task(*args)
        except Exception as exc:  # RedisError, sqlite3.OperationalError, OSError, ...
            log.error("queue unavailable (%s), running %s in-process", type(exc).__name__, task.name)
            threading.Thread(target=task.call_local, args=args, daemon=True).start()

    def send_text(self, openid: str, text: str) -> None:
        self.enqueue(self.send_text_task, openid, text)

    def notify_cadres(self, markdown: str) -> None:
        if self.services.wecom is None:
            log.info("no SISONG_WECOM_ROBOT_URL, notice not sent")
            return
        self.enqueue(self.wecom_task, markdown)

    # -- task bodies --------------------------------------------------------

    def _send_text(self, openid: str, text: str) -> None:
        """A customer-service text; permanent refusals are recorded, not retried."""
        errcode = 0
        try:
            self.services.wechat.send_text(openid, text)
        except WeChatAPIError as exc:
            errcode = exc.errcode if exc.errcode is not None else -2
            reason = exc.unreachable_reason
            self._record_send(openid, text, errcode, reason)
            if reason or exc.errcode not in (None, -1, 45009):
                log.warning("customer message not delivered: %s", exc)
                return
            raise
        self._record_send(openid, text, errcode, None)

    def _record_send(self, openid: str, text: str, errcode: int, unreachable: str | None) -> None:
        try:
            with self.services.db.session() as session:
                message_log.log_outbound(
                    session, openid=openid, msg_type="text", text=text, channel="custom", errcode=errcode
                )
                if unreachable:
                    followers.mark_unreachable(session, openid, unreachable)
        except Exception:
            log.exception("could not record outbound message")

    def _wecom_notice(self, markdown: str) -> None:
        assert self.services.wecom is not None
        try:
            self.services.wecom.send_markdown(markdown)
        except WeComError as exc:
            log.warning("wecom notice failed: %s", exc)
            raise

    # -- consumers ----------------------------------------------------------

    def create_consumer(self, workers: int = 2, embedded: bool = False) -> Consumer:
        cls = _EmbeddedConsumer if embedded else Consumer
        # A short poll ceiling keeps customer-service messages prompt and shutdown quick.
        return cls(
            self.huey, workers=workers, worker_type="thread", periodic=True,
            initial_delay=0.05, max_delay=1.0, shutdown_timeout=5,
        )

    def start_embedded(self, workers: int = 2) -> None:
        self._consumer = self.create_consumer(workers=workers, embedded=True)  # type: ignore[assignment]
        self._consumer.start()

    def stop_embedded(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def pending(self) -> int:
        return int(self.huey.pending_count())
