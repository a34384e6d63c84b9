"""Rate limits (the ``limits`` library): Redis-backed across workers, in-process otherwise.

Limits protect people, not just servers: a household pressing send twenty
times should get one kind "slow down", and a broken script must not spend the
account's API quota. When Redis is down or hung the limiter counts in-process
(per worker) until the shared Redis breaker closes again: answering a
household matters more than counting their messages exactly, and a hung
Redis must not cost each message a socket timeout.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from functools import lru_cache

from limits import RateLimitItem, parse, storage, strategies
from limits.util import WindowStats

from storage.breaker import CircuitBreaker
from storage.redis_client import REDIS_DOWN, redis_pool

# Parsed once per rate string, not on every message.
_parse_rate = lru_cache(maxsize=32)(parse)


class LocalMovingWindow:
    """The moving-window limiter in this process (the embedded default, and while Redis is down).

    Same rule as ``limits``' moving window (at most ``amount`` hits within the last ``expiry``
    seconds), without its memory storage: that one starts a timer thread every 10 ms which scans
    every key, so with a few thousand followers the limiter cost more than answering them. Here a
    key's old hits are dropped when it is used, and idle keys once a minute.
    """

    SWEEP_EVERY = 60.0

    def __init__(self) -> None:
        self._hits: dict[str, tuple[deque[float], int]] = {}
        self._lock = threading.Lock()
        self._swept = time.time()

    def _current(self, item: RateLimitItem, identifiers: tuple[str, ...], now: float) -> deque[float]:
        key = item.key_for(*identifiers)
        expiry = int(item.get_expiry())
        hits, _ = self._hits.get(key) or (deque(), expiry)
        while hits and hits[0] <= now - expiry:
            hits.popleft()
        self._hits[key] = (hits, expiry)
        return hits

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        for key, (hits, expiry) in list(self._hits.items()):
            if not hits or hits[-1] <= now - expiry:
                del self._hits[key]

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        now = time.time()
        with self._lock:
            self._sweep(now)
            hits = self._current(item, identifiers, now)
            if len(hits) + cost > item.amount:
                return False
            hits.extend([now] * cost)
            return True

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        with self._lock:
            return len(self._current(item, identifiers, time.time())) < item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = time.time()
        with self._lock:
            hits = self._current(item, identifiers, now)
            reset = hits[0] + item.get_expiry() if hits else now
            return WindowStats(reset, max(0, item.amount - len(hits)))


class RateLimiter:
    def __init__(self, redis_url: str | None, breaker: CircuitBreaker | None = None,
                 timeout: float = 0.5) -> None:
        self.breaker = breaker
        self.local = LocalMovingWindow()
        self.shared: strategies.MovingWindowRateLimiter | None = None
        if redis_url:
            assert breaker is not None, "a Redis rate limiter needs the shared Redis breaker"
            backend = storage.storage_from_string(redis_url, connection_pool=redis_pool(redis_url, timeout))
            self.shared = strategies.MovingWindowRateLimiter(backend)

    def allow(self, rate: str, *identifiers: str, cost: int = 1) -> bool:
        """Count one hit (or ``cost`` hits) against ``rate`` (e.g. "20/minute") for these identifiers."""
        item = _parse_rate(rate)
        if self.shared is not None and self.breaker is not None and self.breaker.allow():
            try:
                return bool(self.shared.hit(item, "sisong", *identifiers, cost=cost))
            except REDIS_DOWN as exc:
                self.breaker.trip(exc)  # logs once per outage, not once per message
        return bool(self.local.hit(item, "sisong", *identifiers, cost=cost))

    def shared_window(self, rate: str, *identifiers: str) -> tuple[str, int, int] | None:
        """The Redis key, amount and window seconds of ``rate`` for these identifiers, for a caller that
        counts the hit inside its own script (``storage.redis_inbox``); None without shared Redis."""
        if self.shared is None:
            return None
        item = _parse_rate(rate)
        return f"LIMITS:{item.key_for('sisong', *identifiers)}", int(item.amount), int(item.get_expiry())

    def retry_after(self, rate: str, *identifiers: str) -> float:
        """Seconds until the window of ``rate`` has room again (0.0 if it has now).

        A sender that was refused sleeps this long instead of polling Redis.
        """
        item = _parse_rate(rate)
        stats = None
        if self.shared is not None and self.breaker is not None and self.breaker.allow():
            try:
                stats = self.shared.get_window_stats(item, "sisong", *identifiers)
            except REDIS_DOWN as exc:
                self.breaker.trip(exc)
        if stats is None:
            stats = self.local.get_window_stats(item, "sisong", *identifiers)
        if stats.remaining > 0:
            return 0.0
        return max(0.0, float(stats.reset_time) - time.time())

    def would_allow(self, rate: str, *identifiers: str) -> bool:
        """Whether one more hit would still be allowed, without counting one.

        For limits that count only failures (wrong binding codes): the check
        must come before the attempt, the hit only after it failed.
        """
        item = _parse_rate(rate)
        if self.shared is not None and self.breaker is not None and self.breaker.allow():
            try:
                return bool(self.shared.test(item, "sisong", *identifiers))
            except REDIS_DOWN as exc:
                self.breaker.trip(exc)
        return bool(self.local.test(item, "sisong", *identifiers))
