"""The queue of questions the bot could not answer, for a person to pick up.

Questions are stored masked (``storage.privacy.mask_text``): the queue is read by
cadres on the command line, exported as JSON and promoted into FAQ entries that
other households see, so a household's phone, ID or card number must not be in
it at all rather than be masked by each reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.privacy import mask_text
from knowledge.search.faq_match import core
from storage.db import Database
from storage.models.knowledge import KbUnanswered

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class UnansweredRecord:
    id: int
    openid: str | None
    question: str
    status: str
    created_at: datetime
    faq_id: int | None


def record_unanswered(db: Database, openid: str | None, question: str) -> int:
    """Queue a question in its own unit of work (CLI, sweeper); see :func:`queue_unanswered`."""
    with db.session() as session:
        return queue_unanswered(session, openid, question)


def queue_unanswered(session: Session, openid: str | None, question: str) -> int:
    """Queue a question, masked, inside the caller's unit of work; one entry per follower and question.

    Handlers pass the message's session, so the entry commits with the message
    or not at all. Masking comes before truncating (no half number is left at
    the cut) and before normalising, so the dedupe key is built from the stored
    text and the same question typed with ``138-1234-5678`` or
    ``１３８１２３４５６７８`` is one entry.
    """
    question = mask_text(question.strip())[:MAX_QUESTION_CHARS]
    normalized = core(question)[:500]
    existing = session.execute(
        select(KbUnanswered.id).where(
            KbUnanswered.status == "open",
            KbUnanswered.normalized == normalized,
            KbUnanswered.openid.is_(None) if openid is None else KbUnanswered.openid == openid,
        ).order_by(KbUnanswered.id).limit(1)
    ).scalars().first()  # a race may have queued it twice: keep answering with the first
    if existing is not None:
        return int(existing)
    row = KbUnanswered(openid=openid, question=question, normalized=normalized)
    session.add(row)
    session.flush()
    return row.id


def list_unanswered(db: Database, status: str | None = "open", limit: int = 200) -> list[UnansweredRecord]:
    """Newest first; questions masked again, for rows queued before questions were stored masked."""
    with db.session() as session:
        query = select(KbUnanswered).order_by(KbUnanswered.id.desc()).limit(limit)
        if status:
            query = query.where(KbUnanswered.status == status)
        rows = session.execute(query).scalars().all()
        return [UnansweredRecord(r.id, r.openid, mask_text(r.question), r.status, r.created_at, r.faq_id)
                for r in rows]
