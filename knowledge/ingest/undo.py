"""Undoing the last handbook import, exactly (``sisong handbook undo``, the console's 撤销 button).

An import deletes documents (an edited file's old version, what ``--replace``
leaves out, the shipped sample) and inserts new ones, then rebuilds the index.
In the same transaction it records what it deleted (every row, with its id),
the ids it inserted and the index bytes it overwrote (``ImportRecorder``).
Undo removes the inserted documents, puts the saved rows back with their ids
and restores the index bytes: the documents, the article ids that followers'
conversations point at (``a:<id>`` topics), the sample, and so every answer,
are as they were before the import. Restoring the saved rows, rather than
importing the previous files again, needs nothing outside the database and
cannot parse a file differently the second time.

One level: every import that changes something replaces the record, and undo
consumes it. The record also names the document set the import left
(``after_key``); if the handbook changed since in some other way (the sample
loaded into an emptied database, a manual edit), undo refuses rather than guess.
FAQ and synonyms are not part of an import and are left as they are.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Table, delete, select
from sqlalchemy.orm import Session

from knowledge.store.auditing import audit
from knowledge.store.handbook import SAMPLE_NAME, delete_documents, document_key
from knowledge.store.index_store import INDEX_ROW
from knowledge.store.state import bump_generation, lock_state
from storage.db import Database
from storage.models.base import UTCDateTime, utcnow
from storage.models.knowledge import KbArticle, KbDocument, KbImportUndo, KbIndex, KbPassage

if TYPE_CHECKING:
    from storage.accounts import Principal

UNDO_ROW = 1
NOTHING_TO_UNDO = "没有可以撤销的导入（只能撤销最近一次导入，撤销过的不能再撤销）。"
CHANGED_SINCE = "这次导入之后政策库又有了变化，不能再撤销它。需要的话请重新导入原来的文件。"
_TABLES: tuple[tuple[str, Table], ...] = (
    ("documents", KbDocument.__table__),  # type: ignore[arg-type]
    ("articles", KbArticle.__table__),  # type: ignore[arg-type]
    ("passages", KbPassage.__table__),  # type: ignore[arg-type]
)


class UndoError(Exception):
    """Nothing to undo, or undo would not restore what was there; the message is for the cadre."""


@dataclass(frozen=True)
class PendingUndo:
    """What an undo would undo, for the button's words ("撤销 11月27日 15:02 的导入（3 个文件）")."""

    imported_at: datetime
    actor: str
    files: list[str]
    possible: bool  # False: the handbook changed since; undo would refuse with CHANGED_SINCE


@dataclass(frozen=True)
class UndoReport:
    imported_at: datetime
    actor: str
    files: list[str]  # the files of the import that was undone
    removed: list[str]  # documents taken away (the ones that import added)
    restored: list[str]  # documents put back (the ones it replaced or removed)
    sample_restored: bool


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(session: Session, table: Table, where: Any) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()}
            for row in session.execute(select(table).where(where).order_by(table.c.id)).mappings()]


def _revive(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A saved row as the table takes it back: timestamps parsed again."""
    out = {}
    for key, value in row.items():
        column = table.c[key]
        if value is not None and isinstance(column.type, (UTCDateTime, DateTime)):
            value = datetime.fromisoformat(value)
        out[key] = value
    return out


class ImportRecorder:
    """Collects, inside an import's transaction, what the import changes; ``save`` writes the undo record."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.removed: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in _TABLES}
        self.inserted: list[int] = []

    def before_delete(self, document_ids: Iterable[int]) -> None:
        """Keep every row of these documents before the import deletes them."""
        ids = list(document_ids)
        if not ids:
            return
        articles = select(KbArticle.id).where(KbArticle.document_id.in_(ids))
        wheres = {
            "documents": KbDocument.id.in_(ids),
            "articles": KbArticle.document_id.in_(ids),
            "passages": KbPassage.article_id.in_(articles),
        }
        for name, table in _TABLES:
            self.removed[name] += _rows(self.session, table, wheres[name])

    def added(self, document_id: int) -> None:
        self.inserted.append(document_id)

    def save(self, files: list[str], actor: "Principal | None") -> None:
        """Replace the undo record; call after the documents are written and before the index is rebuilt."""
        index = self.session.get(KbIndex, INDEX_ROW)
        payload = zlib.compress(json.dumps({"removed": self.removed, "inserted": self.inserted},
                                           ensure_ascii=False).encode("utf-8"))
        self.session.execute(delete(KbImportUndo))
        self.session.add(KbImportUndo(
            id=UNDO_ROW, created_at=utcnow(), actor=(actor.name if actor is not None else "命令行")[:64],
            files=json.dumps(files, ensure_ascii=False), after_key=document_key(self.session), payload=payload,
            index_payload=bytes(index.payload) if index is not None else None,
            index_fingerprint=index.fingerprint if index is not None else None,
            index_passages=index.passages if index is not None else None,
            index_built_at=index.built_at if index is not None else None,
        ))
        self.session.flush()


def forget_undo(session: Session) -> None:
    """Drop the undo record: the handbook changed in a way that is not an undoable import."""
    session.execute(delete(KbImportUndo))


def pending_undo(db: Database) -> PendingUndo | None:
    """The import an undo would undo, or None when there is none."""
    with db.session() as session:
        record = session.get(KbImportUndo, UNDO_ROW)
        if record is None:
            return None
        return PendingUndo(record.created_at, record.actor, json.loads(record.files),
                           document_key(session) == record.after_key)


def undo_last_import(db: Database, *, actor: "Principal | None" = None) -> UndoReport:
    """Put the handbook back as it was before the last import; raises UndoError when that cannot be done."""
    with db.session() as session:
        lock_state(session)  # the same lock imports take: no import runs half-way through an undo
        record = session.get(KbImportUndo, UNDO_ROW)
        if record is None:
            raise UndoError(NOTHING_TO_UNDO)
        if document_key(session) != record.after_key:
            raise UndoError(CHANGED_SINCE)
        data = json.loads(zlib.decompress(record.payload).decode("utf-8"))
        inserted = [int(i) for i in data["inserted"]]
        # A compilation file is several documents under one name: name each file once.
        removed = list(dict.fromkeys(session.scalars(select(KbDocument.name).where(KbDocument.id.in_(inserted))
                                                     .order_by(KbDocument.id))))
        delete_documents(session, inserted)
        for name, table in _TABLES:  # parents first: articles refer to documents, passages to articles
            rows = [_revive(table, row) for row in data["removed"][name]]
            if rows:
                session.execute(table.insert(), rows)
        session.execute(delete(KbIndex))
        if record.index_payload is not None:
            session.add(KbIndex(id=INDEX_ROW, fingerprint=record.index_fingerprint, passages=record.index_passages,
                                built_at=record.index_built_at or utcnow(), payload=record.index_payload))
        bump_generation(session)
        restored = list(dict.fromkeys(row["name"] for row in data["removed"]["documents"]))
        files = [str(f) for f in json.loads(record.files)]
        report = UndoReport(record.created_at, record.actor, files, removed, restored, SAMPLE_NAME in restored)
        session.delete(record)
        detail = "；".join(part for part in (
            f"移除：{'、'.join(removed)}" if removed else "",
            f"恢复：{'、'.join(restored)}" if restored else "",
        ) if part)
        audit(session, actor, "handbook.undo", "、".join(files), detail or "没有文件变化")
        return report
