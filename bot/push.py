"""The push engine: sending one purpose's message to many followers, once each.

Generic over the purpose: a job posting now (``bot.jobs``), a survey invitation
next. A purpose registers what it sends (:class:`Purpose`: a text for inside
the 48-hour window, a template outside it, None once it must not be sent any
more) and how its result is announced; rows, claims, channels, rates, errors
and receipts are handled here and in ``storage.pushes`` once for all.

How a process sends (:class:`Pusher`, one per process):

* A drain loop claims due rows in batches (one ``UPDATE … RETURNING``,
  ``SKIP LOCKED`` on PostgreSQL) and hands them, ``CHUNK`` at a time, to a
  thread pool (``SISONG_PUSH_THREADS``): WeChat answers in tens of
  milliseconds, so concurrency sets the pace. At most two chunks per thread
  are held at once, so a killed worker strands few claims (they return when
  the lease ends).
* A thread picks each row's channel *now* (the follower may have written
  since the push), takes permits from the global rate (``SISONG_PUSH_RATE``,
  counted in Redis across every worker), commits the rows as ``sending``
  and only then calls WeChat, row after row. The chunk's template rows are
  marked in one statement (one fsync for four sends; a mark whose call never
  happened is harmless, as the resend carries the same ``client_msg_id``); a
  customer-service row is marked alone, just before its call. Outcomes are
  written in batches, riding on the next ``sending`` statement.
* -1 (WeChat busy) pauses every thread of the process, the pause doubling
  while WeChat keeps saying it; 45009 (the day's quota of that API is used
  up) stops that channel until 00:00 Beijing time, when WeChat's quotas start
  again. Either way the row goes back with a back-off that is not the row's
  fault (not counted against it). A follower-level refusal (43004, 43101,
  45015 without a template) is final for that row only.

Who starts it: ``jobs push`` in the foreground (it drains itself and shows
progress), a queue task (``--detach``, the console), and the sweeper, which
every pass requeues rows of dead workers (``storage.pushes.recover_stale``)
and kicks the drain when rows are due. Kicking a process that is already
draining does nothing.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.push_content import Content
from bot.wechat_client import TOKEN_ERRORS, WeChatAPIError
from storage import pushes
from storage.db import is_outage
from storage.models.base import utcnow
from storage.models.pushes import CUSTOM, FAILED, PENDING, SENT, SKIPPED, TEMPLATE, UNCONFIRMED, UNREACHABLE
from storage.privacy import short_openid

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.notices import Notice
    from bot.services import Services

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=47)  # WeChat's customer-service window is 48 h; an hour of margin for clocks
BUSY = -1  # WeChat's "system busy": the whole account waits a little
QUOTA = 45009  # the day's calls of this API are used up: the channel waits for 00:00 Beijing time
OUT_OF_WINDOW = {45015, 45047}  # a customer message refused: outside the window / its 5 used up
BACKOFF_MAX = 1800.0  # seconds: back-offs (-1, network) grow to half an hour; a longer wait is the day's quota
RATE_KEY = "push"
# Rows a sending thread takes at a time: their template rows are marked `sending` in one statement, so a
# commit (an fsync) is shared by four sends; their calls then go one after another.
CHUNK = 4


# -- purposes ------------------------------------------------------------------------------------


class Purpose(Protocol):
    """What a kind of push sends. Registered once at import (``register``)."""

    kind: str

    def contents(self, services: "Services", session: "Session", ref_ids: set[int]) -> dict[int, Content | None]:
        """The content of each ref; None for one that must not be sent any more (closed, expired)."""

    def result_notice(self, services: "Services", session: "Session", push_id: int) -> "Notice | None":
        """Queue (in ``session``) the township group's notice that this push finished; dispatched after commit."""

    # A purpose may set ``quiet = True``: its rows wait out SISONG_QUIET_HOURS (nobody is written to at night).


PURPOSES: dict[str, Purpose] = {}


def register(purpose: Purpose) -> Purpose:
    PURPOSES[purpose.kind] = purpose
    return purpose


def purpose_of(kind: str) -> Purpose | None:
    if kind not in PURPOSES:
        for module in ("bot.jobs", "bot.survey.campaigns"):  # they register "job", "survey" and the rest
            importlib.import_module(module)
    return PURPOSES.get(kind)


# -- per-row decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """What is known about a row's follower when it is sent (read with the claim)."""

    subscribed: bool
    unreachable: str | None
    last_interaction: datetime | None
    opted_out: bool


SKIP_CLOSED = "已停止推送（岗位已关闭、截止或已满之前撤回）"


def choose_channel(row: pushes.ClaimedRow, who: Recipient | None, content: Content | None,
                   now: datetime, dedupe_window: float = 600.0) -> tuple[str | None, str | None, str | None]:
    """(channel, final status if no call is made, reason): decided at send time, per follower.

    A row going out again after an attempt that may have reached WeChat (a
    lost worker, a timeout) keeps its template and its ``client_msg_id``:
    WeChat delivers one copy per id, but only within its 10-minute dedupe
    window, counted from the first attempt. Past the window (a long back-off
    intervened) a resend could be a second copy, so the row is 待确认 instead.
    A customer message is never re-sent, so such a row is always a template.
    """
    if content is None:
        return None, SKIPPED, SKIP_CLOSED
    if who is None or not who.subscribed or who.unreachable == "not_following":
        return None, SKIPPED, "已取消关注"
    if who.opted_out:
        return None, SKIPPED, "已退订"
    if row.client_msg_id:
        first = row.first_sent_at
        if first is None or (now - first).total_seconds() >= dedupe_window:
            return None, UNCONFIRMED, "之前那次发送不知道是否已到，已过微信去重时限，不再重发"
        if content.template is None:
            return None, UNCONFIRMED, "发送进程中断，且没有配置模板消息，无法用同一编号重发"
        return TEMPLATE, None, None
    inside = who.last_interaction is not None and who.last_interaction >= now - WINDOW
    if inside and who.unreachable is None:
        return CUSTOM, None, None
    if content.template is not None and who.unreachable != "refused":
        return TEMPLATE, None, None
    if content.template is None:
        return None, UNREACHABLE, "48小时内没有互动，且没有配置模板消息（SISONG_WECHAT_TEMPLATE_JOB）"
    return None, UNREACHABLE, "对方拒收模板消息，48小时内也没有互动"


# -- the engine ----------------------------------------------------------------------------------


class Pusher:
    """This process's sender: a drain loop, a thread pool, the rate gate, the pause after 45009."""

    def __init__(self, services: "Services") -> None:
        self.services = services
        settings = services.settings
        self.threads = settings.push_threads
        self.lease = settings.push_lease
        self.rate = settings.push_rate
        self.dedupe_window = settings.push_dedupe_window
        self.dead_after = settings.push_heartbeat_timeout
        # A row stays ``sending`` for at most two attempts of one call (and a back-off between).
        self.sending_lease = settings.api_timeout * 2 + settings.api_retry_wait + 2.0
        self.owner = pushes.new_owner()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._draining = threading.Lock()
        self._stop = threading.Event()
        self._paused_until = 0.0  # time.monotonic(); every thread waits until then (WeChat busy)
        self._quota_until: dict[str, float] = {}  # channel → time.monotonic() its daily quota is back
        self._busy_streak = 0
        self._done: list[pushes.Completion] = []
        self._done_lock = threading.Lock()
        self._content_cache: dict[tuple[str, int], tuple[float, Content | None]] = {}
        self.sent = 0  # calls WeChat accepted in this process (for the bench and logs)
        services.wechat.widen_pool(self.threads + 2)
        self.db = _engine_holder(services, self.threads)
        self._permits = 0  # sends taken from the global rate and not used yet (see _permit)
        self._permits_at = 0.0
        self._permit_lock = threading.Lock()
        self._chunk = max(1, min(self.threads, int(self._per_second() // 20)))

    # -- starting ----------------------------------------------------------------------------

    def kick(self) -> bool:
        """Drain in a background thread unless this process is draining already; True if started."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._background, name="sisong-push", daemon=True)
            self._thread.start()
            return True

    def _background(self) -> None:
        try:
            self.drain()
        except Exception:  # noqa: BLE001 - the sweeper kicks again; rows are safe in the database
            log.exception("push drain failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self.db is not self.services.db:
            self.db.engine.dispose()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- the sweeper's part ------------------------------------------------------------------

    def sweep(self) -> dict[str, int]:
        """Requeue dead workers' rows, announce finished pushes, kick the drain if rows are due."""
        recovered = self._recover()
        finished = self.finish_pushes()
        receipts = pushes.apply_early_receipts(self.services.db)
        kicked = 0
        if not self.running and pushes.due(self.db):
            kicked = int(self.kick())
        if recovered:
            log.warning("push rows of a lost sender recovered", extra={
                "requeued": recovered.requeued, "resend": recovered.resend, "unconfirmed": recovered.unconfirmed})
        return {"push_requeued": recovered.requeued + recovered.resend, "push_unconfirmed": recovered.unconfirmed,
                "pushes_finished": finished, "push_kicked": kicked, "push_receipts_applied": receipts}

    def _recover(self) -> pushes.Recovered:
        return pushes.recover_stale(self.db, self.dedupe_window, self._template_possible(),
                                    dead_after=self.dead_after)

    @staticmethod
    def _template_possible() -> bool:
        """A ``sending`` template row had a template when it was begun (whichever purpose's): it may always
        go out again with its ``client_msg_id`` within the dedupe window."""
        return True

    # -- draining ----------------------------------------------------------------------------

    def drain(self, *, wait_for: set[int] | None = None, deadline: float | None = None,
              on_tick: Callable[[], None] | None = None) -> int:
        """Send due rows until none is left; returns rows this call handled.

        With ``wait_for`` (push ids) it keeps going until those pushes have no
        row in flight: through back-offs (sleeping until they end) and a dead
        worker's leases (recovering them when they run out), but not through
        a wait of more than half an hour (a used-up daily quota): then it
        returns with those rows pending, for the sweeper to send when due. ``on_tick`` runs
        about every 0.2 s (the CLI's progress bar). One drain per process at a
        time: a second caller waits for the first, then drains what is left.
        """
        with self._draining:
            return self._drain(wait_for, deadline, on_tick)

    def _drain(self, wait_for: set[int] | None, deadline: float | None,
               on_tick: Callable[[], None] | None) -> int:
        self._stop.clear()
        self._recover()
        limit = self._outstanding()
        holding = [0]  # rows claimed and not yet settled by a thread
        cond = threading.Condition()
        handled = 0
        last_tick = 0.0

        def release(count: int, _: Future[None]) -> None:
            with cond:
                holding[0] -= count
                cond.notify_all()

        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(beating,), name="sisong-push-heartbeat", daemon=True)
        beat.start()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="sisong-push-send") as pool:
            try:
                while not self._stop.is_set():
                    now_mono = time.monotonic()
                    if on_tick is not None and now_mono - last_tick >= 0.2:
                        last_tick = now_mono
                        self._flush()
                        on_tick()
                    if deadline is not None and now_mono > deadline:
                        break
                    pause = self._paused_until - now_mono
                    if pause > 0:
                        self._stop.wait(min(pause, 0.5))
                        continue
                    with cond:
                        free = limit - holding[0]
                        if free < min(self.threads, limit):  # wait for room for a whole batch
                            cond.wait(0.05)
                            continue
                    rows = pushes.claim(self.db, self.owner, free, self.lease)
                    if rows:
                        plans = self._plan(rows)
                        for start in range(0, len(plans), CHUNK):
                            chunk = plans[start:start + CHUNK]
                            with cond:
                                holding[0] += len(chunk)
                            pool.submit(self._send_chunk, chunk).add_done_callback(partial(release, len(chunk)))
                            handled += len(chunk)
                        continue
                    with cond:
                        if holding[0]:  # the last rows are still being sent
                            cond.wait(0.05)
                            continue
                    self._flush()
                    self.finish_pushes()
                    if wait_for is None or not pushes.in_flight(self.db, wait_for):
                        break  # rows on a back-off are kicked again by the sweeper when due
                    if pushes.only_waiting_past(self.db, wait_for, utcnow() + timedelta(seconds=BACKOFF_MAX)):
                        break  # e.g. the day's quota is used up: the sweeper sends them when due
                    # Waiting for our pushes: a back-off to sit out, or a dead worker's lease to run out.
                    self._recover()
                    self._stop.wait(self._sleep_until_due())
            finally:
                pool.shutdown(wait=True)
                beating.set()
                beat.join()
                self._flush()
                try:
                    pushes.sign_off(self.db, self.owner)
                except SQLAlchemyError:
                    log.warning("push sender not signed off (database); its heartbeat runs out", exc_info=True)
                try:
                    self.finish_pushes()
                except SQLAlchemyError:
                    log.warning("push results not announced yet (database)", exc_info=True)
                if on_tick is not None:
                    on_tick()
        return handled

    def _beat(self, stopping: threading.Event) -> None:
        """Once a second while draining: this sender is alive (its rows are not a dead worker's)."""
        while True:
            try:
                pushes.heartbeat(self.db, self.owner)
            except SQLAlchemyError:
                log.warning("push heartbeat not written (database)")
            if stopping.wait(1.0):
                return

    def _per_second(self) -> float:
        from storage.ratelimit import _parse_rate

        item = _parse_rate(self.rate)
        return float(item.amount) / float(item.get_expiry())

    def _outstanding(self) -> int:
        """Rows held at once: two chunks per thread (claims and their follower look-ups are per batch, and
        at 20,000 rows their cost counts), but no more than the rate sends in two seconds (other workers
        share the rest) or in half a lease."""
        per_second = self._per_second()
        by_rate = int(min(per_second * 2, per_second * self.lease / 2))
        return max(1, min(2 * CHUNK * self.threads, by_rate))

    def _sleep_until_due(self) -> float:
        upcoming = pushes.next_due_at(self.db)
        if upcoming is None:
            return 0.2
        return max(0.05, min(1.0, (upcoming - utcnow()).total_seconds()))

    # -- one batch ---------------------------------------------------------------------------

    def _plan(self, rows: list[pushes.ClaimedRow]) -> list[tuple[pushes.ClaimedRow, Recipient | None, Content | None]]:
        """The follower facts and the content for each claimed row (two reads per batch; contents cached)."""
        facts, opted = pushes.recipient_facts(self.db, rows)
        kinds: dict[str, set[int]] = {}
        for row in rows:
            kinds.setdefault(row.kind, set()).add(row.ref_id)
        contents = self._contents(kinds)
        plans = []
        for row in rows:
            fact = facts.get(row.openid)
            who = None if fact is None else Recipient(
                bool(fact[0]), fact[1], fact[2], (row.household_id or 0, row.kind) in opted)
            plans.append((row, who, contents.get((row.kind, row.ref_id))))
        return plans

    def _contents(self, kinds: dict[str, set[int]]) -> dict[tuple[str, int], Content | None]:
        """Contents by (kind, ref), cached for 2 s: a posting closed mid-push stops within seconds."""
        now = time.monotonic()
        out: dict[tuple[str, int], Content | None] = {}
        for kind, refs in kinds.items():
            missing = {ref for ref in refs if now - self._content_cache.get((kind, ref), (-99.0, None))[0] > 2.0}
            if missing:
                purpose = purpose_of(kind)
                fresh: dict[int, Content | None] = {}
                if purpose is not None:
                    with self.services.db.session() as session:
                        fresh = purpose.contents(self.services, session, missing)
                for ref in missing:
                    self._content_cache[(kind, ref)] = (now, fresh.get(ref))
            for ref in refs:
                out[(kind, ref)] = self._content_cache[(kind, ref)][1]
        return out

    # -- one chunk of rows (one thread) -----------------------------------------------------------

    def _send_chunk(self, plans: list[tuple[pushes.ClaimedRow, Recipient | None, Content | None]]) -> None:
        try:
            self._send(plans)
        except SQLAlchemyError as exc:  # the rows keep their claims or sending marks: the sweeper settles them
            if is_outage(exc):
                self.services.db.breaker.trip(exc)
            log.warning("push rows left to the sweeper (database %s)", type(exc).__name__)
        except Exception:  # noqa: BLE001 - a bug must not stop the other rows
            log.exception("push rows failed unexpectedly; left to the sweeper")

    def _send(self, plans: list[tuple[pushes.ClaimedRow, Recipient | None, Content | None]]) -> None:
        """Decide each row's channel, take the permits, mark the rows ``sending``, call WeChat one by one.

        Template rows of the chunk are marked in one statement (a mark whose
        call never happened is harmless for them, see ``begin_send``); a
        customer-service row is marked alone right before its call.
        """
        now = utcnow()
        ready: list[tuple[pushes.ClaimedRow, str, Content]] = []
        for row, who, content in plans:
            channel, status, reason = choose_channel(row, who, content, now, self.dedupe_window)
            if channel is None:
                self._settle(row, status or SKIPPED, error=reason)
            elif self._night(row, now):
                continue
            elif not self._held(row, channel):
                assert content is not None
                ready.append((row, channel, content))
        if not ready or not self._permit(len(ready)):
            return  # stopping: the claims run out and the rows go back to pending
        ready = [(row, channel, content) for row, channel, content in ready if not self._held(row, channel)]
        templates = [pushes.Start(row.id, TEMPLATE, self._cmid(row)) for row, channel, _ in ready
                     if channel == TEMPLATE]
        # The marks must outlast every call of the chunk, customer-service ones included, made one by one.
        started = self._begin(templates, calls=len(ready)) if templates else set()
        for row, channel, content in ready:
            if channel == CUSTOM:
                if not self._begin([pushes.Start(row.id, CUSTOM)]):
                    log.info("push row taken by another sender before its call")
                    continue
            elif row.id not in started:
                log.info("push row taken by another sender before its call")
                continue
            if self._held(row, channel):  # another thread met 45009 / -1 meanwhile: marked, not called
                continue
            self._call(row, channel, content, fallback=True)

    def _night(self, row: pushes.ClaimedRow, now: datetime) -> bool:
        """A quiet purpose's row in SISONG_QUIET_HOURS: back, uncounted, until they end."""
        if not getattr(purpose_of(row.kind), "quiet", False):
            return False
        from storage.clock import quiet_until

        settings = self.services.settings
        until = quiet_until(now, settings.quiet_hours, settings.timezone)
        if until is None:
            return False
        self._back_off(row, None, "夜里不打扰，早上再发", count=False, seconds=(until - now).total_seconds() + 1)
        return True

    def _held(self, row: pushes.ClaimedRow, channel: str) -> bool:
        """Put the row back, uncounted, while the account is paused or the channel's quota is used up."""
        now = time.monotonic()
        if self._quota_until.get(channel, 0.0) > now:
            self._back_off(row, QUOTA, "今天的微信发送额度已用完，明天0点后自动接着发", count=False,
                           seconds=self._quota_until[channel] - now)
            return True
        if self._paused_until > now:
            self._back_off(row, None, "微信繁忙，暂停发送", count=False)
            return True
        return False

    @staticmethod
    def _cmid(row: pushes.ClaimedRow) -> str:
        return row.client_msg_id or pushes.client_msg_id(row.id, row.kind, row.ref_id)

    def _begin(self, starts: list[pushes.Start], *, continuing: bool = False, calls: int = 1) -> set[int]:
        """Commit the ``sending`` marks with the outcomes waiting to be written (kept if this fails).

        The sending lease covers every call still to be made after the marks (``calls``), one after another."""
        done = self._take_done()
        try:
            return pushes.begin_send(self.db, starts, self.owner, self.sending_lease * max(calls, len(starts)),
                                     done, continuing=continuing)
        except BaseException:
            with self._done_lock:
                self._done = done + self._done
            raise

    def _call(self, row: pushes.ClaimedRow, channel: str, content: Content, *, fallback: bool) -> None:
        """The HTTP call of a row already marked ``sending``, and its outcome queued."""
        wechat = self.services.wechat
        try:
            if channel == CUSTOM:
                wechat.send_text(row.openid, content.text, retry_transient=False, retry_uncertain=False)
                msgid = None
            else:
                assert content.template is not None
                template_id, data = content.template
                answer = wechat.send_template_message(row.openid, template_id, data, url=content.url,
                                                      client_msg_id=self._cmid(row), retry_transient=False)
                msgid = str(answer.get("msgid")) if isinstance(answer, dict) and answer.get("msgid") else None
        except WeChatAPIError as exc:
            self._failed(row, channel, content, exc, fallback)
            return
        self._busy_streak = 0
        self.sent += 1
        self._settle(row, SENT, msgid=msgid, sent_at=utcnow())

    def _failed(self, row: pushes.ClaimedRow, channel: str, content: Content, exc: WeChatAPIError,
                fallback: bool) -> None:
        code = exc.errcode
        if exc.maybe_delivered:
            if channel == TEMPLATE and self._resend_possible(row):
                # WeChat dedupes on client_msg_id: the same id again shortly is safe and settles it.
                self._back_off(row, code, "超时，稍后用同一编号重发", seconds=2.0, count=False, in_doubt=True)
            else:
                self._settle(row, UNCONFIRMED, errcode=code, error="微信没有答复（超时），不知道是否已发出，不再重发")
            return
        if code in OUT_OF_WINDOW and channel == CUSTOM:
            if fallback and content.template is not None:
                # Outside the window after all: the same row, already `sending`, as a template.
                if self._begin([pushes.Start(row.id, TEMPLATE, self._cmid(row))], continuing=True):
                    self._call(row, TEMPLATE, content, fallback=False)
                return
            self._settle(row, UNREACHABLE, errcode=code, error="不在48小时客服消息时限内，且没有可用的模板消息")
            return
        if code == QUOTA:
            self._quota_used_up(channel)
            self._held(row, channel)
            return
        if code == BUSY:
            self._pause(code)
            self._back_off(row, code, f"微信繁忙（{code}），稍后再发")
            return
        if code is None or code in TOKEN_ERRORS:
            self._back_off(row, code, f"未能连上微信（{exc.errmsg or code}），稍后再发")
            return
        reason = exc.unreachable_reason
        if reason:
            self._mark_follower(row.openid, reason)
        labels = {43004: "对方已取消关注（43004）", 43101: "对方拒收消息（43101）",
                  43116: "模板已被封禁（43116）", 40037: "模板编号不对（40037）", 47003: "模板字段不合规（47003）"}
        self._settle(row, FAILED, errcode=code, error=labels.get(code or 0, str(exc)[:200]))

    def _resend_possible(self, row: pushes.ClaimedRow) -> bool:
        first = row.first_sent_at or utcnow()
        return (self.dedupe_window > 0 and row.attempts + 1 < pushes.MAX_ATTEMPTS
                and utcnow() - first < timedelta(seconds=self.dedupe_window))

    # -- outcomes ----------------------------------------------------------------------------

    def _settle(self, row: pushes.ClaimedRow, status: str, *, errcode: int | None = None, error: str | None = None,
                msgid: str | None = None, sent_at: datetime | None = None) -> None:
        with self._done_lock:
            self._done.append(pushes.Completion(row.id, self.owner, status, errcode, error, msgid, sent_at))

    def _back_off(self, row: pushes.ClaimedRow, errcode: int | None, reason: str, *, seconds: float | None = None,
                  count: bool = True, in_doubt: bool = False) -> None:
        """Back to ``pending`` until a back-off ends; given up after MAX_BACKOFFS counted ones (hours by then).

        ``in_doubt``: this attempt may have reached WeChat (a resend must reuse
        its ``client_msg_id`` within the dedupe window). Otherwise WeChat said
        nothing was sent, and unless an earlier attempt is in doubt (the row
        came with an id) the row returns as if never tried.
        """
        if count and row.backoffs + 1 >= pushes.MAX_BACKOFFS:
            self._settle(row, FAILED, errcode=errcode, error=f"多次重试仍失败：{reason}")
            return
        if seconds is None:
            seconds = min(BACKOFF_MAX, self.services.settings.push_backoff * 2 ** row.backoffs)
            seconds = max(seconds, self._paused_until - time.monotonic())
        with self._done_lock:
            self._done.append(pushes.Completion(
                row.id, self.owner, PENDING, errcode, reason, not_before=utcnow() + timedelta(seconds=seconds),
                counted=count, forget_id=not in_doubt and row.client_msg_id is None))

    def _take_done(self) -> list[pushes.Completion]:
        with self._done_lock:
            done, self._done = self._done, []
        return done

    def _flush(self) -> None:
        done = self._take_done()
        if done:
            try:
                pushes.complete(self.db, done)
            except SQLAlchemyError:
                with self._done_lock:  # keep them for the next commit
                    self._done = done + self._done
                raise

    def _quota_used_up(self, channel: str) -> None:
        """45009 on ``channel``: its rows wait for 00:00 Beijing time (plus a minute for clocks)."""
        from storage.clock import next_midnight

        seconds = (next_midnight(utcnow()) - utcnow()).total_seconds() + 60.0
        until = time.monotonic() + seconds
        if until > self._quota_until.get(channel, 0.0) + 1.0:
            self._quota_until[channel] = until
            log.warning("WeChat's daily quota for %s messages is used up: they wait %.0f s, until 00:00 Beijing "
                        "time", channel, seconds)

    def _pause(self, errcode: int | None) -> None:
        """-1: every thread of this process waits; the wait doubles while WeChat keeps saying it."""
        self._busy_streak += 1
        seconds = min(BACKOFF_MAX, self.services.settings.push_backoff * 2 ** (self._busy_streak - 1))
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
            log.warning("WeChat busy or quota used up (%s): pushes paused for %.0f s", errcode, seconds)

    def _permit(self, count: int = 1) -> bool:
        """``count`` sends from the global rate (see ``_permit_one``); False only when stopping."""
        return all(self._permit_one() for _ in range(count))

    def _permit_one(self) -> bool:
        """One send from the global rate (Redis across workers); waits, and gives up only when stopping.

        At high rates the process takes permits a few at a time (a twentieth of
        a second's worth, at most one per thread) to spare Redis a round trip
        per send; permits not used within 50 ms are dropped, so the window
        counted in Redis is never more than 50 ms ahead of the sends.
        """
        limiter = self.services.limiter
        while not self._stop.is_set():
            with self._permit_lock:
                now = time.monotonic()
                if self._permits > 0 and now - self._permits_at < 0.05:
                    self._permits -= 1
                    return True
                self._permits = 0
                if self._chunk > 1 and limiter.allow(self.rate, RATE_KEY, cost=self._chunk):
                    self._permits, self._permits_at = self._chunk - 1, now
                    return True
                if limiter.allow(self.rate, RATE_KEY):
                    return True
                wait = limiter.retry_after(self.rate, RATE_KEY)
            self._stop.wait(min(max(wait, 0.005), 0.5))
        return False

    def _mark_follower(self, openid: str, reason: str) -> None:
        from storage import followers

        try:
            with self.services.db.session() as session:
                followers.mark_unreachable(session, openid, reason)
        except SQLAlchemyError:
            log.warning("follower %s not marked %s", short_openid(openid), reason)

    # -- results -----------------------------------------------------------------------------

    def finish_pushes(self) -> int:
        """Announce each push whose rows are all settled, exactly once (a row lock decides who)."""
        services = self.services
        announced = 0
        with services.db.session() as session:
            ready = pushes.finishable(session)
        for push_id in ready:
            notices = []
            with services.db.session() as session:
                if not pushes.mark_finished(session, push_id):
                    continue
                progress = pushes.progress(session, push_id)
                purpose = purpose_of(progress.kind) if progress is not None else None
                if purpose is not None:
                    notices.append(purpose.result_notice(services, session, push_id))
            for notice in notices:
                if notice is not None:
                    notice.dispatch(services)
            announced += 1
            log.info("push finished", extra={"push": push_id})
        return announced


@dataclass
class _EngineHolder:
    """What ``storage.pushes``' row statements need: an engine (they never open ORM sessions)."""

    engine: Any


def _engine_holder(services: "Services", threads: int) -> Any:
    """The database the sending threads use: on PostgreSQL a pool of their own (one connection per
    thread, no ping before each checkout, autocommit: ``storage.pushes``' row statements are each one
    transaction, and ``recover_stale``'s three are each correct alone); on SQLite the shared engine, whose in-process writer lock
    must be the one every writer of this process takes (``storage.db``)."""
    db = services.db
    if db.is_sqlite:
        return db
    from storage.db import make_engine

    return _EngineHolder(make_engine(db.url, pool_timeout=30.0, pool_size=threads + 4, max_overflow=4,
                                     pre_ping=False, autocommit=True))


__all__ = ["Content", "PURPOSES", "Purpose", "Pusher", "Recipient", "choose_channel", "purpose_of", "register"]
