"""Importing handbook files into the database, all or nothing.

Every file is read and parsed before anything is written, so a scanned or
encrypted file in a batch stops the whole batch with its name, and a cadre is
never left with half a handbook. Files are keyed by content hash (importing
the same file again changes nothing) and by name (an edited file replaces its
previous version). Passages, the rebuilt index, the generation bump, the
record that lets the import be undone (``undo.py``) and its audit row are
committed in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowledge.ingest import errors
from knowledge.ingest.errors import HandbookFileError
from knowledge.ingest.readers import SUPPORTED, read_bytes, read_file
from knowledge.ingest.structure import ParsedArticle, ParsedDocument, parse_structure
from knowledge.ingest.undo import ImportRecorder, forget_undo
from knowledge.nlp.sentences import chunk_sentences, split_sentences
from knowledge.nlp.tokenizer import DATA_DIR, Segmenter, default_segmenter
from knowledge.store.auditing import audit
from knowledge.store.handbook import SAMPLE_NAME, delete_documents
from knowledge.store.index_store import rebuild_index
from knowledge.store.state import bump_generation, lock_state
from storage.db import Database
from storage.models.knowledge import KbArticle, KbDocument, KbPassage

if TYPE_CHECKING:
    from storage.accounts import Principal

PASSAGE_CHARS = 300
# The shipped fictional handbook (青山县), loaded on an empty database for the demo. It goes
# away, in the same transaction, as soon as a real handbook is imported.
SAMPLE_HANDBOOK = DATA_DIR / SAMPLE_NAME

Progress = Callable[[str, str], None]  # (stage, file name); stages: read, write, index
STATUS_LABELS = {"imported": "新导入", "updated": "已更新", "unchanged": "未变化"}


@dataclass(frozen=True)
class HandbookUpload:
    """A file received over the web: its name as the cadre's computer called it, and its bytes.

    Imported exactly like a path (the name keys the document, so uploading an
    edited file replaces its previous version), without a temporary file.
    """

    name: str
    content: bytes

    @property
    def path(self) -> Path:
        return Path(self.name)


class HandbookImportError(Exception):
    """One or more files could not be imported; nothing was written."""

    def __init__(self, failures: list[HandbookFileError]) -> None:
        self.failures = failures
        super().__init__("；".join(str(f) for f in failures))


@dataclass
class ParsedFile:
    path: Path
    content_hash: str
    size: int
    document: ParsedDocument


@dataclass
class FileReport:
    name: str
    title: str
    status: str  # imported | updated | unchanged
    chapters: int
    articles: int
    passages: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    files: list[FileReport]
    removed: list[str]
    changed: bool
    sample_removed: bool = False  # the shipped sample handbook was removed by this import

    @property
    def documents(self) -> int:
        return len(self.files)

    @property
    def chapters(self) -> int:
        return sum(f.chapters for f in self.files)

    @property
    def articles(self) -> int:
        return sum(f.articles for f in self.files)

    @property
    def warnings(self) -> list[str]:
        return [f"{f.name}：{w}" for f in self.files for w in f.warnings]


def split_passages(text: str) -> list[str]:
    """Long articles become several passages, cut only at sentence ends."""
    return chunk_sentences(split_sentences(text), PASSAGE_CHARS) or [text]


def parse_file(source: Path | HandbookUpload) -> ParsedFile:
    if isinstance(source, HandbookUpload):
        suffix = source.path.suffix.lower()
        if suffix not in SUPPORTED:
            raise HandbookFileError(source.path, errors.unsupported(suffix))
        raw = read_bytes(source.name, source.content, suffix)
    else:
        raw = read_file(source)
    path = source.path if isinstance(source, HandbookUpload) else source
    document = parse_structure(raw)
    if not document.articles:
        raise HandbookFileError(path, errors.NO_ARTICLES)
    return ParsedFile(path, hashlib.sha256(raw.content).hexdigest(), len(raw.content), document)


def parse_files(paths: Sequence[Path | HandbookUpload], progress: Progress | None = None) -> list[ParsedFile]:
    parsed: list[ParsedFile] = []
    failures: list[HandbookFileError] = []
    seen: set[str] = set()
    for path in paths:
        try:
            item = parse_file(path)
            if item.content_hash not in seen:
                seen.add(item.content_hash)
                parsed.append(item)
        except HandbookFileError as exc:
            failures.append(exc)
        if progress:
            progress("read", path.path.name if isinstance(path, HandbookUpload) else path.name)
    if failures:
        raise HandbookImportError(failures)
    return parsed


def part_hash(content_hash: str, part: int) -> str:
    """The key of the ``part``-th document of a compilation file: its first document carries
    the file's own hash (what "same file again" looks up), the others one derived from it."""
    return content_hash if part == 0 else hashlib.sha256(f"{content_hash}#{part}".encode()).hexdigest()


def _parts(doc: ParsedDocument) -> list[tuple[str, list[ParsedArticle]]]:
    """The file's documents in order: (title, articles). One for an ordinary handbook; one per
    通知/方案/办法 for a compilation, each stored as its own document so answers cite it by name."""
    parts: list[tuple[str, list[ParsedArticle]]] = []
    for article in doc.articles:
        title = article.document or doc.title
        if not parts or parts[-1][0] != title:
            parts.append((title, []))
        parts[-1][1].append(article)
    return parts


def _insert_document(session: Session, item: ParsedFile) -> tuple[list[int], int]:
    doc = item.document
    parts = _parts(doc)
    ids: list[int] = []
    passage_count = 0
    for n, (title, part_articles) in enumerate(parts):
        chapters = doc.chapters if len(parts) == 1 else len(
            {(a.chapter_label, a.chapter_title) for a in part_articles if a.chapter_label or a.chapter_title})
        row = KbDocument(
            name=doc.name, title=title[:255], content_hash=part_hash(item.content_hash, n), size_bytes=item.size,
            chapters=chapters, articles=len(part_articles),
            warnings=json.dumps(doc.warnings if n == 0 else [], ensure_ascii=False),
        )
        session.add(row)
        session.flush()
        articles = [
            KbArticle(document_id=row.id, seq=seq, chapter_label=a.chapter_label, chapter_title=a.chapter_title,
                      label=a.label, title=a.title, text=a.text)
            for seq, a in enumerate(part_articles, 1)
        ]
        session.add_all(articles)
        session.flush()
        passages = [
            KbPassage(article_id=article.id, seq=seq, text=chunk)
            for article in articles
            for seq, chunk in enumerate(split_passages(article.text), 1)
        ]
        session.add_all(passages)
        session.flush()
        ids.append(row.id)
        passage_count += len(passages)
    return ids, passage_count


def _audit_detail(report: ImportReport) -> str:
    parts = [f"{STATUS_LABELS.get(f.status, f.status)} {f.name}（{f.articles} 条）" for f in report.files]
    parts += [f"移除 {name}" for name in report.removed]
    return "；".join(parts) + ("" if report.changed else "；没有变化")


def write_documents(
    session: Session,
    parsed: Sequence[ParsedFile],
    replace: bool,
    segmenter: Segmenter,
    progress: Progress | None = None,
    *,
    actor: "Principal | None" = None,
    record: bool = True,
) -> ImportReport:
    """Write parsed files in the caller's transaction.

    ``record``: keep what this import replaces so ``undo_last_import`` can put it
    back, and add an audit row (by ``actor``; None is the command line). Loading
    the shipped sample into an empty database is not a cadre's import: it records
    nothing and forgets any older undo record, which no longer describes the handbook.
    """
    lock_state(session)
    recorder = ImportRecorder(session)
    existing = session.execute(select(KbDocument)).scalars().all()
    by_hash = {d.content_hash: d for d in existing}
    by_name: dict[str, list[KbDocument]] = {}
    for d in existing:  # a compilation file is several documents under one name
        by_name.setdefault(d.name, []).append(d)
    kept: set[int] = set()
    reports: list[FileReport] = []
    changed = False
    for item in parsed:
        doc = item.document
        same = by_hash.get(item.content_hash)
        if same is not None:
            siblings = [d for d in by_name.get(same.name, [same])]
            kept.update(d.id for d in siblings)
            passages = session.execute(
                select(KbPassage.id).join(KbArticle).where(KbArticle.document_id.in_([d.id for d in siblings]))
            ).all()
            reports.append(FileReport(doc.name, doc.title, "unchanged", sum(d.chapters for d in siblings),
                                      sum(d.articles for d in siblings), len(passages), doc.warnings))
        else:
            status = "imported"
            previous = [d for d in by_name.get(doc.name, []) if d.id not in kept]
            if previous:
                recorder.before_delete([d.id for d in previous])
                delete_documents(session, [d.id for d in previous])
                status = "updated"
            new_ids, passages = _insert_document(session, item)
            for new_id in new_ids:
                recorder.added(new_id)
            kept.update(new_ids)
            changed = True
            reports.append(FileReport(doc.name, doc.title, status, doc.chapters, len(doc.articles),
                                      passages, doc.warnings))
        if progress:
            progress("write", doc.name)
    names = {p.document.name for p in parsed}
    stale: list[KbDocument] = []
    if replace:
        stale = [d for d in existing if d.id not in kept and d.content_hash not in
                 {p.content_hash for p in parsed} and d.name not in names]
    sample_removed = False
    if any(name != SAMPLE_HANDBOOK.name for name in names):
        sample = [d for d in existing if d.name == SAMPLE_HANDBOOK.name and d.id not in kept and d not in stale]
        stale += sample
        sample_removed = bool(sample) or any(d.name == SAMPLE_HANDBOOK.name for d in stale)
    removed = [d.name for d in stale]
    recorder.before_delete([d.id for d in stale])
    delete_documents(session, [d.id for d in stale])
    changed = changed or bool(stale)
    report = ImportReport(reports, removed, changed, sample_removed)
    if changed:
        if record:
            recorder.save([p.document.name for p in parsed], actor)  # before the index it keeps is rebuilt
        else:
            forget_undo(session)
        rebuild_index(session, segmenter)
        bump_generation(session)
    if record:
        audit(session, actor, "handbook.import", "、".join(p.document.name for p in parsed), _audit_detail(report))
    if progress:
        progress("index", "")
    return report


def import_files(
    db: Database,
    paths: Sequence[Path | str | HandbookUpload],
    replace: bool = False,
    progress: Progress | None = None,
    segmenter: Segmenter | None = None,
    *,
    actor: "Principal | None" = None,
    record: bool = True,
) -> ImportReport:
    """Import handbook files (paths, or uploads); raises HandbookImportError (naming each bad file) and writes
    nothing then. ``actor`` is the console account importing (None: the command line), for the audit log;
    ``record=False`` only for loading the shipped sample (see ``write_documents``)."""
    parsed = parse_files([p if isinstance(p, HandbookUpload) else Path(p) for p in paths], progress)
    segmenter = segmenter or default_segmenter()
    try:
        with db.session() as session:
            return write_documents(session, parsed, replace, segmenter, progress, actor=actor, record=record)
    except IntegrityError:
        # Another process imported the same file between our read and our insert (SQLite has
        # no row lock to wait on). Its transaction is committed now: once more sees it as "unchanged".
        with db.session() as session:
            return write_documents(session, parsed, replace, segmenter, progress, actor=actor, record=record)
