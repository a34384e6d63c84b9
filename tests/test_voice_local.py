"""Decoding real AMR speech, the local sherpa-onnx engine, and the voice settings.

The local engine's loading and decoding run for real when a model directory
is given in ``SISONG_TEST_ASR_MODEL_DIR`` (a sherpa-onnx Paraformer, SenseVoice
or Dolphin directory, see docs/voice.md); without one those tests are skipped
and say why. Loading a directory that is not a model is exercised either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, load_settings
from bot.voice.audio import SAMPLE_RATE, AudioError, TooLong, decode, encode_amr
from bot.voice.engines import EngineError, LocalEngine, Transcript, model_type_of
from bot.voice.evaluation import cer, corpus_cer
from bot.voice.service import HEARD, SILENCE, UNCLEAR, VoiceService
from tests.support.voice_clips import (
    ToneRecogniser, committed_speech, corrupt_clip, have_espeak, music_clip, silence_clip, speech, tone,
    tone_clip, truncated,
)

MODEL_DIR = os.environ.get("SISONG_TEST_ASR_MODEL_DIR")
needs_model = pytest.mark.skipif(
    not MODEL_DIR, reason="no speech model: set SISONG_TEST_ASR_MODEL_DIR to a sherpa-onnx model directory "
    "(docs/voice.md lists which); none ships on PyPI and none can be downloaded here",
)


# -- decoding -----------------------------------------------------------------------------


def test_amr_tone_decodes_to_16khz_with_its_length_and_pitch() -> None:
    clip = tone_clip("帮助", seconds=3.0)
    assert clip.startswith(b"#!AMR\n")  # the AMR-NB storage format WeChat serves
    audio = decode(clip, max_seconds=60)
    assert audio.samples.dtype == np.float32 and abs(audio.seconds - 3.0) < 0.05
    assert ToneRecogniser.pitch(audio.samples)[0] == pytest.approx(600, rel=0.01)
    assert not audio.silent and len(audio.pcm16()) == 2 * len(audio.samples)


def test_committed_espeak_speech_decodes_as_voiced_audio() -> None:
    clips = committed_speech()
    assert len(clips) == 4
    for stem, (clip, text) in clips.items():
        audio = decode(clip, max_seconds=60)
        assert 1.5 < audio.seconds < 8 and audio.voiced_seconds() > 1.0, stem
        # Speech is not a tone: the stand-in recogniser must not "hear" it.
        assert ToneRecogniser().phrase(audio.samples) == "", stem


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_fresh_espeak_speech_round_trips_through_amr() -> None:
    audio = decode(speech("低保怎么申请"), max_seconds=60)
    assert audio.seconds > 1.0 and not audio.silent


def test_silence_is_told_from_speech() -> None:
    assert decode(silence_clip(), 60).silent
    assert not decode(music_clip(), 60).silent


@pytest.mark.parametrize("clip", [b"", corrupt_clip(), truncated(tone_clip("帮助", 3.0)), b"not audio" * 100],
                         ids=["empty", "noise", "truncated", "text"])
def test_undecodable_clips_raise_audio_error(clip: bytes) -> None:
    with pytest.raises(AudioError):
        decode(clip, 60)


def test_a_long_clip_is_refused_before_it_is_decoded_in_full() -> None:
    with pytest.raises(TooLong) as caught:
        decode(encode_amr(tone(600, 20.0), SAMPLE_RATE), max_seconds=5)
    assert 5 < caught.value.seconds < 6


# -- the rules every engine is judged by --------------------------------------------------


@pytest.mark.parametrize(
    ("transcript", "kind"),
    [
        (Transcript("低保怎么申请"), HEARD),
        (Transcript(""), UNCLEAR),
        (Transcript("嗯，啊。"), UNCLEAR),
        (Transcript("<|BGM|>"), UNCLEAR),
        (Transcript("低保怎么申请", confidence=0.2), UNCLEAR),
        (Transcript("低保怎么申请", confidence=0.9), HEARD),
        (Transcript("啦啦啦", event="BGM"), UNCLEAR),
    ],
)
def test_what_counts_as_understood(transcript: Transcript, kind: str) -> None:
    service = VoiceService(load_settings(asr_min_confidence=0.5))
    audio = decode(tone_clip("帮助"), 60)
    assert service.judge(transcript, audio).kind == kind


def test_silence_never_reaches_the_engine() -> None:
    service = VoiceService(load_settings())
    recogniser = ToneRecogniser()
    service.use(recogniser)
    assert service.recognise(silence_clip()).kind == SILENCE
    assert recogniser.heard == []


# -- settings -------------------------------------------------------------------------------


def test_engine_choice_follows_settings(tmp_path: Path) -> None:
    assert load_settings().asr_choice == "off"
    assert load_settings(asr_secret_id="AKID", asr_secret_key="k").asr_choice == "tencent"
    assert load_settings(asr_model_dir=str(tmp_path), asr_secret_id="AKID", asr_secret_key="k").asr_choice == "local"
    assert load_settings(asr_engine="off", asr_model_dir=str(tmp_path)).asr_choice == "off"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"asr_engine": "local"}, "SISONG_ASR_MODEL_DIR"),
        ({"asr_engine": "tencent", "asr_secret_id": "AKID"}, "SISONG_ASR_SECRET_ID"),
        ({"asr_model_dir": "/no/such/model"}, "SISONG_ASR_MODEL_DIR"),
        ({"asr_timeout": 0}, "SISONG_ASR_TIMEOUT"),
    ],
)
def test_an_incomplete_engine_setting_stops_the_start(overrides: dict, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert names in str(caught.value)


# -- the local engine ------------------------------------------------------------------------


def test_model_family_is_read_from_the_directory_name(tmp_path: Path) -> None:
    for name, family in [("sherpa-onnx-sense-voice-zh-en-ja-ko-yue-int8-2025-09-09", "sense_voice"),
                         ("sherpa-onnx-dolphin-base-ctc-multi-lang-int8-2025-04-02", "dolphin"),
                         ("sherpa-onnx-paraformer-zh-int8-2025-10-07", "paraformer")]:
        (tmp_path / name).mkdir()
        assert model_type_of(tmp_path / name) == family
    assert model_type_of(tmp_path / "sherpa-onnx-paraformer-zh-int8-2025-10-07", "sense_voice") == "sense_voice"


def test_a_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("sherpa_onnx", reason='sherpa-onnx is not installed (pip install ".[voice]")')
    with pytest.raises(EngineError, match="tokens.txt"):
        LocalEngine(str(tmp_path))
    (tmp_path / "tokens.txt").write_text("<blk> 0\n低 1\n保 2\n", encoding="utf-8")
    with pytest.raises(EngineError, match=r"no \.onnx"):
        LocalEngine(str(tmp_path))
    (tmp_path / "model.int8.onnx").write_bytes(os.urandom(4096))  # sherpa-onnx really tries to load it
    with pytest.raises(EngineError, match="cannot load"):
        LocalEngine(str(tmp_path))


def test_a_broken_model_is_answered_kindly_not_raised(tmp_path: Path) -> None:
    pytest.importorskip("sherpa_onnx", reason='sherpa-onnx is not installed (pip install ".[voice]")')
    service = VoiceService(load_settings(asr_model_dir=str(tmp_path)))
    result = service.recognise(tone_clip("帮助"))
    assert result.kind == "failed" and "tokens.txt" in result.detail


@needs_model
def test_local_model_loads_and_transcribes_speech() -> None:
    assert MODEL_DIR is not None
    engine = LocalEngine(MODEL_DIR)
    texts = {}
    for stem, (clip, reference) in committed_speech().items():
        transcript = engine.transcribe(decode(clip, 60))
        texts[stem] = (reference, transcript.text)
    # espeak-ng's robot voice is hard even for a good model; it must still get most of it.
    scores = [cer(ref, hyp) for ref, hyp in texts.values()]
    assert all(hyp for _, hyp in texts.values()), texts
    assert sum(scores) / len(scores) < 0.6, texts


@needs_model
def test_local_model_through_the_service_rules() -> None:
    assert MODEL_DIR is not None
    service = VoiceService(load_settings(asr_model_dir=MODEL_DIR, asr_timeout=60))
    clip, reference = committed_speech()["dibao"]
    result = service.recognise(clip)
    assert result.kind == HEARD and cer(reference, result.text) < 0.6, result
    assert service.recognise(silence_clip()).kind == SILENCE


def test_cer_counts_edits() -> None:
    assert cer("低保怎么申请", "低保怎么申请。") == 0
    assert cer("低保怎么申请", "底保怎么申请") == pytest.approx(1 / 6)  # a substitution
    assert cer("低保怎么申请", "低保申请") == pytest.approx(2 / 6)  # dropped characters
    assert cer("低保怎么申请", "") == 1
    assert corpus_cer([("低保", "低保"), ("看病能报销多少", "看病报销多少")]) == pytest.approx(1 / 9)


def test_kept_clips_are_deleted_after_the_retention(tmp_path: Path) -> None:
    service = VoiceService(load_settings(voice_dir=str(tmp_path), voice_retention_days=30))
    old = tmp_path / "2000-01-01"
    old.mkdir()
    (old / "7.amr").write_bytes(b"#!AMR\n")
    other = tmp_path / "notes"
    other.mkdir()  # not a day directory: left alone
    kept = service.keep(42, tone_clip("帮助"))
    assert kept is not None and Path(kept).read_bytes() == tone_clip("帮助") and Path(kept).stem == "42"
    assert not old.exists() and other.exists()

