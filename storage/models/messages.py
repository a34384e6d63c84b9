"""The message log, which is also the inbox of the message path.

Every inbound message gets its row *before* it is answered (``status`` =
``received``), keyed by its dedupe key (MsgId, or FromUserName + CreateTime +
Event for events). The unique key is the last line of dedupe: whatever Redis
or a worker does, a message is claimed once. ``owner`` and ``lease_until``
say who is answering it and until when; a WeChat retry or the sweeper takes
over a claim whose lease ran out (the worker died). Outbound sends are logged
in the same table with ``direction = "out"`` and no dedupe key.

Text columns hold masked text only (``storage.privacy.mask_text``). ``payload``
is the one clear-text column: the inbound XML while the message is being
answered, then the reply while it may still have to be (re)sent; the sweeper
empties it once the message is settled and ``SISONG_DEDUPE_TTL`` has passed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow

# Inbound statuses. ``received``: being answered. ``owed``: answered too late for
# the HTTP reply, a customer-service message must carry it. ``sending``: that
# message is being sent. ``answered``: the follower has the answer (or nothing was
# to be said). ``busy``: the database failed and the follower was told "系统繁忙";
# the words wait for a cadre. ``failed``: gave up after SISONG_MAX_ATTEMPTS.
# ``undeliverable``: WeChat refused the customer-service message for good.
RECEIVED, OWED, SENDING, ANSWERED, BUSY, FAILED, UNDELIVERABLE = (
    "received", "owed", "sending", "answered", "busy", "failed", "undeliverable"
)
SETTLED = (ANSWERED, BUSY, FAILED, UNDELIVERABLE)


class MessageLog(Base):
    __tablename__ = "message_log"
    __table_args__ = (
        Index("ix_message_log_openid_created", "openid", "created_at"),
        Index("ix_message_log_status_lease", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    openid: Mapped[str] = mapped_column(String(64))
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64), default=None)
    msg_id: Mapped[str | None] = mapped_column(String(64), default=None)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    handler: Mapped[str | None] = mapped_column(String(64), default=None)
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    # Outbound: "passive", "custom", "template", ...; errcode 0 means delivered to WeChat.
    channel: Mapped[str | None] = mapped_column(String(16), default=None)
    errcode: Mapped[int | None] = mapped_column(Integer, default=None)
    # -- the inbox (inbound rows only) --
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[str | None] = mapped_column(Text, default=None)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)


class WeChatToken(Base):
    """The account's access token, shared by every process through the database.

    Redis may be down; the database is what every worker and the queue consumer
    share for sure, so the token lives here and only one process refreshes it
    (a row lock), instead of each worker fetching its own and invalidating the
    others' ("40001 … not latest").
    """

    __tablename__ = "wechat_tokens"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
