"""From a clip's bytes to what the follower said, or to the reason we cannot say.

Every way a voice message can go wrong ends as a :class:`VoiceResult` with a
``kind``; ``handlers/voice.py`` turns each kind into a short, kind reply and
keeps the message for a cadre. A result that ``heard`` something is routed
like typed text (``bot.voice.task``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.config import Settings
from bot.voice.audio import Audio, AudioError, TooLong, decode
from bot.voice.engines import Engine, EngineError, EngineSlot, Transcript

log = logging.getLogger(__name__)

# What a voice message came to.
HEARD = "heard"  # words: routed like typed text
OFF = "off"  # no recogniser configured
EXPIRED = "expired"  # WeChat no longer has the audio (kept 3 days) or never had that media id
UNAVAILABLE = "unavailable"  # WeChat would not give the audio now (network, busy)
CORRUPT = "corrupt"  # not decodable audio
TOO_LONG = "too_long"  # past SISONG_ASR_MAX_SECONDS
SILENCE = "silence"  # no voice in it
UNCLEAR = "unclear"  # the engine heard nothing usable: empty, filler, low confidence, music
SLOW = "slow"  # the engine did not finish within SISONG_ASR_TIMEOUT
FAILED = "failed"  # the engine failed (model missing, cloud refused)
KINDS = (HEARD, OFF, EXPIRED, UNAVAILABLE, CORRUPT, TOO_LONG, SILENCE, UNCLEAR, SLOW, FAILED)

# Sounds people make that carry no request; a transcript of only these is "not understood".
_FILLER = re.compile(r"^[\s嗯啊呃哦噢喂唉哎额诶嘛呢吧呀哈嗨，。、！？!?,.…~～]*$")
# How a recogniser may mark non-speech in its text (SenseVoice without ITN, Whisper-style tags).
_TAGS = re.compile(r"<\|[^|>]*\|>|\[(?:music|音乐|noise|噪音)\]", re.IGNORECASE)
_MUSIC_EVENTS = {"bgm", "music", "song"}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # the kept clips' day directories


@dataclass(frozen=True)
class VoiceResult:
    kind: str
    text: str = ""  # what was heard (HEARD only)
    seconds: float | None = None  # the clip's length, when it was decoded
    detail: str = ""  # why, for the log and the cadre's note (never shown to the follower)
    kept: str | None = None  # where the audio was kept, if it was

    @property
    def heard(self) -> bool:
        return self.kind == HEARD

    def echo(self) -> str:
        """The line a reply to a transcribed message starts with, so a household can correct it."""
        return f"您说的是：“{self.text}”\n" if self.heard else ""


class VoiceService:
    """One process's recogniser and its rules: decode, refuse what it cannot hear, transcribe in time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slot = EngineSlot(settings)
        # At most two decodes share the CPU at once (each engine run has its own daemon thread).
        self._running = threading.Semaphore(2)
        self._keep_lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.slot.configured

    def use(self, engine: Engine | None) -> None:
        self.slot.use(engine)

    def recognise(self, data: bytes) -> VoiceResult:
        """What the follower said in ``data`` (any clip FFmpeg decodes), within SISONG_ASR_TIMEOUT."""
        started = time.monotonic()
        try:
            audio = decode(data, self.settings.asr_max_seconds)
        except TooLong as exc:
            return VoiceResult(TOO_LONG, seconds=exc.seconds, detail=str(exc))
        except AudioError as exc:
            return VoiceResult(CORRUPT, detail=str(exc))
        if audio.silent:
            return VoiceResult(SILENCE, seconds=audio.seconds, detail=f"{audio.voiced_seconds():.2f}s voiced")
        remaining = self.settings.asr_timeout - (time.monotonic() - started)
        try:
            transcript = self._transcribe(audio, remaining)
        except concurrent.futures.TimeoutError:
            return VoiceResult(SLOW, seconds=audio.seconds, detail=f"over {self.settings.asr_timeout:g}s")
        except EngineError as exc:
            return VoiceResult(FAILED, seconds=audio.seconds, detail=str(exc))
        return self.judge(transcript, audio)

    def _transcribe(self, audio: Audio, timeout: float) -> Transcript:
        """Run the engine in a daemon thread and stop waiting at ``timeout``.

        A native decode cannot be interrupted; a run past the limit is left to
        finish on its own while the follower is answered. ``_running`` bounds
        how many decodes share the CPU, and waiting for a turn counts against
        the limit too.
        """
        engine = self.slot.get()  # a model loads on first use; the lease allows for it, the limit does not
        deadline = time.monotonic() + timeout
        outcome: dict[str, object] = {}
        done = threading.Event()

        def run() -> None:
            with self._running:
                if time.monotonic() > deadline:
                    outcome["late"] = True
                    done.set()
                    return
                try:
                    outcome["transcript"] = engine.transcribe(audio)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    outcome["error"] = exc
                finally:
                    done.set()

        threading.Thread(target=run, name="asr", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())) or outcome.get("late"):
            raise concurrent.futures.TimeoutError()
        error = outcome.get("error")
        if isinstance(error, EngineError):
            raise error
        if error is not None:  # an engine bug must not cost the message: it is kept for a cadre
            log.error("speech recogniser failed: %s", type(error).__name__, exc_info=error)  # type: ignore[arg-type]
            raise EngineError(f"{type(error).__name__}: {error}")
        return outcome["transcript"]  # type: ignore[return-value]

    def judge(self, transcript: Transcript, audio: Audio) -> VoiceResult:
        """HEARD, or UNCLEAR when the words cannot be trusted enough to act on."""
        text = _TAGS.sub("", transcript.text).strip()
        if (transcript.event or "").lower() in _MUSIC_EVENTS:
            return VoiceResult(UNCLEAR, seconds=audio.seconds, detail=f"music ({transcript.event})")
        if not text or _FILLER.match(text):
            return VoiceResult(UNCLEAR, seconds=audio.seconds, detail="nothing but filler" if text else "empty")
        if transcript.confidence is not None and transcript.confidence < self.settings.asr_min_confidence:
            return VoiceResult(UNCLEAR, seconds=audio.seconds, detail=f"confidence {transcript.confidence:.2f}")
        return VoiceResult(HEARD, text=text, seconds=audio.seconds)

    # -- keeping clips -------------------------------------------------------------------

    def keep(self, row_id: int, data: bytes) -> str | None:
        """Write the clip under SISONG_VOICE_DIR as ``YYYY-MM-DD/<inbox row>.amr``; None if it cannot be.

        Days older than SISONG_VOICE_RETENTION_DAYS are deleted on the way: a
        household's voice is personal data, kept only as long as a cadre needs it.
        """
        now = datetime.now(timezone.utc)
        root = Path(self.settings.voice_path)
        path = root / now.strftime("%Y-%m-%d") / f"{row_id}.amr"
        try:
            with self._keep_lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                self._purge(root, now)
        except OSError as exc:
            log.error("voice clip not kept (%s)", type(exc).__name__)
            return None
        return str(path)

    def _purge(self, root: Path, now: datetime) -> None:
        oldest = (now - timedelta(days=self.settings.voice_retention_days)).strftime("%Y-%m-%d")
        for day in root.iterdir():
            if day.is_dir() and _DAY.fullmatch(day.name) and day.name < oldest:
                for clip in day.glob("*.amr"):
                    clip.unlink(missing_ok=True)
                try:
                    day.rmdir()
                except OSError:  # something else in it: not ours to delete
                    log.warning("voice directory %s not empty after purging its clips", day.name)
