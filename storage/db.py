"""Database engine, sessions and migrations, and the bound on how long a call may wait.

People paste plain URLs (``postgresql://user@host/db``); we map them to the
driver we ship (psycopg 3) so nobody has to know SQLAlchemy's dialect names.

A database that *hangs* (stopped process, lost packets) never refuses
anything: the kernel accepts the connection and acknowledges the bytes, so
server-side ``statement_timeout`` and TCP keepalives never fire, and a
handler thread would wait for as long as the outage lasts. Work on the
message path therefore runs inside :func:`bounded`: every round trip to
PostgreSQL (and every wait for SQLite's writer lock or a pooled connection)
gives up after ``SISONG_DB_TIMEOUT``, client-side, and the connection is
discarded. After such a failure :attr:`Database.breaker` opens, so the next
messages answer "系统繁忙" at once instead of each paying the timeout.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import psycopg

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from storage.breaker import CircuitBreaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

class _Budget:
    """Seconds one database round trip may take in this block, and whether one already timed out."""

    __slots__ = ("seconds", "timed_out")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.timed_out = False


_budget: ContextVar[_Budget | None] = ContextVar("sisong_db_budget", default=None)
_WAIT_TIMEOUT = getattr(psycopg.errors, "_WaitTimeout", psycopg.errors.OperationalError)
# A runaway query on a live server; the message path's own bound is the client-side budget.
STATEMENT_TIMEOUT_MS = 30_000


@contextmanager
def bounded(seconds: float | None) -> Iterator[None]:
    """Bound every database round trip made inside this block to ``seconds``.

    After one timeout the block does not open new connections either (a
    pre-ping failure would otherwise reconnect, and a connect to a hung server
    costs libpq's 2-second minimum on top).
    """
    token = _budget.set(_Budget(seconds) if seconds is not None else None)
    try:
        yield
    finally:
        _budget.reset(token)


def current_budget() -> float | None:
    budget = _budget.get()
    return budget.seconds if budget else None


class DatabaseTimeout(psycopg.OperationalError):
    """The database did not answer within the budget; the connection was closed."""


class BoundedConnection(psycopg.Connection):  # type: ignore[type-arg]
    """psycopg's connection with a client-side deadline on every wait for the server.

    psycopg routes every blocking exchange (execute, fetch, commit, rollback)
    through :meth:`wait`, which takes a timeout since psycopg 3.2. A timed-out
    exchange leaves the protocol mid-message, so the connection is closed and
    SQLAlchemy discards it from the pool (``is_disconnect``).
    """

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:  # type: ignore[override]
        budget = _budget.get()
        if budget is not None and (timeout is None or timeout > budget.seconds):
            timeout = budget.seconds
        try:
            return super().wait(gen, interval, timeout)
        except _WAIT_TIMEOUT as exc:
            if timeout is None or type(exc) is not _WAIT_TIMEOUT:
                raise
            if budget is not None:
                budget.timed_out = True
            self.pgconn.finish()
            raise DatabaseTimeout(f"database did not answer within {timeout:.1f} s") from None


def is_outage(exc: BaseException) -> bool:
    """A failure of the database itself (down, hung, pool exhausted), not of our query."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (psycopg.OperationalError, sqlite3.OperationalError))


def normalize_url(url: str) -> str:
    """Map pasted URL forms to the shipped drivers (psycopg 3, stdlib sqlite3)."""
    url = url.strip()
    url = re.sub(r"^postgres(ql)?(\+psycopg2)?://", "postgresql+psycopg://", url)
    return url


def make_engine(url: str, pool_timeout: float = 30.0, *, pool_size: int = 10, max_overflow: int = 20,
                pre_ping: bool = True, autocommit: bool = False) -> Engine:
    """The engine for ``url``. The push sender (``bot.push``) asks PostgreSQL for its own pool: one
    connection per sending thread, no ``SELECT 1`` before each of its 40,000 short statements, and
    autocommit (each of its statements is a whole transaction: no BEGIN/COMMIT round trips)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # Enough pooled connections for the handler threads and queue consumers, so
        # connections (and their PRAGMAs) are not opened and closed per message.
        engine = create_engine(
            url, pool_size=16, max_overflow=16, connect_args={"check_same_thread": False, "timeout": 15}
        )
        _queue_sqlite_writers(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the webhook read while the queue consumer writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_engine(
        url,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args={
            "connect_timeout": 2,  # libpq's minimum; enforced client-side by psycopg
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            # A partitioned (not stopped) server: unacknowledged data fails in 5 s,
            # idle pooled connections are found dead within ~11 s.
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
            "tcp_user_timeout": 5000,
        },
    )

    @event.listens_for(engine, "do_connect")
    def _bounded_connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        budget = _budget.get()
        if budget is not None and budget.timed_out:
            raise DatabaseTimeout("the database just timed out; not reconnecting within this message")
        return BoundedConnection.connect(*cargs, **cparams)

    return engine


_READS = ("SELECT", "PRAGMA", "WITH")
WRITE_LOCK_WAIT = 15.0


def _track_writes(engine: Engine) -> None:
    """Mark a connection's transaction as having written (see :func:`wrote`).

    Anything but a plain SELECT counts (a CTE or SELECT … FOR UPDATE too): wrongly taking a read
    for a write only costs the message the slower, always-correct path.
    """

    @event.listens_for(engine, "before_cursor_execute")
    def _mark(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        head = statement.lstrip()[:7].upper()
        if not (head.startswith(("SELECT", "PRAGMA")) and " FOR UPDATE" not in statement):
            conn.info["sisong_wrote"] = True

    def _clear(conn) -> None:  # type: ignore[no-untyped-def]
        conn.info.pop("sisong_wrote", None)

    event.listen(engine, "begin", _clear)
    event.listen(engine, "commit", _clear)
    event.listen(engine, "rollback", _clear)


def wrote(session: Session) -> bool:
    """Whether this unit of work has written (or will write, at commit) anything.

    The message pipeline asks before settling: a unit of work that only read can settle in
    Redis (``storage.redis_inbox``); one that wrote must commit with its inbox row.
    """
    if session.new or session.dirty or session.deleted:
        return True
    if not session.in_transaction():
        return False
    return bool(session.connection().info.get("sisong_wrote"))


def _queue_sqlite_writers(engine: Engine) -> None:
    """Writers in this process take turns on a lock before SQLite's own.

    SQLite has one writer at a time and its busy handler sleeps in steps of up
    to 100 ms, which pushed p99 to 640 ms under load. The lock is taken at a
    transaction's first write statement and released at commit or rollback, so
    every writer takes the Python lock before SQLite's and the two can never
    wait on each other; reads (WAL) never take it.
    """
    lock = threading.RLock()

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if conn.info.get("sisong_writer") or statement.lstrip()[:6].upper().startswith(_READS):
            return
        if not lock.acquire(timeout=current_budget() or WRITE_LOCK_WAIT):
            raise sqlite3.OperationalError("database is locked (waited for another writer)")
        conn.info["sisong_writer"] = True

    def _release(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.info.pop("sisong_writer", False):
            lock.release()

    def _release_on_reset(dbapi_conn, record, reset_state) -> None:  # type: ignore[no-untyped-def]
        if record is not None and record.info.pop("sisong_writer", False):
            lock.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)
    event.listen(engine, "reset", _release_on_reset)


class Database:
    """One engine and its session factory, shared by the app, CLI and queue.

    ``timeout`` is the budget :meth:`bounded` applies (``SISONG_DB_TIMEOUT``);
    the breaker opens after an outage and its probe (a bounded ``SELECT 1``)
    closes it again.
    """

    def __init__(self, url: str, timeout: float = 2.0, breaker_seconds: float = 3.0) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.timeout = timeout
        self.engine = make_engine(url, pool_timeout=timeout if not self.is_sqlite else 30.0)
        _track_writes(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.breaker = CircuitBreaker("database", self._probe, cooldown=breaker_seconds)

    def bounded(self) -> Any:
        """Bound the database calls of this block to this database's timeout."""
        return bounded(self.timeout)

    def _probe(self) -> None:
        with bounded(self.timeout):
            self.ping()


    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # -- migrations ---------------------------------------------------------

    def _alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def pending_migrations(self) -> list[str]:
        script = ScriptDirectory.from_config(self._alembic_config())
        with self.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        head = script.get_current_head()
        if head in current:
            return []
        pending = []
        for rev in script.iterate_revisions(head, "base"):
            if rev.revision in current:
                break
            pending.append(rev.revision)
        return list(reversed(pending))

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns the revisions applied."""
        pending = self.pending_migrations()
        if pending:
            command.upgrade(self._alembic_config(), "head")
        return pending

    def dispose(self) -> None:
        self.breaker.stop()
        self.engine.dispose()
