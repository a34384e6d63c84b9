"""Outbound lines of the message log (inbound rows are the inbox: ``storage.inbox``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.models import MessageLog


def log_outbound(
    session: Session, *, openid: str, msg_type: str, text: str | None, channel: str, errcode: int
) -> None:
    session.add(
        MessageLog(
            direction="out", openid=openid, msg_type=msg_type, text=text, channel=channel, errcode=errcode
        )
    )
