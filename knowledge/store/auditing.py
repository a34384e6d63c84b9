"""The audit log, as the knowledge base's writers use it (import, undo, synonyms).

A thin wrapper so the row is added in the writer's own transaction (the change
and its record commit together) without importing ``storage.accounts`` when the
knowledge base is only read: that module hashes a dummy password at import
(argon2, about 0.2 s), which ``sisong ask`` and the benchmark need not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from storage.accounts import Principal


def audit(session: Session, actor: "Principal | None", action: str, target: str = "", detail: str = "") -> None:
    """Add an audit row to ``session``; ``actor`` None is the command line (命令行)."""
    from storage.accounts import audit as add_audit_row

    add_audit_row(session, actor, action, target, detail)
