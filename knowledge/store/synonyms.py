"""Synonym rules cadres add in the database (on top of the shipped file).

Each change bumps the generation in its own transaction, so every worker's
knowledge base reloads, and adds an audit row there too (``actor`` is the
console account; None is the command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from knowledge.nlp.synonyms import SynonymTable
from knowledge.nlp.tokenizer import normalize_text
from knowledge.store.auditing import audit
from knowledge.store.state import bump_generation
from storage.db import Database
from storage.models.knowledge import KbSynonym

if TYPE_CHECKING:
    from storage.accounts import Principal


@dataclass(frozen=True)
class SynonymRecord:
    id: int
    phrase: str
    expansion: str


def add_synonym(db: Database, phrase: str, expansion: str, *, actor: "Principal | None" = None) -> int:
    """Add ``phrase => expansion`` (words separated by spaces); returns its id (the existing one if
    the same rule is there already). Raises ValueError with a message for the cadre."""
    phrase, expansion = normalize_text(phrase.strip()), " ".join(normalize_text(expansion).split())
    if not phrase or not expansion:
        raise ValueError("说法和对应的政策用语都不能为空")
    if len(phrase) > 64 or len(expansion) > 255:
        raise ValueError("说法最多64个字，政策用语最多255个字")
    try:
        return _insert_synonym(db, phrase, expansion, actor)
    except IntegrityError:  # another cadre added the same rule at the same moment
        existing = _find_synonym(db, phrase, expansion)
        if existing is None:
            raise
        return existing


def _find_synonym(db: Database, phrase: str, expansion: str) -> int | None:
    with db.session() as session:
        return session.execute(
            select(KbSynonym.id).where(KbSynonym.phrase == phrase, KbSynonym.expansion == expansion)
            .order_by(KbSynonym.id).limit(1)
        ).scalars().first()


def _insert_synonym(db: Database, phrase: str, expansion: str, actor: "Principal | None" = None) -> int:
    existing = _find_synonym(db, phrase, expansion)
    if existing is not None:
        return int(existing)
    with db.session() as session:
        row = KbSynonym(phrase=phrase, expansion=expansion)
        session.add(row)
        session.flush()
        bump_generation(session)
        audit(session, actor, "synonym.add", phrase, f"{phrase} => {expansion}")
        return row.id


def list_synonyms(db: Database) -> list[SynonymRecord]:
    with db.session() as session:
        rows = session.execute(select(KbSynonym).order_by(KbSynonym.id)).scalars().all()
        return [SynonymRecord(r.id, r.phrase, r.expansion) for r in rows]


def remove_synonym(db: Database, synonym_id: int, *, actor: "Principal | None" = None) -> bool:
    """Remove one rule; False when there is no rule with that id."""
    with db.session() as session:
        row = session.get(KbSynonym, synonym_id)
        if row is None:
            return False
        if not session.execute(delete(KbSynonym).where(KbSynonym.id == synonym_id)).rowcount:
            return False  # another cadre removed it a moment ago
        bump_generation(session)
        audit(session, actor, "synonym.remove", row.phrase, f"{row.phrase} => {row.expansion}（编号 {synonym_id}）")
        return True


def table_from_rows(rows: list[SynonymRecord]) -> SynonymTable:
    table = SynonymTable()
    for row in rows:
        table.add(row.phrase, row.expansion.split())
    return table
