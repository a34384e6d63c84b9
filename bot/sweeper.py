"""The sweeper: nothing a follower sent stays unanswered because a process died.

Runs every ``SISONG_SWEEP_INTERVAL`` seconds in every web worker and in
``sisong worker`` (each step is an atomic takeover, so several sweepers never
do the same work twice):

1. replays the spool (messages the database could not take) into the inbox,
   and queues their words for a cadre;
2. takes over claims whose lease ran out (their worker was killed, say by the
   OOM killer, mid-answer) and answers them as customer-service messages;
3. re-sends owed late answers whose send task vanished or failed;
4. forgets the clear text of settled messages once no retry can come;
5. sends WeCom group notices still waiting (``bot.notices``: merged, within
   WeCom's 20 a minute) and cadres' private replies kept for followers who
   have written since (``bot.private_replies``);
6. once a minute, retries WeChat user tags that failed when a follower bound
   (``bot.binding.retag_pending``): slow when WeChat is down, so not every pass;
7. once an hour, deletes console sessions nobody can use any more
   (``storage.accounts.purge_sessions``) and checked uploads nobody confirmed
   (``storage.uploads.purge_expired``);
8. pushes (``bot.push``): rows of a dead sender (heartbeat silent, or lease
   run out) back to pending (or 待确认), finished pushes announced, template
   receipts that came early applied, the sender kicked when rows are due;
   once a minute, job postings past their deadline closed and survey
   reminders queued (``bot.survey.campaigns.queue_reminders``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from wechatpy import parse_message

from bot.context import event_of
from bot.notices import flush_notices
from bot.pipeline import Pipeline, logged_text
from bot.private_replies import deliver_due_replies
from bot.services import Services
from storage import inbox
from storage import uploads
from storage.accounts import purge_sessions
from storage.db import is_outage
from storage.redis_client import REDIS_ERRORS

log = logging.getLogger(__name__)

# Abandoned claims are taken this long after their lease ran out (a retry may be about to).
TAKEOVER_GRACE = 1.0
# WeChat-side chores (retagging) at most this often: they wait on WeChat, not on us.
CHORES_EVERY = 60.0
# Expired console sessions are harmless (refused anyway); clearing them hourly keeps the table small.
SESSIONS_EVERY = 3600.0


class Sweeper:
    def __init__(self, services: Services, pipeline: Pipeline) -> None:
        self.services = services
        self.pipeline = pipeline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chores_at = 0.0
        self._sessions_at: float | None = None  # the first pass purges

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sisong-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.services.settings.sweep_interval):
            try:
                self.sweep()
            except Exception:  # never let the sweeper die
                log.exception("sweep failed")

    def sweep(self) -> dict[str, int]:
        """One pass; returns what it did (for tests and the log)."""
        db = self.services.db
        done = {"replayed": 0, "resumed": 0, "resent": 0, "notices": 0, "replies": 0}
        if not db.breaker.allow():
            return done
        try:
            with db.bounded():
                done["replayed"] = self.services.spool.replay(self._apply_spooled)
                done["resumed"] = self._resume_abandoned() + self._resume_abandoned_in_redis()
                done["resent"] = self._resend_owed()
                done["notices"] = flush_notices(self.services)
                done["replies"] = deliver_due_replies(self.services)
                with db.session() as session:
                    inbox.forget_payloads(session, older_than=self.services.settings.dedupe_ttl)
        except SQLAlchemyError as exc:
            if is_outage(exc):
                db.breaker.trip(exc)
            log.warning("sweep stopped: database %s", type(exc).__name__)
        if db.breaker.allow():
            done.update(self._pushes())
        if time.monotonic() - self._chores_at >= CHORES_EVERY and db.breaker.allow():
            self._chores_at = time.monotonic()
            done["retagged"] = self._retag()
            done["jobs_expired"] = self._expire_jobs()
            done["survey_reminders"] = self._survey_reminders()
        if (self._sessions_at is None or time.monotonic() - self._sessions_at >= SESSIONS_EVERY) \
                and db.breaker.allow():
            self._sessions_at = time.monotonic()
            done["sessions"] = self._purge_sessions()
        if any(done.values()):
            log.info("swept", extra=done)
        return done

    def _pushes(self) -> dict[str, int]:
        """Push rows of dead senders back in play (or 待确认), finished pushes announced, the sender kicked."""
        try:
            with self.services.db.bounded():
                return {k: v for k, v in self.services.pusher.sweep().items() if v}
        except Exception:  # noqa: BLE001 - the next pass tries again; rows are safe in the database
            log.warning("push sweep failed", exc_info=True)
            return {}

    def _expire_jobs(self) -> int:
        """Postings past their deadline become 已截止 (readers already treat them so)."""
        from storage.jobs import expire_due

        try:
            with self.services.db.session() as session:
                return expire_due(session, self.services.settings.timezone)
        except Exception:  # noqa: BLE001
            log.warning("job deadlines not applied", exc_info=True)
            return 0

    def _survey_reminders(self) -> int:
        """The one reminder to households that have not finished a survey (in the day only)."""
        from bot.survey.campaigns import queue_reminders

        try:
            return queue_reminders(self.services)
        except Exception:  # noqa: BLE001 - next minute
            log.warning("survey reminders not queued", exc_info=True)
            return 0

    def _retag(self) -> int:
        from bot.binding import retag_pending

        try:
            return retag_pending(self.services)
        except Exception:  # WeChat or the database down: next minute
            log.warning("retagging failed", exc_info=True)
            return 0

    def _purge_sessions(self) -> int:
        try:
            with self.services.db.bounded():
                sessions = purge_sessions(self.services.db)
                uploads.purge_expired(self.services.db)  # checked console uploads nobody confirmed
                return sessions
        except SQLAlchemyError as exc:  # the next hour will do
            log.warning("purging console sessions failed: %s", type(exc).__name__)
            return 0

    def _apply_spooled(self, records: list[dict[str, Any]]) -> None:
        busy = []
        with self.services.db.session() as session:
            for record in records:
                created = datetime.fromisoformat(record["created_at"])
                if inbox.record_busy(
                    session, key=record["key"], openid=record["openid"], msg_type=record["msg_type"],
                    event=record.get("event"), msg_id=record.get("msg_id"), text=record.get("text"),
                    created_at=created,
                ):
                    busy.append(record)
        for record in busy:
            if record.get("text"):
                self.services.keep_for_cadre(record["openid"], record["text"])

    def _resume_abandoned(self) -> int:
        settings = self.services.settings
        with self.services.db.session() as session:
            candidates = inbox.abandoned(session, grace=TAKEOVER_GRACE)
        resumed = 0
        for row_id in candidates:
            owner = inbox.new_owner()
            with self.services.db.session() as session:
                row = inbox.take_over(session, row_id, owner, settings.claim_lease)
            if row is None:
                continue
            log.warning("answering a message whose worker did not finish", extra={"attempt": row.attempts})
            self.pipeline.resume(row, owner)
            resumed += 1
        return resumed

    def _resume_abandoned_in_redis(self) -> int:
        """Redis claims whose worker died (``storage.redis_inbox``): moved to the database inbox, then
        answered like any abandoned claim. A Redis outage here waits for the next pass."""
        redis_inbox = self.services.redis_inbox
        breaker = self.services.redis_breaker
        if redis_inbox is None or (breaker is not None and not breaker.allow()):
            return 0
        settings = self.services.settings
        resumed = 0
        try:
            for key in redis_inbox.abandoned(TAKEOVER_GRACE):
                # Two steps: the claim is taken over in Redis (payload kept), written to the database
                # inbox, and only then marked moved; a failure in between leaves it for the next pass.
                owner = inbox.new_owner()
                taken = redis_inbox.take_abandoned(key, TAKEOVER_GRACE, owner, settings.claim_lease)
                if taken is None:
                    continue
                try:
                    message = parse_message(taken.payload)
                except Exception:  # noqa: BLE001 - an unreadable payload: resume() gives it up
                    message = None
                with self.services.db.session() as session:
                    row = inbox.claim(
                        session, key=key, owner=owner, lease=settings.claim_lease,
                        openid=str(getattr(message, "source", "") or ""),
                        msg_type=str(getattr(message, "type", "unknown")),
                        event=event_of(message) if message is not None else None,
                        msg_id=str(getattr(message, "id", "") or "") or None,
                        text=logged_text(message) if message is not None else None, payload=taken.payload,
                        attempts=taken.attempts,
                    )
                redis_inbox.moved(key, owner)
                if not row.mine(owner):
                    continue  # its row was committed before the worker died
                log.warning("answering a message whose worker did not finish", extra={"attempt": row.attempts})
                self.pipeline.resume(inbox.InboxRow(row.id, row.status, owner, row.attempts, row.lease_until,
                                                    taken.payload, row.openid), owner)
                resumed += 1
        except REDIS_ERRORS as exc:
            if breaker is not None:
                breaker.trip(exc)
        return resumed

    def _resend_owed(self) -> int:
        with self.services.db.session() as session:
            due = inbox.owed_due(session, resend_after=60.0)
        for row_id in due:
            self.services.queue.send_reply(row_id)
        return len(due)
