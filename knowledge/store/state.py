"""The generation counter: how workers learn that the knowledge base changed.

Every write that a running worker must see (import, FAQ, synonym) bumps it in
the same transaction; workers compare it with what they loaded, at most every
question (or every ``SISONG_KB_RELOAD_SECONDS``), and reload only when it moved.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update
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


def bump_generation(session: Session) -> int:
    lock_state(session)
    session.execute(update(KbState).where(KbState.id == 1).values(generation=KbState.generation + 1,
                                                                 updated_at=utcnow()))
    return current_generation(session)
