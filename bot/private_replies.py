"""Delivering a cadre's private reply (``sisong unanswered reply``) to the one household that asked.

WeChat lets the account write to a follower only within 48 hours of the
follower's last message. A reply written later is kept (``delivery=pending``)
and goes out the next time that follower writes: the pipeline calls
:func:`deliver_pending_replies` after every message's commit.

That call must cost nothing when nothing waits (almost always) and must not
touch the database from the message's thread, so each process keeps the set
of followers with a kept reply, reloaded by one query on the status index by
the sweeper (:func:`deliver_due_replies`, every ``SISONG_SWEEP_INTERVAL``); a
message is a set lookup. A reply kept in the seconds between a reload and the
follower's message is caught by the next reload, which delivers every kept
reply whose follower wrote after it was stored: at most one sweep interval
late. The send itself is a queue
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
from storage.models.base import utcnow
from storage import followers, message_log
from sqlalchemy.exc import SQLAlchemyError

from storage.db import Database, is_outage
from storage.privacy import mask_text, short_openid

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

# The sweeper reloads the set every SISONG_SWEEP_INTERVAL (deliver_due_replies); if it has not for this
# long (a process whose sweeper does not call it), the next message starts a reload in a thread.
FALLBACK = 60.0


class _Waiting:
    """This process's view of who has a kept reply: a set, and when it was loaded."""

    def __init__(self) -> None:
        self.openids: frozenset[str] = frozenset()
        # Fresh for FALLBACK seconds from the start: the first sweep loads it, not the first message.
        self.loaded = time.monotonic()
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

    A set lookup, no database call: the message's handler thread must not
    wait on the database for this (a second connection in a hang costs the
    next message its deadline). Returns 1 if a delivery was queued, else 0.
    """
    try:
        view = _view(services.db)
        if time.monotonic() - view.loaded > FALLBACK and view.lock.acquire(blocking=False):
            threading.Thread(target=_reload_in_background, args=(services, view), daemon=True,
                             name="sisong-replies").start()
        if openid in view.openids:
            services.queue.deliver_replies(openid)
            return 1
        return 0
    except Exception:  # noqa: BLE001 - the follower's own answer is already out; this waits for next time
        log.exception("kept replies not checked for %s", short_openid(openid))
        return 0


def _reload_in_background(services: "Services", view: _Waiting) -> None:
    """Reload the set (the lock is already held) and queue whoever wrote since their reply was kept."""
    try:
        if not services.db.breaker.allow():
            return
        with services.db.bounded():
            due = _reload(services, view)
        for who in due:
            services.queue.deliver_replies(who)
    except SQLAlchemyError as exc:
        if is_outage(exc):
            services.db.breaker.trip(exc)
        log.warning("kept replies not reloaded: database %s", type(exc).__name__)
    except Exception:  # noqa: BLE001 - a daemon thread: log, the next reload tries again
        log.exception("kept replies not reloaded")
    finally:
        view.loaded = max(view.loaded, time.monotonic() - FALLBACK / 2)  # after a failure: wait a little
        view.lock.release()


def deliver_due_replies(services: "Services") -> int:
    """The sweeper's call, every SISONG_SWEEP_INTERVAL: reload this process's set of followers with a kept
    reply (one query), and queue the replies of those who wrote since theirs was kept. Returns how many."""
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
        moment = utcnow()
        claimed = claim_reply(services.db, item_id, moment)
        if claimed is None:
            continue  # closed window, or another sender has it
        to, text = claimed
        outcome = attempt(send, to, text)
        settle_reply(services.db, item_id, outcome, claimed_at=moment)
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
