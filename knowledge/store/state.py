"""The generation counter: how workers learn that the knowledge base changed.

Every write that a running worker must see (import, FAQ, synonym) bumps it in
the same transaction; workers compare it with what they loaded, at most every
few seconds, and reload only when it moved.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models.base import utcnow
from storage.models.knowledge import KbState


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


def bump_generation(session: Session) -> int:
    lock_state(session)
    session.execute(update(KbState).where(KbState.id == 1).values(generation=KbState.generation + 1,
                                                                 updated_at=utcnow()))
    return current_generation(session)
