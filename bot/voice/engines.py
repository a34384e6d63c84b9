"""Speech recognisers: a local sherpa-onnx model, or Tencent Cloud's sentence recognition.

Both are optional dependencies (``pip install "sisong[voice]"``) and are
imported only when chosen, so a deployment without voice never loads them.
An engine takes 16 kHz mono audio and returns a :class:`Transcript`; what
counts as "not understood" (empty, filler, low confidence, music) is decided
by the caller (``bot.voice.service``), the same way for every engine.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.config import Settings
from bot.voice.audio import SAMPLE_RATE, Audio

log = logging.getLogger(__name__)


class EngineError(Exception):
    """The engine could not transcribe (not installed, bad model, the cloud refused); the reason is for the log."""


@dataclass(frozen=True)
class Transcript:
    text: str
    # 0..1 when the engine says how sure it is (token probabilities); None when it does not.
    confidence: float | None = None
    # A non-speech event the engine heard instead (SenseVoice: "BGM" for music, "Applause", ...).
    event: str | None = None


class Engine(Protocol):
    name: str

    def transcribe(self, audio: Audio) -> Transcript: ...


# -- local: sherpa-onnx -------------------------------------------------------------


def _model_file(directory: Path) -> Path:
    """The model file: the int8 one when both ship (4x smaller, about as accurate on CPU)."""
    for pattern in ("model.int8.onnx", "*.int8.onnx", "model.onnx", "*.onnx"):
        found = sorted(directory.glob(pattern))
        if found:
            return found[0]
    raise EngineError(f"no .onnx model in {directory}")


def model_type_of(directory: Path, configured: str = "auto") -> str:
    """Which sherpa-onnx family a model directory holds; by SISONG_ASR_MODEL_TYPE, else by its name.

    sherpa-onnx's release directories say what they are
    (``sherpa-onnx-sense-voice-zh-en-ja-ko-yue-...``, ``sherpa-onnx-dolphin-base-ctc-...``,
    ``sherpa-onnx-paraformer-zh-...``); a renamed directory needs the setting.
    """
    if configured != "auto":
        return configured
    name = directory.resolve().name.lower().replace("_", "-")
    if "sense-voice" in name or "sensevoice" in name:
        return "sense_voice"
    if "dolphin" in name:
        return "dolphin"
    return "paraformer"


class LocalEngine:
    """A sherpa-onnx offline recogniser loaded once per process from SISONG_ASR_MODEL_DIR."""

    name = "local"

    def __init__(self, model_dir: str, model_type: str = "auto", threads: int = 1) -> None:
        try:
            import sherpa_onnx
        except ImportError:
            raise EngineError('sherpa-onnx is not installed (pip install "sisong[voice]")') from None
        directory = Path(model_dir)
        tokens = directory / "tokens.txt"
        if not tokens.is_file():
            raise EngineError(f"no tokens.txt in {directory}")
        model = str(_model_file(directory))
        self.model_type = model_type_of(directory, model_type)
        common = {"tokens": str(tokens), "num_threads": threads, "sample_rate": SAMPLE_RATE, "feature_dim": 80}
        try:
            if self.model_type == "sense_voice":
                self.recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
                    model=model, language="zh", use_itn=True, **common)
            elif self.model_type == "dolphin":
                self.recognizer = sherpa_onnx.OfflineRecognizer.from_dolphin_ctc(model=model, **common)
            else:
                self.recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(paraformer=model, **common)
        except (RuntimeError, ValueError, OSError) as exc:  # sherpa-onnx raises RuntimeError on a bad model
            raise EngineError(f"cannot load {model}: {exc}") from None
        self.model_path = model

    def transcribe(self, audio: Audio) -> Transcript:
        stream = self.recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, audio.samples)
        self.recognizer.decode_stream(stream)
        result = stream.result
        confidence = None
        log_probs = list(getattr(result, "ys_log_probs", None) or [])
        if log_probs:
            confidence = float(np.exp(np.mean(log_probs)))
        event = (getattr(result, "event", "") or "").strip("<|>") or None
        if event in ("Speech", "speech"):
            event = None
        return Transcript(text=str(result.text or "").strip(), confidence=confidence, event=event)


# -- cloud: Tencent Cloud sentence recognition ---------------------------------------


class TencentEngine:
    """Tencent Cloud ASR ``SentenceRecognition`` (clips up to 60 s) through its official SDK.

    The audio goes as 16 kHz PCM in the request body; ``16k_zh_dialect`` is the
    engine that understands 西南官话 among its dialects.
    """

    name = "tencent"

    def __init__(self, secret_id: str, secret_key: str, *, region: str, endpoint: str, model: str,
                 timeout: float) -> None:
        try:
            from tencentcloud.asr.v20190614 import asr_client
            from tencentcloud.common import credential
            from tencentcloud.common.profile.client_profile import ClientProfile
            from tencentcloud.common.profile.http_profile import HttpProfile
        except ImportError:
            raise EngineError('the Tencent Cloud SDK is not installed (pip install "sisong[voice]")') from None
        scheme, _, host = endpoint.rpartition("://")
        http = HttpProfile(protocol=scheme or "https", endpoint=host, reqTimeout=max(1, int(timeout + 0.999)))
        self.client = asr_client.AsrClient(credential.Credential(secret_id, secret_key), region,
                                           ClientProfile(httpProfile=http))
        self.model = model

    def transcribe(self, audio: Audio) -> Transcript:
        from tencentcloud.asr.v20190614 import models
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        pcm = audio.pcm16()
        request = models.SentenceRecognitionRequest()
        request.from_json_string(json.dumps({
            "EngSerViceType": self.model, "SourceType": 1, "VoiceFormat": "pcm", "InputSampleRate": SAMPLE_RATE,
            "Data": base64.b64encode(pcm).decode("ascii"), "DataLen": len(pcm),
            "UsrAudioKey": uuid.uuid4().hex, "FilterDirty": 0, "FilterModal": 0, "ConvertNumMode": 1,
        }))
        try:
            response = self.client.SentenceRecognition(request)
        except TencentCloudSDKException as exc:
            raise EngineError(f"Tencent Cloud: {exc.get_code()} {exc.get_message()}") from None
        return Transcript(text=str(response.Result or "").strip())


def build_engine(settings: Settings) -> Engine | None:
    """The engine SISONG_ASR_* choose, loaded now (a local model takes seconds), or None when off."""
    choice = settings.asr_choice
    if choice == "local":
        assert settings.asr_model_dir is not None
        return LocalEngine(settings.asr_model_dir, settings.asr_model_type, settings.asr_threads)
    if choice == "tencent":
        assert settings.asr_secret_id and settings.asr_secret_key
        return TencentEngine(settings.asr_secret_id, settings.asr_secret_key, region=settings.asr_region,
                             endpoint=settings.asr_endpoint, model=settings.asr_tencent_model,
                             timeout=settings.asr_timeout)
    return None


class EngineSlot:
    """One engine per process, built on first use by whoever needs it first (under a lock)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """Whether voice is to be transcribed at all (settings only: loading is the task's job)."""
        return self._engine is not None or self.settings.asr_choice != "off"

    def use(self, engine: Engine | None) -> None:
        """Put an engine in place (the tests' stand-in recogniser, or a preloaded model)."""
        with self._lock:
            self._engine = engine

    def get(self) -> Engine:
        with self._lock:
            if self._engine is None:
                engine = build_engine(self.settings)
                if engine is None:
                    raise EngineError("no speech recogniser configured")
                log.info("speech recogniser ready", extra={"engine": engine.name})
                self._engine = engine
            return self._engine
