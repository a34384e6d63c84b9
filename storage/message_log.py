"""Writes to the message log; kept in one place so every channel logs the same fields."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from storage.models import MessageLog
from storage.models.base import utcnow


def log_inbound(
    session: Session,
    *,
    openid: str,
    msg_type: str,
    event: str | None,
    msg_id: str | None,
    text: str | None,
    handler: str | None,
    latency_ms: int,
    reply: str | None,
) -> None:
    # A plain INSERT (no ORM unit of work): it runs once per message.
    session.execute(
        insert(MessageLog).values(
            created_at=utcnow(),
            direction="in",
            openid=openid,
            msg_type=msg_type,
            event=event,
            msg_id=msg_id,
            text=text,
            handler=handler,
            latency_ms=latency_ms,
            reply=reply,
            channel="passive",
        )
    )


def log_outbound(
    session: Session, *, openid: str, msg_type: str, text: str | None, channel: str, errcode: int
) -> None:
    session.add(
        MessageLog(
            direction="out", openid=openid, msg_type=msg_type, text=text, channel=channel, errcode=errcode
        )
    )
