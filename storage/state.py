"""Short-lived shared state: conversation sessions, replay memory, one-off flags.

With ``SISONG_REDIS_URL`` set, state lives in Redis so every worker process
sees the same keys. Without it, the same interface runs in-process. When Redis
is configured but unreachable or hung, :class:`ResilientState` keeps the
service answering from in-process state and reports itself degraded for
``/healthz``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Protocol


from storage.breaker import CircuitBreaker
from storage.redis_client import REDIS_DOWN, redis_client

log = logging.getLogger(__name__)


class StateStore(Protocol):
    backend: str

    def claim(self, key: str, value: str, ttl: int) -> bool: ...
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: int | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def ping(self) -> None: ...


class MemoryState:
    """In-process state with TTLs, for the embedded default and as Redis's stand-in."""

    backend = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self._mutex = threading.Lock()
        self._last_sweep = time.monotonic()

    def _alive(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= now:
            del self._data[key]
            return None
        return value

    def _sweep(self, now: float) -> None:
        # Amortised cleanup so dedupe keys of a busy day do not pile up.
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]

    def claim(self, key: str, value: str, ttl: int) -> bool:
        now = time.monotonic()
        with self._mutex:
            self._sweep(now)
            if self._alive(key, now) is not None:
                return False
            self._data[key] = (value, now + ttl)
            return True

    def get(self, key: str) -> str | None:
        with self._mutex:
            return self._alive(key, time.monotonic())

    def set(self, key: str, value: str, ttl: int | None = None) -> None:
        with self._mutex:
            self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    def delete(self, key: str) -> None:
        with self._mutex:
            self._data.pop(key, None)

    def ping(self) -> None:
        return None


class RedisState:
    """State in Redis, shared by every worker process."""

    backend = "redis"

    def __init__(self, url: str, timeout: float = 0.5, prefix: str = "sisong:") -> None:
        self.prefix = prefix
        self.client = redis_client(url, timeout)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def claim(self, key: str, value: str, ttl: int) -> bool:
        return bool(self.client.set(self._k(key), value, nx=True, ex=ttl))

    def get(self, key: str) -> str | None:
        return self.client.get(self._k(key))  # type: ignore[return-value]

    def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self.client.set(self._k(key), value, ex=ttl)

    def delete(self, key: str) -> None:
        self.client.delete(self._k(key))

    def ping(self) -> None:
        self.client.ping()


class ResilientState:
    """Redis first; in-process while the Redis breaker is open.

    Degraded mode trades cross-process guarantees (shared conversation state,
    replay memory) for still answering households, which matters more; the
    database's unique key on each message keeps dedupe exact either way. The
    breaker is shared with the rate limiter and the queue, so one timeout
    switches all of them and a hung Redis costs one timeout, not one per call.
    """

    backend = "redis"

    def __init__(self, primary: RedisState, breaker: CircuitBreaker, fallback: MemoryState | None = None) -> None:
        self.primary = primary
        self.breaker = breaker
        self.fallback = fallback or MemoryState()

    @property
    def degraded(self) -> bool:
        return self.breaker.is_open

    @property
    def last_error(self) -> str | None:
        return self.breaker.last_error

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.breaker.allow():
            try:
                return getattr(self.primary, method)(*args, **kwargs)
            except REDIS_DOWN as exc:
                self.breaker.trip(exc)
        return getattr(self.fallback, method)(*args, **kwargs)

    def claim(self, key: str, value: str, ttl: int) -> bool:
        return bool(self._call("claim", key, value, ttl))

    def get(self, key: str) -> str | None:
        return self._call("get", key)  # type: ignore[no-any-return]

    def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self._call("set", key, value, ttl)

    def delete(self, key: str) -> None:
        self._call("delete", key)

    def ping(self) -> None:
        """Raises when Redis does not answer (within the clients' timeout)."""
        try:
            self.primary.ping()
        except REDIS_DOWN as exc:
            self.breaker.trip(exc)
            raise


def build_state(redis_url: str | None, breaker: CircuitBreaker | None = None,
                timeout: float = 0.5) -> StateStore:
    if redis_url:
        assert breaker is not None, "a Redis state store needs the shared Redis breaker"
        return ResilientState(RedisState(redis_url, timeout), breaker)
    return MemoryState()


def get_json(store: StateStore, key: str) -> Any:
    raw = store.get(key)
    return None if raw is None else json.loads(raw)


def set_json(store: StateStore, key: str, value: Any, ttl: int | None = None) -> None:
    store.set(key, json.dumps(value, ensure_ascii=False), ttl)
