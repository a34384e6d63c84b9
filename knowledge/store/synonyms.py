"""Synonym rules cadres add in the database (on top of the shipped file)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from knowledge.nlp.synonyms import SynonymTable
from knowledge.nlp.tokenizer import normalize_text
from knowledge.store.state import bump_generation
from storage.db import Database
from storage.models.knowledge import KbSynonym


@dataclass(frozen=True)
class SynonymRecord:
    id: int
    phrase: str
    expansion: str


def add_synonym(db: Database, phrase: str, expansion: str) -> int:
    phrase, expansion = normalize_text(phrase.strip()), " ".join(normalize_text(expansion).split())
    if not phrase or not expansion:
        raise ValueError("说法和对应的政策用语都不能为空")
    if len(phrase) > 64 or len(expansion) > 255:
        raise ValueError("说法最多64个字，政策用语最多255个字")
    try:
        return _insert_synonym(db, phrase, expansion)
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


def _insert_synonym(db: Database, phrase: str, expansion: str) -> int:
    existing = _find_synonym(db, phrase, expansion)
    if existing is not None:
        return int(existing)
    with db.session() as session:
        row = KbSynonym(phrase=phrase, expansion=expansion)
        session.add(row)
        session.flush()
        bump_generation(session)
        return row.id


def list_synonyms(db: Database) -> list[SynonymRecord]:
    with db.session() as session:
        rows = session.execute(select(KbSynonym).order_by(KbSynonym.id)).scalars().all()
        return [SynonymRecord(r.id, r.phrase, r.expansion) for r in rows]


def remove_synonym(db: Database, synonym_id: int) -> bool:
    with db.session() as session:
        deleted = session.execute(delete(KbSynonym).where(KbSynonym.id == synonym_id)).rowcount
        if deleted:
            bump_generation(session)
        return bool(deleted)


def table_from_rows(rows: list[SynonymRecord]) -> SynonymTable:
    table = SynonymTable()
    for row in rows:
        table.add(row.phrase, row.expansion.split())
    return table
