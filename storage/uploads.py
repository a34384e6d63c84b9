"""Keeping a checked upload until the cadre confirms it: short-lived, per account, one at a time.

Why a table: the check and the confirmation are two requests that may land
on two workers, and the confirmation must apply exactly what was checked, not
a file the browser sends again. Why so little is kept: the caller stores what
its import needs (for households, the rows without the columns the import
skips, such as 身份证号), compressed, for ``TTL``; a newer upload of the same
kind by the same account replaces the older one, applying one deletes it, and
expired rows are purged whenever anyone uploads or confirms.
"""

from __future__ import annotations

import json
import secrets
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from storage.db import Database
from storage.models.base import utcnow
from storage.models.uploads import ConsoleUpload

TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class Upload:
    key: str
    filename: str
    size: int
    payload: bytes
    meta: dict[str, Any]


def purge_expired(db: Database) -> int:
    """Delete uploads nobody confirmed in time; how many (for a periodic sweep: keep and take purge too)."""
    with db.session() as session:
        result = session.execute(delete(ConsoleUpload).where(ConsoleUpload.expires_at < utcnow()))
        return int(result.rowcount or 0)


def keep(db: Database, user_id: int, kind: str, filename: str, payload: bytes, *, size: int = 0,
         meta: dict[str, Any] | None = None, ttl: timedelta = TTL) -> str:
    """Store ``payload`` (compressed) for ``user_id``; returns the key the confirmation sends back."""
    key = secrets.token_urlsafe(24)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(ConsoleUpload).where(
            (ConsoleUpload.expires_at < now)
            | ((ConsoleUpload.user_id == user_id) & (ConsoleUpload.kind == kind))))
        session.add(ConsoleUpload(key=key, user_id=user_id, kind=kind, filename=filename[:255],
                                  payload=zlib.compress(payload, 6), size=size,
                                  meta=json.dumps(meta or {}, ensure_ascii=False), created_at=now,
                                  expires_at=now + ttl))
    return key


def take(db: Database, key: str, user_id: int, kind: str) -> Upload | None:
    """The upload if it is this account's, of this kind and not expired, deleted as it is taken.

    Taking it once means a double click on 确认导入 imports once, and a
    refused import asks for a fresh upload (which is checked again).
    """
    if not key:
        return None
    now = utcnow()
    with db.session() as session:
        session.execute(delete(ConsoleUpload).where(ConsoleUpload.expires_at < now))
        row = session.scalar(select(ConsoleUpload).where(
            ConsoleUpload.key == key, ConsoleUpload.user_id == user_id, ConsoleUpload.kind == kind))
        if row is None:
            return None
        upload = Upload(row.key, row.filename, row.size, zlib.decompress(row.payload), json.loads(row.meta or "{}"))
        deleted = session.execute(delete(ConsoleUpload).where(ConsoleUpload.id == row.id))
        if not deleted.rowcount:  # another request took it in the meantime
            return None
    return upload

