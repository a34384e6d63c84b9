"""The in-process moving window (embedded default, and while Redis is down)."""

from __future__ import annotations

import threading
import time

from storage.ratelimit import LocalMovingWindow, RateLimiter


def test_a_moving_window_in_process() -> None:
    limiter = RateLimiter(None)
    assert [limiter.allow("3/second", "in", "oA") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("3/second", "in", "oB")  # another follower has a window of their own
    assert not limiter.would_allow("3/second", "in", "oA")
    assert 0 < limiter.retry_after("3/second", "in", "oA") <= 1.0
    assert not limiter.allow("5/minute", "in", "oA", cost=6)  # more than the whole window
    time.sleep(1.05)
    assert limiter.would_allow("3/second", "in", "oA") and limiter.retry_after("3/second", "in", "oA") == 0.0
    assert limiter.allow("3/second", "in", "oA")


def test_no_thread_per_key_and_idle_keys_are_dropped(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``limits``' memory storage started a timer thread per expiry pass; thousands of followers
    must cost neither threads nor memory that stays."""
    limiter = RateLimiter(None)
    threads = threading.active_count()
    for n in range(2000):
        limiter.allow("20/minute", "in", f"o{n}")
    assert threading.active_count() == threads
    local = limiter.local
    assert isinstance(local, LocalMovingWindow) and len(local._hits) == 2000
    monkeypatch.setattr(LocalMovingWindow, "SWEEP_EVERY", 0.0)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    limiter.allow("20/minute", "in", "oLate")
    assert list(local._hits) == ["LIMITER/sisong/in/oLate/20/1/minute"]
