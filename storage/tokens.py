"""The access token's shared home: one ``wechat_tokens`` row per account.

WeChat keeps one valid token per account (plus five minutes of overlap), so
every process must use the same one: a worker that fetches its own silently
invalidates everyone else's ("40001 … not latest"). Redis used to be that
shared place, but with Redis down each web worker fell back to its own token.
The database is what every web worker, queue consumer and CLI command share
for sure, so the token lives there:

* reads come from an in-process copy while it is fresh (expires_at minus the
  margin), so sending does not cost a database round trip per call;
* a refresh holds a lock that works across processes without Redis: the row
  itself (``SELECT … FOR UPDATE``) on PostgreSQL, the database's write lock on
  SQLite (which is one process in practice anyway). Whoever gets the lock
  second finds the fresh token and does not fetch again;
* invalidation is compare-and-delete, so a process holding a stale token
  cannot wipe out the one another process has just fetched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import WeChatToken
from storage.models.base import utcnow

TOKEN_MARGIN = 300  # refresh 5 minutes early: WeChat's own overlap window
LOCK_WAIT = 20.0  # how long a refresher waits for another one (which is bounded by its fetch timeout)

# Fetches a new token from WeChat: (access_token, expires_in seconds).
Fetch = Callable[[], tuple[str, int]]


class TokenStore:
    """The account's access token in the database, with an in-process copy and a refresh lock."""

    def __init__(
        self, db: Database, appid: str, *, margin: float = TOKEN_MARGIN, lock_wait: float = LOCK_WAIT
    ) -> None:
        self.db = db
        self.appid = appid
        self.margin = margin
        self.lock_wait = lock_wait
        self._cached: tuple[str, float] | None = None  # (token, expires_at as epoch seconds)
        self._mutex = threading.Lock()
        self.clock: Callable[[], float] = time.time  # tests move it forward to age the token

    # -- reading ------------------------------------------------------------

    def _fresh(self, token: str | None, expires_at: float | None) -> bool:
        return bool(token) and expires_at is not None and expires_at - self.clock() > self.margin

    def _adopt(self, row: WeChatToken | None) -> str | None:
        """Cache the row's token if it is fresh; return it (or None)."""
        if row is None or row.token is None or row.expires_at is None:
            return None
        expires_at = row.expires_at.timestamp()
        if not self._fresh(row.token, expires_at):
            return None
        with self._mutex:
            self._cached = (row.token, expires_at)
        return row.token

    @property
    def expires_at(self) -> float | None:
        """Expiry (epoch seconds) of the token this process holds, if any."""
        cached = self._cached
        return cached[1] if cached else None

    def current(self) -> str | None:
        """A token good for more than ``margin`` seconds, or None: the in-process copy first, then the row."""
        cached = self._cached
        if cached and self._fresh(*cached):
            return cached[0]
        with self.db.session() as session:
            return self._adopt(session.get(WeChatToken, self.appid))

    # -- refreshing ---------------------------------------------------------

    def refresh(self, fetch: Fetch, *, force: bool = False) -> str:
        """A fresh token, fetched with ``fetch`` under the lock unless another process just did.

        ``force`` fetches even if the row holds a fresh token (wechatpy's
        ``fetch_access_token`` semantics); Sisong itself never needs it.
        """
        with self.db.session() as session:
            row = self._lock_row(session)
            token = None if force else self._adopt(row)
            if token:
                return token
            new_token, expires_in = fetch()
            now = datetime.fromtimestamp(self.clock(), timezone.utc)
            row.token = new_token
            row.expires_at = now + timedelta(seconds=expires_in)
            row.updated_at = now
            expires_at = row.expires_at.timestamp()
        # Only after the commit: a token this process holds is one every process can see.
        with self._mutex:
            self._cached = (new_token, expires_at)
        return new_token

    def _lock_row(self, session: Session) -> WeChatToken:
        """Lock the account's row (created first if missing) for the rest of the transaction."""
        is_pg = session.get_bind().dialect.name == "postgresql"
        if is_pg:
            # A holder is bounded by its fetch timeout; do not queue up forever behind a stuck one.
            session.execute(text(f"SET LOCAL lock_timeout = '{int(self.lock_wait * 1000)}ms'"))
        dialect = postgresql if is_pg else sqlite
        # A write statement: on SQLite this takes the database's write lock (and, through
        # storage.db's writer queue, this process's) until commit; on PostgreSQL it only
        # makes sure there is a row to lock, without racing another first refresher.
        session.execute(
            dialect.insert(WeChatToken)
            .values(appid=self.appid, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["appid"])
        )
        return session.scalars(
            select(WeChatToken).where(WeChatToken.appid == self.appid).with_for_update()
        ).one()

    # -- invalidating -------------------------------------------------------

    def invalidate(self, token: str) -> bool:
        """Forget ``token`` unless another process already replaced it; True if it was the current one."""
        with self._mutex:
            if self._cached and self._cached[0] == token:
                self._cached = None
        with self.db.session() as session:
            result = session.execute(
                update(WeChatToken)
                .where(WeChatToken.appid == self.appid, WeChatToken.token == token)
                .values(token=None, expires_at=None, updated_at=utcnow())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
