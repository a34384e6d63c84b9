"""A voice message's way through the task queue: hand-off, download, transcription, answer.

The webhook never waits for a recogniser. The pipeline claims the message's
inbox row as for any message, then :func:`defer` hands the claim (owner and a
lease long enough for the whole job) to the ``transcribe_voice`` task and
answers WeChat ``success`` at once. The row stays ``received`` meanwhile, so
nothing new is needed to make it durable: a retry from WeChat finds the claim
alive and is not answered twice (the inbox dedupes on MsgId), and if the worker
dies mid-job the lease runs out and the sweeper takes the message over like
any other, which hands it to a new task (``SISONG_MAX_ATTEMPTS`` bounds that).

:func:`transcribe` renews the claim, fetches the audio (``media/get``),
recognises it (``bot.voice.service``) and answers through the pipeline's own
unit of work (``Pipeline._answer``) with nobody waiting: the transcript is
routed exactly like typed text and the reply leaves as a customer-service
message starting "您说的是：……"; a failure is routed to ``handlers/voice.py``,
which answers kindly and keeps the message for a cadre.
"""

from __future__ import annotations

import importlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import requests
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from wechatpy import parse_message

from bot.voice.service import CORRUPT, EXPIRED, FAILED, HEARD, UNAVAILABLE, VoiceResult
from bot.wechat_client import WeChatAPIError
from storage import inbox
from storage.models.base import utcnow
from storage.models.messages import FAILED as FAILED_ROW
from storage.models.messages import RECEIVED, MessageLog
from storage.privacy import mask_text, short_openid

if TYPE_CHECKING:
    from bot.pipeline import Delivery
    from bot.services import Services

log = logging.getLogger(__name__)

# WeChat's answers for a media id it does not have (any more): 40007 invalid media_id (temporary media
# expire after 3 days), 46001 media data missing.
MEDIA_GONE = {40007, 46001}
# A 60-second AMR-NB clip is about 100 KB; anything far larger is not a WeChat voice message.
MAX_CLIP_BYTES = 4 * 1024 * 1024


def budget(services: "Services") -> float:
    """Seconds one transcription may hold the claim: the download with its retries, the time limit, a margin."""
    settings = services.settings
    download = settings.api_timeout * (settings.api_retry_attempts + 1)
    return download + settings.asr_timeout + 30.0


def _hold(services: "Services", row_id: int, owner: str, new_owner: str | None = None) -> Any:
    """Move (or renew) the claim of ``row_id`` from ``owner``; the row's payload etc., or None if not ours."""
    values: dict[str, Any] = {"lease_until": utcnow() + timedelta(seconds=budget(services))}
    if new_owner is not None:
        values["owner"] = new_owner
    with services.db.session() as session:
        return session.execute(
            update(MessageLog)
            .where(MessageLog.id == row_id, MessageLog.owner == owner, MessageLog.status == RECEIVED)
            .values(**values)
            .returning(MessageLog.payload, MessageLog.openid)
            .execution_options(synchronize_session=False)
        ).first()


def defer(services: "Services", row_id: int, owner: str, delivery: "Delivery") -> bool:
    """Give a voice message WeChat did not transcribe to the recogniser; False to answer it here instead.

    Called by the pipeline before routing. False when no engine is configured
    (the voice handler asks to type), or when the database would not take the
    hand-off: the message is then routed at once like any other, and the
    pipeline's own handling of a failing database answers it.
    """
    voice = services.queue.voice
    if not voice.configured:
        return False
    task_owner = inbox.new_owner()
    try:
        moved = _hold(services, row_id, owner, task_owner)
    except SQLAlchemyError as exc:
        log.error("voice message not handed to the recogniser: %s", type(exc).__name__)
        return False
    delivery.offer("success")
    if moved is None:  # taken over meanwhile (our lease ran out): the new owner answers it
        log.warning("voice message taken over before its hand-off")
        return True
    services.queue.transcribe_voice(row_id, task_owner)
    return True


def transcribe(services: "Services", row_id: int, owner: str) -> None:
    """The task body: what the follower said, answered through the pipeline. Never raises."""
    started = time.perf_counter()
    try:
        with services.db.bounded():
            held = _hold(services, row_id, owner)
    except SQLAlchemyError as exc:  # the lease runs out and the sweeper gives the message another task
        log.error("voice task could not renew its claim: %s", type(exc).__name__)
        return
    if held is None:
        log.info("voice message already answered or taken over; nothing to do")
        return
    try:
        message = parse_message(held.payload or "")
    except Exception:  # noqa: BLE001 - the payload was parsed once already; a dead letter if not now
        log.exception("voice message payload unreadable")
        try:
            with services.db.bounded(), services.db.session() as session:
                inbox.give_up(session, row_id, owner, "unreadable")
        except SQLAlchemyError as exc:
            log.error("unreadable voice message not recorded: %s", type(exc).__name__)
        return
    openid = str(held.openid or "")
    voice = services.queue.voice
    data = b""
    try:
        data, result = _download(services, str(getattr(message, "media_id", "") or ""))
        if result is None:
            result = voice.recognise(data)
    except Exception as exc:  # a bug here must still answer the follower and keep the message
        log.exception("voice message not transcribed")
        result = VoiceResult(FAILED, detail=f"{type(exc).__name__}: {exc}")
    if data and (result.kind != HEARD or services.settings.keep_voice):
        # A clip that was not understood is the message itself: kept for the cadre who will listen to it.
        result = VoiceResult(result.kind, result.text, result.seconds, result.detail, voice.keep(row_id, data))
    log.info("voice message", extra={"openid": short_openid(openid), "outcome": result.kind,
                                     "seconds": round(result.seconds or 0, 1), "detail": mask_text(result.detail),
                                     "ms": int((time.perf_counter() - started) * 1000)})
    _answer(services, message, row_id, owner, result, started)


def _download(services: "Services", media_id: str) -> tuple[bytes, VoiceResult | None]:
    """The clip's bytes from ``media/get``, or a result saying why there are none."""
    if not media_id:
        return b"", VoiceResult(EXPIRED, detail="no MediaId")
    wechat = services.wechat
    try:
        answer = wechat.call("media/get", lambda: wechat.client.media.download(media_id))
    except WeChatAPIError as exc:
        kind = EXPIRED if exc.errcode in MEDIA_GONE else UNAVAILABLE
        return b"", VoiceResult(kind, detail=str(exc))
    if not isinstance(answer, requests.Response):  # JSON without an errcode: not a voice clip
        return b"", VoiceResult(CORRUPT, detail="media/get answered JSON, not audio")
    data = answer.content
    if len(data) > MAX_CLIP_BYTES:
        return b"", VoiceResult(CORRUPT, detail=f"{len(data)} bytes is not a WeChat voice clip")
    return data, None


def _answer(services: "Services", message: Any, row_id: int, owner: str, result: VoiceResult,
            started: float) -> None:
    """Route what was heard like typed text (or the failure to the voice handler), as a late answer."""
    from bot.pipeline import Delivery, Pipeline
    from bot.router import router

    importlib.import_module("handlers")  # registers every handler on the router (the worker may not have)
    words = result.text if result.heard else None
    try:
        with services.db.bounded():
            if words is not None:  # the message log keeps the words, masked, as for a typed message
                with services.db.session() as session:
                    session.execute(
                        update(MessageLog)
                        .where(MessageLog.id == row_id, MessageLog.owner == owner, MessageLog.status == RECEIVED)
                        .values(text=mask_text(words))
                        .execution_options(synchronize_session=False)
                    )
            Pipeline(services, router).answer_voice(message, row_id, owner, result, Delivery.nobody_waiting(),
                                                    started)
            _keep_words_if_failed(services, row_id, owner, words)
    except Exception:  # the claim's lease runs out and the sweeper answers the message
        log.exception("voice message not answered")


def _keep_words_if_failed(services: "Services", row_id: int, owner: str, words: str | None) -> None:
    """A handler that raised on a late answer: the pipeline settles the row ``failed`` and sends its
    apology (nobody waits on the webhook); the words the follower said go to a cadre here."""
    with services.db.session() as session:
        row = session.execute(
            select(MessageLog.status, MessageLog.openid).where(MessageLog.id == row_id, MessageLog.owner == owner)
        ).first()
    if row is None or row.status != FAILED_ROW:
        return
    if words:
        services.keep_for_cadre(str(row.openid), mask_text(words))
