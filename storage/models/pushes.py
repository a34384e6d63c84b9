"""Pushes: one message sent to many followers for one purpose (a job posting now, a survey next).

A ``Push`` records who asked for what to be sent to whom (the targets), and
when. The sending state lives in ``PushDelivery``: one row per (purpose,
follower), unique in the database, written in the same transaction as the
push. A second push of the same posting therefore adds rows only for
followers who have none; those already reached (or being reached) get
nothing, whatever the cadre or a retry does.

A delivery row is the claim, the attempt and the outcome (see
``storage/pushes.py`` for the state machine): ``owner`` + ``lease_until``
while a worker holds it, ``sending`` committed before the HTTP call (so a
killed worker's call is known to have maybe happened: ``unconfirmed``), and
the result after it. ``client_msg_id`` is what WeChat dedupes template sends
on (for 10 minutes): a template row whose worker died mid-call may be sent
again with the same id inside that window, and WeChat delivers it once.

``PushOptOut`` is a household's "no more of these" (退订岗位), per kind.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow

# Delivery statuses (storage/pushes.py moves rows between them).
PENDING = "pending"          # 待发送: waiting for a sender (``not_before``: not before a back-off ends)
CLAIMED = "claimed"          # 已领取: a sender holds it (owner, lease) and has not called WeChat yet
SENDING = "sending"          # 发送中: the call is being made (committed before the call)
SENT = "sent"                # 已发出: WeChat accepted it (errcode 0); a template waits for its receipt
DELIVERED = "delivered"      # 已送达: the template receipt said success
FAILED = "failed"            # 失败: refused for good (43004, 43101, 45015 without template, receipt failure…)
UNREACHABLE = "unreachable"  # 无法送达: no channel (outside 48 h and no template configured)
UNCONFIRMED = "unconfirmed"  # 待确认: the call may or may not have gone out; never re-sent blindly
SKIPPED = "skipped"          # 已跳过: unfollowed, opted out or the posting closed before it was sent

IN_FLIGHT = (PENDING, CLAIMED, SENDING)
FINAL = (SENT, DELIVERED, FAILED, UNREACHABLE, UNCONFIRMED, SKIPPED)
STATUS_LABELS = {
    PENDING: "待发送", CLAIMED: "待发送", SENDING: "发送中", SENT: "已发出", DELIVERED: "已送达",
    FAILED: "失败", UNREACHABLE: "无法送达", UNCONFIRMED: "待确认", SKIPPED: "已跳过",
}

CUSTOM, TEMPLATE = "custom", "template"


class Push(Base):
    """One "send this to these villages" by a cadre (or the console): targets, who, when, counts."""

    __tablename__ = "pushes"
    __table_args__ = (Index("ix_pushes_kind_ref", "kind", "ref_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "job", later "survey"
    ref_id: Mapped[int] = mapped_column(Integer)  # the posting's (or survey's) id
    targets: Mapped[str] = mapped_column(Text, default="{}")  # JSON: villages, areas, all, labour_only
    actor: Mapped[str] = mapped_column(String(64))  # a console user's name, or "命令行"
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    candidates: Mapped[int] = mapped_column(Integer, default=0)  # bound followers the targets matched
    recipients: Mapped[int] = mapped_column(Integer, default=0)  # delivery rows this push added
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # candidates left out at push time
    skipped_detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: reason -> count
    finished_at: Mapped[datetime | None] = mapped_column(default=None)  # every row final; group told


class PushDelivery(Base):
    """One follower's copy of one purpose's message: the claim, the attempt and the outcome."""

    __tablename__ = "push_deliveries"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id", "openid", name="uq_push_deliveries_kind_ref_openid"),
        Index("ix_push_deliveries_status_id", "status", "id"),
        Index("ix_push_deliveries_push_status", "push_id", "status"),
        Index("ix_push_deliveries_msgid", "msgid"),
        Index("ix_push_deliveries_openid", "openid", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)
    openid: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id", ondelete="SET NULL"), default=None)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    channel: Mapped[str | None] = mapped_column(String(16), default=None)  # custom | template
    owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)  # a back-off (45009, -1, network)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls started
    backoffs: Mapped[int] = mapped_column(Integer, default=0)  # times put back for a transient error
    client_msg_id: Mapped[str | None] = mapped_column(String(64), default=None)
    first_sent_at: Mapped[datetime | None] = mapped_column(default=None)  # first call with client_msg_id
    msgid: Mapped[str | None] = mapped_column(String(32), default=None)  # template msgid, for the receipt
    errcode: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(255), default=None)  # why failed/skipped/unconfirmed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    receipt: Mapped[str | None] = mapped_column(String(32), default=None)  # TEMPLATESENDJOBFINISH Status
    receipt_at: Mapped[datetime | None] = mapped_column(default=None)


class PushOptOut(Base):
    """A household that asked for no more pushes of one kind (“退订岗位”)."""

    __tablename__ = "push_optouts"
    __table_args__ = (UniqueConstraint("household_id", "kind", name="uq_push_optouts_household_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    openid: Mapped[str | None] = mapped_column(String(64), default=None)  # who asked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushSender(Base):
    """A sending process's heartbeat (``bot.push``): rows owned by a sender that stopped beating are a dead
    worker's, recovered within seconds instead of when each row's lease runs out."""

    __tablename__ = "push_senders"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class EarlyReceipt(Base):
    """A TEMPLATESENDJOBFINISH that came before its row had its msgid written (the outcome is written in
    batches, a moment after the call); the sweeper applies it once the row has it, and drops it after a day."""

    __tablename__ = "push_early_receipts"

    msgid: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
