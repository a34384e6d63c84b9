"""A circuit breaker for a dependency that may hang: Redis or the database.

A dependency that refuses connections costs a caller nothing; one that *hangs*
costs every caller its full timeout. After one failure the breaker opens and
callers go straight to their fallback (in-process state, "系统繁忙", a thread)
for at least ``cooldown`` seconds from that first failure (against flapping).
Requests never probe: a background thread does, every ``probe_every``
seconds after the cooldown, and closes the breaker when the dependency
answers again. So a hung Redis costs one timeout per outage per process, not
one per message, and recovery follows the dependency within a second or so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        probe: Callable[[], object],
        cooldown: float = 5.0,
        probe_every: float = 1.0,
    ) -> None:
        self.name = name
        self.cooldown = cooldown
        self.probe_every = probe_every
        self._probe = probe
        self._lock = threading.Lock()
        self._open_until = 0.0  # monotonic; the breaker stays open at least this long
        self._open = False
        self._prober: threading.Thread | None = None
        self._stopped = threading.Event()
        self.last_error: str | None = None
        self.opened_at: float | None = None  # wall clock, for /healthz
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """True when callers should use the dependency; False means: use the fallback now."""
        return not self._open

    def trip(self, exc: BaseException | str) -> None:
        """Record a failure (timeout, refused connection): open, and start probing in the background."""
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.last_error = reason[:300]
            if self._open:
                # Calls that were already waiting when it opened fail now; they say nothing
                # new, so they must not push recovery further out.
                return
            self._open_until = time.monotonic() + self.cooldown
            self._open = True
            self.opened_at = time.time()
            self.trips += 1
            log.error("%s unavailable, failing fast for %.0f s: %s", self.name, self.cooldown, reason[:200])
            if self._prober is None or not self._prober.is_alive():
                self._prober = threading.Thread(
                    target=self._probe_until_healthy, name=f"breaker-{self.name}", daemon=True
                )
                self._prober.start()

    def close(self) -> None:
        with self._lock:
            if self._open:
                log.warning("%s answers again", self.name)
            self._open = False
            self._open_until = 0.0
            self.opened_at = None

    def stop(self) -> None:
        """Stop probing (the process is shutting down)."""
        self._stopped.set()

    def _probe_until_healthy(self) -> None:
        while not self._stopped.wait(self.probe_every):
            if time.monotonic() < self._open_until:
                continue
            try:
                self._probe()
            except Exception as exc:  # noqa: BLE001 - any failure keeps it open
                with self._lock:
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    self._open_until = time.monotonic() + self.probe_every
                continue
            self.close()
            return
