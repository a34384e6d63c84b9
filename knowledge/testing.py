"""Throwaway databases for the knowledge tests and benchmarks.

SQLite files go in a temporary directory; PostgreSQL gets its own scratch
database (``kb_test`` by default) so the knowledge tests never touch the
tables other suites truncate in ``test``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import delete

from knowledge.store.state import bump_generation

from storage.db import Database
from storage.models.knowledge import (
    KbArticle, KbDocument, KbFaq, KbIndex, KbPassage, KbSynonym, KbUnanswered,
)

ADMIN_URL_ENV = "SISONG_KB_TEST_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1/postgres"


def sqlite_database(directory: Path, name: str = "kb.db") -> Database:
    db = Database(f"sqlite:///{directory / name}")
    db.upgrade()
    return db


def postgres_database(name: str = "kb_test") -> Database | None:
    """A freshly created PostgreSQL database migrated to head, or None if no server answers."""
    import psycopg

    admin = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError("database names are lower-case identifiers")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError:
        return None
    db = Database(admin.rsplit("/", 1)[0] + "/" + name)
    db.upgrade()
    return db


def drop_postgres_database(db: Database, name: str = "kb_test") -> None:
    import psycopg

    db.dispose()
    admin = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def reset_knowledge(db: Database) -> None:
    """Empty every knowledge table and bump the generation so loaded snapshots notice."""
    with db.session() as session:
        for model in (KbPassage, KbArticle, KbDocument, KbIndex, KbFaq, KbSynonym, KbUnanswered):
            session.execute(delete(model))
        bump_generation(session)
