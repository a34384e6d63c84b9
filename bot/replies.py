"""Delivering a cadre's private reply (``sisong unanswered reply``) to the one household that asked.

WeChat lets the account write to a follower only within 48 hours of the
follower's last message. A reply written later is kept (``delivery=pending``)
and goes out the next time that follower writes: the pipeline calls
:func:`deliver_pending_replies` after every message's commit.

That call must cost nothing when nothing waits (almost always), so each
process keeps the set of followers with a kept reply, reloaded by one query on
the status index at most every ``REFRESH`` seconds; a message from anyone else
is a set lookup. A reply kept in the seconds between a reload and the
follower's message is caught by the next reload (any message to the process,
or the sweeper's :func:`deliver_due_replies`): it delivers every kept reply
whose follower wrote after the reply was stored. The send itself is a queue
task (it must not hold a handler thread), and a claim on the row makes it go
out exactly once however many messages and sweepers race for it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from knowledge.store.unanswered import attempt, claim_reply, kept_replies, pending_reply_ids, settle_reply
from storage import followers, message_log
from storage.db import Database
from storage.privacy import mask_text, short_openid

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

REFRESH = 2.0  # seconds between reloads of the set of followers with a kept reply


class _Waiting:
    """This process's view of who has a kept reply: a set, and when it was loaded."""

    def __init__(self) -> None:
        self.openids: frozenset[str] = frozenset()
        self.loaded = float("-inf")
        self.lock = threading.Lock()


_waiting: "weakref.WeakKeyDictionary[Database, _Waiting]" = weakref.WeakKeyDictionary()
_waiting_lock = threading.Lock()


def _view(db: Database) -> _Waiting:
    with _waiting_lock:
        view = _waiting.get(db)
        if view is None:
            view = _waiting[db] = _Waiting()
        return view


def deliver_pending_replies(services: "Services", openid: str) -> int:
    """After a follower's message committed: queue the delivery of replies kept for them. Never raises.

    Returns how many followers' deliveries were queued (0 almost always).
    """
    try:
        view = _view(services.db)
        due: set[str] = set()
        if time.monotonic() - view.loaded > REFRESH and view.lock.acquire(blocking=False):
            try:
                due = _reload(services, view)
            finally:
                view.lock.release()
        if openid in view.openids:
            due.add(openid)
        for who in due:
            services.queue.deliver_replies(who)
        return len(due)
    except Exception:  # noqa: BLE001 - the follower's own answer is already out; this waits for next time
        log.exception("kept replies not checked for %s", short_openid(openid))
        return 0


def deliver_due_replies(services: "Services") -> int:
    """The sweeper's backstop: queue kept replies whose follower wrote since they were stored."""
    view = _view(services.db)
    with view.lock:
        due = _reload(services, view)
    for who in due:
        services.queue.deliver_replies(who)
    return len(due)


def _reload(services: "Services", view: _Waiting) -> set[str]:
    """Reload the set; return followers who wrote after their reply was kept (their window is open)."""
    rows = kept_replies(services.db)
    view.openids = frozenset(openid for openid, _, _ in rows)
    view.loaded = time.monotonic()
    return {openid for openid, answered_at, wrote_at in rows
            if wrote_at is not None and answered_at is not None and wrote_at > answered_at}


def deliver_now(services: "Services", openid: str) -> int:
    """The queue task: send every reply kept for ``openid`` whose window is open; returns how many went."""
    with services.db.session() as session:
        ids = pending_reply_ids(session, openid)
    send = sender(services)
    delivered = 0
    for item_id in ids:
        claimed = claim_reply(services.db, item_id)
        if claimed is None:
            continue  # closed window, or another sender has it
        to, text = claimed
        outcome = attempt(send, to, text)
        settle_reply(services.db, item_id, outcome)
        delivered += outcome == "delivered"
    if delivered:
        log.info("kept replies delivered", extra={"openid": short_openid(openid), "count": delivered})
    return delivered


def sender(services: "Services") -> Callable[[str, str], None]:
    """A customer-service send that is logged (masked) like every outbound message."""

    def send(openid: str, text: str) -> None:
        errcode, unreachable = 0, None
        try:
            services.wechat.send_text(openid, text)
        except Exception as exc:
            errcode = getattr(exc, "errcode", None) or -2
            unreachable = getattr(exc, "unreachable_reason", None)
            raise
        finally:
            try:
                with services.db.session() as session:
                    message_log.log_outbound(session, openid=openid, msg_type="text", text=mask_text(text),
                                             channel="custom", errcode=errcode)
                    if unreachable:
                        followers.mark_unreachable(session, openid, unreachable)
            except Exception:  # noqa: BLE001 - the log line must not turn a sent reply into a failure
                log.exception("could not record outbound message")

    return send
