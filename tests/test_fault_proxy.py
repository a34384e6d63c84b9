"""FaultProxy against the machine's real Redis and PostgreSQL.

These tests pin down what the clients Sisong uses actually do when a
dependency hangs (SIGSTOP-like), refuses (exited) or crawls, so that later
resilience tests and the fault benchmark can rely on the proxy.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from tests.conftest import PG_URL, REDIS_URL
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(10)  # a proxy bug must fail a test, not hang the run

_REDIS = urlsplit(REDIS_URL)
REDIS_DB = int(_REDIS.path.strip("/") or 0)
_PG = urlsplit(PG_URL)
PG_DB = _PG.path.strip("/")


@pytest.fixture
def redis_proxy() -> Iterator[FaultProxy]:
    with FaultProxy(_REDIS.hostname or "127.0.0.1", _REDIS.port or 6379) as proxy:
        yield proxy


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    with FaultProxy(_PG.hostname or "127.0.0.1", _PG.port or 5432) as proxy:
        yield proxy


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``call``; return (seconds, result or the exception it raised)."""
    start = time.monotonic()
    try:
        result: Any = call()
    except Exception as exc:  # noqa: BLE001 - the exception is the result under test
        result = exc
    return time.monotonic() - start, result


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``call`` in a daemon thread; the list receives its result (or exception)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(timed(call)[1]), daemon=True)
    thread.start()
    return thread, out


def test_redis_pass_forwards_and_counts(redis_proxy: FaultProxy) -> None:
    client = redis.Redis.from_url(redis_proxy.redis_url(REDIS_DB), socket_timeout=1)
    key = f"fault-proxy:{uuid.uuid4().hex}"
    assert client.set(key, "v", ex=10) and client.get(key) == b"v"
    assert redis_proxy.accepted == 1 and redis_proxy.active == 1
    assert redis_proxy.bytes_up > len(key) and redis_proxy.bytes_down > 0
    client.close()


def test_redis_hang_times_out_on_socket_timeout_and_recovers(redis_proxy: FaultProxy) -> None:
    url = redis_proxy.redis_url(REDIS_DB)
    client = redis.Redis.from_url(url, socket_timeout=0.3)
    assert client.ping()
    redis_proxy.hang()

    elapsed, result = timed(client.ping)
    assert isinstance(result, redis.TimeoutError) and 0.25 < elapsed < 0.8, (elapsed, result)

    # A new client: the TCP connect succeeds at once (the proxy accepts, as the kernel of a
    # stopped server does), so socket_connect_timeout=0.05 never fires. What times out is the
    # handshake read (CLIENT SETINFO) under socket_timeout - after 0.3 s, not 0.05 s.
    accepted = redis_proxy.accepted
    fresh = redis.Redis.from_url(url, socket_connect_timeout=0.05, socket_timeout=0.3)
    elapsed, result = timed(fresh.ping)
    assert isinstance(result, redis.TimeoutError) and "reading" in str(result), result
    assert 0.25 < elapsed < 0.8, elapsed
    assert redis_proxy.accepted == accepted + 1

    redis_proxy.pass_()
    assert client.ping() and fresh.ping()


def test_redis_hang_holds_bytes_until_pass(redis_proxy: FaultProxy) -> None:
    """Without socket_timeout a hung call blocks forever; pass() delivers the held write (SIGCONT)."""
    key = f"fault-proxy:{uuid.uuid4().hex}"
    direct = redis.Redis.from_url(REDIS_URL)
    client = redis.Redis.from_url(redis_proxy.redis_url(REDIS_DB))  # no socket_timeout: Sisong must never do this
    assert client.ping()
    redis_proxy.hang()
    held, held_out = in_thread(lambda: client.set(key, "held", ex=10))
    # A client connecting during the hang waits too, connect timeout or not.
    late, late_out = in_thread(lambda: redis.Redis.from_url(redis_proxy.redis_url(REDIS_DB), socket_connect_timeout=0.1).ping())
    held.join(0.5)
    late.join(0.01)
    assert held.is_alive() and late.is_alive()
    assert direct.get(key) is None  # nothing reached the server

    redis_proxy.pass_()
    held.join(2)
    late.join(2)
    assert held_out == [True] and late_out == [True]
    assert direct.get(key) == b"held"
    direct.delete(key)


def test_redis_refuse_fails_fast_and_listens_again_on_the_same_port(redis_proxy: FaultProxy) -> None:
    port = redis_proxy.port
    client = redis.Redis.from_url(redis_proxy.redis_url(REDIS_DB), socket_timeout=1)
    assert client.ping()
    redis_proxy.refuse()

    elapsed, result = timed(client.ping)  # the pooled connection was reset; the reconnect is refused
    assert isinstance(result, redis.ConnectionError) and elapsed < 0.5, (elapsed, result)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert redis_proxy.active == 0

    redis_proxy.pass_()
    assert redis_proxy.port == port and client.ping()


def test_delay_adds_latency_per_chunk(redis_proxy: FaultProxy) -> None:
    client = redis.Redis.from_url(redis_proxy.redis_url(REDIS_DB), socket_timeout=2)
    assert client.ping()
    fast, _ = timed(client.ping)
    redis_proxy.delay(0.2)
    slow, result = timed(client.ping)  # request and reply are one chunk each: 2 x 0.2 s
    assert result is True and 0.4 <= slow < 0.9, slow
    redis_proxy.pass_()
    assert timed(client.ping)[0] < 0.1 and fast < 0.1


def test_postgres_query_hangs_until_pass(pg_proxy: FaultProxy) -> None:
    conn = psycopg.connect(pg_proxy.postgres_url(PG_DB), connect_timeout=2, autocommit=True)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    pg_proxy.hang()
    # connect_timeout only bounds connecting; an established psycopg connection has no read
    # timeout, so without statement/socket-level limits a query waits as long as the hang lasts.
    query, out = in_thread(lambda: conn.execute("SELECT 2").fetchone())
    query.join(0.7)
    assert query.is_alive()

    pg_proxy.pass_()
    query.join(2)
    assert out == [(2,)]
    conn.close()


def test_postgres_connect_during_hang_hits_connect_timeout(pg_proxy: FaultProxy) -> None:
    pg_proxy.hang()
    # The TCP connect succeeds; psycopg's connect_timeout covers the whole startup
    # handshake, so it does fire - but never below 2 s (libpq's minimum; 1 is raised to 2).
    elapsed, result = timed(lambda: psycopg.connect(pg_proxy.postgres_url(PG_DB), connect_timeout=1))
    assert isinstance(result, psycopg.errors.ConnectionTimeout), result
    assert 1.9 < elapsed < 2.6, elapsed
    assert pg_proxy.accepted == 1


def test_postgres_refuse_raises_operational_error(pg_proxy: FaultProxy) -> None:
    conn = psycopg.connect(pg_proxy.postgres_url(PG_DB), connect_timeout=2, autocommit=True)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    pg_proxy.refuse()

    elapsed, result = timed(lambda: conn.execute("SELECT 1"))
    assert isinstance(result, psycopg.OperationalError) and elapsed < 0.5, (elapsed, result)
    elapsed, result = timed(lambda: psycopg.connect(pg_proxy.postgres_url(PG_DB), connect_timeout=2))
    assert isinstance(result, psycopg.OperationalError) and elapsed < 0.5, (elapsed, result)
    assert "refused" in str(result)

    pg_proxy.pass_()
    with psycopg.connect(pg_proxy.postgres_url(PG_DB), connect_timeout=2) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_stop_with_hung_connections_is_clean(caplog: pytest.LogCaptureFixture) -> None:
    """Stopping mid-hang leaks no thread, task or socket and logs no asyncio error."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proxy = FaultProxy(_REDIS.hostname or "127.0.0.1", _REDIS.port or 6379).start()
        thread = proxy._thread
        client = redis.Redis.from_url(proxy.redis_url(REDIS_DB))
        assert client.ping()
        proxy.delay(0.05)
        assert client.ping()
        proxy.hang()
        stuck, out = in_thread(client.ping)
        waiting, _ = in_thread(lambda: redis.Redis.from_url(proxy.redis_url(REDIS_DB)).ping())
        time.sleep(0.2)
        proxy.stop()
        stuck.join(1)
        waiting.join(1)
        assert not stuck.is_alive() and not waiting.is_alive()  # the stop reset them
        assert isinstance(out[0], redis.ConnectionError)
        assert thread is not None and not thread.is_alive()
        proxy.stop()  # idempotent
        client.close()
        del client, proxy
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records] == []
