"""Files uploaded to the console, kept between "check" and "confirm" (issue 8).

A cadre uploads a roster, reads the row-by-row report, then presses 确认导入;
the second request must import exactly what the first one checked, whichever
worker serves it, so the checked content waits here (not in one process's
memory) for a short while, tied to the account that uploaded it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow


class ConsoleUpload(Base):
    """One checked upload. ``payload`` is what the importer needs, not the raw file (see storage/uploads.py)."""

    __tablename__ = "console_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # random; only its uploader may use it
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # which import: "households", ...
    filename: Mapped[str] = mapped_column(String(255), default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the file as uploaded
    meta: Mapped[str] = mapped_column(Text, default="{}")  # JSON: options and the checked plan's digest
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
