"""The service container: everything a handler, task or command needs, built once from settings."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import Settings, get_settings
from bot.queue import TaskQueue
from bot.wechat_client import WeChatAPI
from storage.breaker import CircuitBreaker
from storage.db import Database
from storage.ratelimit import RateLimiter
from storage.redis_client import redis_breaker, redis_client
from storage.redis_inbox import RedisInbox
from storage.spool import Spool
from storage.state import StateStore, build_state

if TYPE_CHECKING:
    from bot.push import Pusher
    from knowledge.service import KnowledgeBase
    from knowledge.store.state import GenerationWatch

log = logging.getLogger(__name__)
_KNOWLEDGE_LOCK = threading.Lock()


class MigrationsPending(Exception):
    """The PostgreSQL schema is behind the code; ``sisong db upgrade`` fixes it."""


@dataclass
class Services:
    settings: Settings
    db: Database
    state: StateStore
    wechat: WeChatAPI
    limiter: RateLimiter
    spool: Spool
    # Shared by every Redis user (state, limiter, queue); None without Redis.
    redis_breaker: CircuitBreaker | None = None
    # The inbox's Redis fast path (None without Redis or with SISONG_WRITE_BEHIND=0).
    redis_inbox: RedisInbox | None = None
    queue: TaskQueue = field(init=False)
    _knowledge: "KnowledgeBase | None" = field(default=None, init=False, repr=False)
    _pusher: "Pusher | None" = field(default=None, init=False, repr=False)
    _kb_watch: "GenerationWatch | None" = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.queue = TaskQueue(self)

    @property
    def knowledge(self) -> "KnowledgeBase":
        """This process's policy knowledge base (loaded once, reloaded when the handbook changes)."""
        if self._knowledge is None:
            with _KNOWLEDGE_LOCK:  # two handler threads asking first must not start two watches
                if self._knowledge is None:
                    from knowledge.service import KnowledgeBase
                    from knowledge.store.state import GenerationWatch

                    watch = None
                    if not self.db.is_sqlite:  # listen before the first load, so no change falls in between
                        watch = GenerationWatch(self.db.url.replace("postgresql+psycopg://", "postgresql://"))
                        self._kb_watch = watch.start()
                    self._knowledge = KnowledgeBase(self.db, watch=watch)
        return self._knowledge

    @property
    def pusher(self) -> "Pusher":
        """This process's push sender (``bot.push``), built on first use."""
        if self._pusher is None:
            from bot.push import Pusher

            self._pusher = Pusher(self)
        return self._pusher

    def keep_for_cadre(self, openid: str, words: str) -> None:
        """Queue a follower's (masked) words for a person: they could not be answered automatically."""
        from knowledge.store.unanswered import record_unanswered

        record_unanswered(self.db, openid, words)

    def close(self) -> None:
        if self._kb_watch is not None:
            self._kb_watch.stop()
        if self._pusher is not None:
            self._pusher.stop()
        self.queue.stop_embedded()
        if self.redis_breaker is not None:
            self.redis_breaker.stop()
        self.db.dispose()


def build_services(settings: Settings | None = None, *, migrate: bool | None = None) -> Services:
    """Build the container; on SQLite (the embedded default) pending migrations are applied.

    On PostgreSQL migrating is an explicit step (``sisong db upgrade``) so that
    several workers never race to alter a production schema.
    """
    settings = settings or get_settings()
    db = Database(settings.database_url, timeout=settings.db_timeout, breaker_seconds=settings.breaker_seconds)
    if migrate if migrate is not None else db.is_sqlite:
        applied = db.upgrade()
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
    breaker = (
        redis_breaker(settings.redis_url, settings.redis_timeout, settings.breaker_seconds)
        if settings.redis_url else None
    )
    state = build_state(settings.redis_url, breaker, settings.redis_timeout)
    return Services(
        settings=settings,
        db=db,
        state=state,
        wechat=WeChatAPI(settings, db),
        limiter=RateLimiter(settings.redis_url, breaker, settings.redis_timeout),
        spool=Spool(settings.spool_path),
        redis_breaker=breaker,
        redis_inbox=(RedisInbox(redis_client(settings.redis_url, settings.redis_timeout, decode_responses=False))
                     if settings.redis_url and settings.write_behind else None),
    )


def check_schema(services: Services) -> None:
    pending = services.db.pending_migrations()
    if pending:
        raise MigrationsPending("数据库结构需要升级，请先运行: sisong db upgrade")


def notify_followers(openids: list[str], text: str, services: Services | None = None) -> int:
    """Queue a customer-service text to each follower (e.g. an answer to an unanswered question)."""
    own = services is None
    services = services or build_services()
    try:
        for openid in openids:
            services.queue.send_text(openid, text)
        return len(openids)
    finally:
        if own:
            services.db.dispose()
