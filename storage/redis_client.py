"""Every Redis connection Sisong opens: short timeouts, no hidden retries, one breaker.

redis-py's default client retries a timed-out command three times with
backoff, so a *hung* Redis cost every message several socket timeouts. Here
every client (state, rate limiter, task queue) gets connect and socket
timeouts of ``SISONG_REDIS_TIMEOUT``, no retries, and they share one
:class:`~storage.breaker.CircuitBreaker` (built with the service container):
after one timeout all of them fall back at once, and a background probe
brings them back together.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storage.breaker import CircuitBreaker

# What a hung or stopped Redis raises through redis-py (and through Huey and limits).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
# Also what a Redis that answers but refuses raises (out of memory under maxmemory, read-only replica
# after a failover, a command it does not know): where the message inbox uses Redis, any of these
# sends the message down the database path instead of losing it.
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

def redis_pool(url: str, timeout: float, *, read_timeout: float | None = None,
               decode_responses: bool = False) -> redis.ConnectionPool:
    """A pool whose connections give up after ``timeout`` (``read_timeout`` for blocking reads)."""
    return redis.ConnectionPool.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=read_timeout or timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        decode_responses=decode_responses,
    )


def redis_client(url: str, timeout: float, *, decode_responses: bool = True) -> redis.Redis:
    return redis.Redis(connection_pool=redis_pool(url, timeout, decode_responses=decode_responses))


def redis_breaker(url: str, timeout: float, cooldown: float) -> CircuitBreaker:
    """A breaker for ``url`` whose probe is a PING with the clients' own timeout.

    Built once per service container and handed to every Redis user, so they
    trip and recover together.
    """
    return CircuitBreaker("redis", redis_client(url, timeout).ping, cooldown=cooldown)
