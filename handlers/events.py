"""Events that need no words back: reports, delivery receipts, views and picker events.

WeChat expects ``success`` for them; anything else would be shown to nobody or
confuse the follower.
"""

from __future__ import annotations

import logging

from bot.context import Context
from bot.router import router

log = logging.getLogger(__name__)


@router.event(
    "view",
    "location",
    "scancode_push",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "subscribe_msg_popup_event",
    "subscribe_msg_change_event",
    "subscribe_msg_sent_event",
)
def acknowledge(ctx: Context) -> None:
    return None


@router.event("templatesendjobfinish", "masssendjobfinish")
def send_job_finished(ctx: Context) -> None:
    """Delivery receipts. A template's (TEMPLATESENDJOBFINISH) settles its push row, found by MsgID,
    in the message's unit of work; a mass send's carries only counts and is only logged."""
    data = ctx.message._data
    msgid, status = data.get("MsgID") or data.get("MsgId"), data.get("Status")
    ctx.text = f"MsgID={msgid} Status={status}"
    matched = False
    if ctx.event == "templatesendjobfinish" and msgid:
        from storage.pushes import record_receipt

        matched = record_receipt(ctx.session, str(msgid), str(status or ""))
    log.info("send job finished", extra={"event": ctx.event, "status": status, "matched": matched})
    return None


@router.event("scancode_waitmsg")
def scan_result(ctx: Context) -> str:
    return "扫码结果已收到。有问题可以直接问我，或回复“0”请工作人员帮您。"
