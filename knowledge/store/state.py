"""The generation counter: how workers learn that the knowledge base changed.

Every write that a running worker must see (import, FAQ, synonym) bumps it in
the same transaction; workers compare it with what they loaded, at most every
question (or every ``SISONG_KB_RELOAD_SECONDS``), and reload only when it moved.

On PostgreSQL the bump also sends ``NOTIFY sisong_kb``, which the server delivers
when the transaction commits; a worker listening for it (:class:`GenerationWatch`)
then needs no database read per question. While its listening connection is down,
the worker reads the generation before every question as before.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from storage.models.base import utcnow
from storage.models.knowledge import KbState


def read_generation(engine: Engine) -> int:
    """The generation, read on a plain pooled connection: workers do it before every question,
    so it must cost a fraction of a millisecond (no ORM session, the statement compiled once)."""
    with engine.connect() as conn:
        value = conn.exec_driver_sql("SELECT generation FROM kb_state WHERE id = 1").scalar()
    return int(value or 0)


def current_generation(session: Session) -> int:
    value = session.execute(select(KbState.generation).where(KbState.id == 1)).scalar_one_or_none()
    return int(value or 0)


def lock_state(session: Session) -> int:
    """Take the row lock that serializes knowledge-base writers (PostgreSQL; SQLite locks the file)."""
    row = session.execute(select(KbState).where(KbState.id == 1).with_for_update()).scalar_one_or_none()
    if row is None:
        row = KbState(id=1, generation=0)
        session.add(row)
        session.flush()
    return row.generation


CHANNEL = "sisong_kb"
log = logging.getLogger(__name__)


class GenerationWatch:
    """Listens for ``NOTIFY sisong_kb`` on a connection of its own (PostgreSQL only).

    ``seen`` counts notifications; :attr:`listening` is True only while the LISTEN is in
    place, so a caller can trust "nothing changed" only then. Reconnects every few seconds
    after a failure.
    """

    RECONNECT_SECONDS = 2.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen = 0
        self.listening = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sisong-kb-watch", daemon=True)

    def start(self, wait: float = 2.0) -> "GenerationWatch":
        """Start listening; waits up to ``wait`` seconds for the LISTEN (load the snapshot after)."""
        self._thread.start()
        self._ready.wait(wait)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Keepalives find a server that stopped answering (no query of ours runs here to notice,
                # and a query between waits could swallow a notification arriving meanwhile).
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2, keepalives=1,
                                     keepalives_idle=5, keepalives_interval=2, keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._ready.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.seen += 1
            except Exception as exc:  # noqa: BLE001 - fall back to reading the generation per question
                if self.listening:
                    log.warning("knowledge base: change notifications lost (%s); checking every question",
                                type(exc).__name__)
            finally:
                if self.listening:
                    self.seen += 1  # a notification may have been missed while reconnecting
                self.listening = False
                self._ready.set()
            self._stop.wait(self.RECONNECT_SECONDS)


def bump_generation(session: Session) -> int:
    lock_state(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))  # delivered at commit, to every listening worker
    session.execute(update(KbState).where(KbState.id == 1).values(generation=KbState.generation + 1,
                                                                 updated_at=utcnow()))
    return current_generation(session)
