"""Rate limits (the ``limits`` library): Redis-backed across workers, in-process otherwise.

Limits protect people, not just servers: a household pressing send twenty
times should get one kind "slow down", and a broken script must not spend the
account's API quota. When Redis is down the limiter fails open: answering a
household matters more than counting their messages.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from limits import parse, storage, strategies
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Parsed once per rate string, not on every message.
_parse_rate = lru_cache(maxsize=32)(parse)


class RateLimiter:
    def __init__(self, redis_url: str | None) -> None:
        uri = redis_url or "memory://"
        options = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0} if redis_url else {}
        self.storage = storage.storage_from_string(uri, **options)
        self.strategy = strategies.MovingWindowRateLimiter(self.storage)

    def allow(self, rate: str, *identifiers: str) -> bool:
        """Count one hit against ``rate`` (e.g. "20/minute") for these identifiers."""
        try:
            return bool(self.strategy.hit(_parse_rate(rate), "sisong", *identifiers))
        except RedisError as exc:
            log.warning("rate limiter unavailable (%s), allowing", type(exc).__name__)
            return True
