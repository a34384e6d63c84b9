"""The write-behind flusher: the Redis message log (``storage.redis_inbox``) into the database, in batches.

Runs as a thread in every web worker when Redis is configured. Each pass moves up to
``BATCH`` records to this flusher's own Redis list, writes them (message rows and followers'
last-seen times) in one transaction, and only then drops the list. A flusher that dies between
the two leaves its list behind; any other flusher puts it back in the buffer once the dead one's
heartbeat has been silent ``HEARTBEAT`` seconds, and the rows it may already have committed are
skipped by their unique key. On a clean stop (SIGTERM) it flushes what is left before the
process exits. While the database is down, records wait in Redis and the pass is retried.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from bot.services import Services
from storage import inbox
from storage.db import is_outage
from storage.redis_client import REDIS_ERRORS
from storage.redis_inbox import RedisInbox

log = logging.getLogger(__name__)

BATCH = 500
# A flusher silent this long is dead: its taken records go back to the buffer.
HEARTBEAT = 10.0
# Dead flushers are looked for this often (a cheap ZRANGEBYSCORE).
REQUEUE_EVERY = 5.0


class LogFlusher:
    def __init__(self, services: Services, redis_inbox: RedisInbox, interval: float) -> None:
        self.services = services
        self.inbox = redis_inbox
        self.interval = interval
        self.id = RedisInbox.new_flusher_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._requeued_at = 0.0
        self._lock = threading.Lock()  # one flush at a time (the thread, a test, the final flush)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sisong-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and write what is left: a SIGTERM'd worker leaves nothing of its own behind."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        try:
            while self.flush() > 0:
                pass
            self.inbox.retire(self.id)
        except Exception:  # noqa: BLE001 - records stay in Redis; another flusher takes them
            log.warning("final flush failed; the records wait in Redis for another worker", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                written = self.flush()
            except Exception:  # noqa: BLE001 - never let the flusher die; records are safe in Redis
                log.exception("message log flush failed")
                written = 0
            if written < BATCH:
                self._wake.wait(self.interval)
                self._wake.clear()

    def flush(self) -> int:
        """One pass: records taken before (a failed commit) first, then a new batch. Returns rows written."""
        breaker = self.services.redis_breaker
        if breaker is not None and not breaker.allow():
            return 0  # Redis is down: the records wait there; the breaker has said so once
        with self._lock:
            try:
                if time.monotonic() - self._requeued_at >= REQUEUE_EVERY:
                    self._requeued_at = time.monotonic()
                    moved = self.inbox.requeue_dead_flushers()
                    if moved:
                        log.warning("took back %d message-log records of a worker that stopped", moved)
                records = self.inbox.pending_in_flight(self.id)
                if not records:
                    records = self.inbox.take_batch(self.id, BATCH, HEARTBEAT)
                else:
                    self.inbox.heartbeat(self.id, HEARTBEAT)
            except REDIS_ERRORS as exc:
                if breaker is not None:
                    breaker.trip(exc)  # logs once per outage, not once per pass
                return 0
            if not records:
                return 0
            if not self._write(records):
                return 0
            try:
                self.inbox.done(self.id)
            except REDIS_ERRORS as exc:  # written; the list goes back and is written again, harmlessly
                if breaker is not None:
                    breaker.trip(exc)
            return len(records)

    def _write(self, records: list[dict]) -> bool:
        db = self.services.db
        if not db.breaker.allow():
            return False
        try:
            with db.bounded(), db.session() as session:
                inbox.flush_records(session, records)
            return True
        except SQLAlchemyError as exc:
            if is_outage(exc):
                db.breaker.trip(exc)
                log.warning("message log: database unavailable (%s); records wait in Redis", type(exc).__name__)
                return False
            log.error("message log batch refused (%s); writing its records one by one", type(exc).__name__)
        for record in records:  # a record the database refuses must not hold back the others
            try:
                with db.bounded(), db.session() as session:
                    inbox.flush_records(session, [record])
            except SQLAlchemyError as exc:
                if is_outage(exc):
                    db.breaker.trip(exc)
                    return False
                log.error("message log record refused (%s); kept in Redis list in:dead", type(exc).__name__)
                self.inbox.bury(record)
        return True


def drain(services: Services) -> int:
    """Write the whole buffer now, in this thread (a CLI command or a test that reads the log at once).
    Returns the number of records written; 0 without a Redis inbox."""
    if services.redis_inbox is None:
        return 0
    redis_inbox = services.redis_inbox
    flusher = LogFlusher(services, redis_inbox, interval=0)
    written = 0
    # Long enough for a dead flusher's heartbeat to lapse and its batch to come back (then written here).
    deadline = time.monotonic() + HEARTBEAT + REQUEUE_EVERY + 2
    try:
        while True:
            batch = flusher.flush()
            written += batch
            # Done when the buffer is empty and no other flusher holds records it has not committed.
            try:
                settled = batch == 0 and redis_inbox.backlog() == 0 and redis_inbox.in_flight() == 0
            except REDIS_ERRORS:
                break  # nothing can be drained from a Redis that is down
            if batch == 0 and (settled or time.monotonic() > deadline):
                break
            if batch == 0:
                time.sleep(0.01)
    finally:
        try:
            redis_inbox.retire(flusher.id)
        except REDIS_ERRORS:
            pass
    return written
