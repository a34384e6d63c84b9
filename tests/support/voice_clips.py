"""Voice clips for the tests and the bench, made here and encoded to AMR-NB like WeChat's.

* ``speech(text)``: Mandarin synthesised by espeak-ng (Debian's ``espeak-ng``);
  ``tests/data/voice/*.amr`` were made once with it (``python -m
  tests.support.voice_clips tests/data/voice``) so that decoding real speech
  is tested where espeak-ng is not installed; ``references.tsv`` beside them
  holds what each clip says (the bench's character error rate).
* ``tone_clip(phrase)``: a pure tone whose pitch stands for a phrase, for
  :class:`ToneRecogniser`, the tests' stand-in for a speech model: it finds the
  dominant frequency of the audio it is given (so the clip really went through
  the AMR encoder, ``media/get`` and the decoder) and answers the phrase.
* ``silence``, ``music`` (a chord that jumps about, no tone ToneRecogniser knows),
  ``corrupt`` (an AMR header and noise) for the failure paths.

Encoding uses PyAV's bundled FFmpeg (it has the OpenCORE AMR-NB encoder).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from bot.voice.audio import SAMPLE_RATE, Audio, encode_amr
from bot.voice.engines import Transcript

DATA = Path(__file__).resolve().parents[1] / "data" / "voice"

# Phrases the tone recogniser knows, by pitch (Hz). Far apart, and clear of AMR's band edges.
PHRASES = {
    400: "底保咋个申请",  # as a recogniser mishears 低保 in 西南官话: a homophone the handbook must tolerate
    600: "帮助",
    800: "我的电话是13812345678，低保啥时候发",
    1000: "嗯",
    1200: "绑定 12345678",
}

# What the committed espeak-ng clips say (file stem -> text).
SPEECH = {
    "dibao": "低保怎么申请",
    "yiliao": "看病能报销多少",
    "zhufang": "房子漏雨了能补钱吗",
    "jiuye": "有没有打工的活",
}


def tone(freq: float, seconds: float, level: float = 0.3, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tone_clip(phrase: str, seconds: float = 2.0) -> bytes:
    (freq,) = [f for f, p in PHRASES.items() if p == phrase]
    return encode_amr(tone(freq, seconds), SAMPLE_RATE)


def silence_clip(seconds: float = 2.0) -> bytes:
    rng = np.random.default_rng(7)
    hiss = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 0.0005).astype(np.float32)  # a quiet room
    return encode_amr(hiss, SAMPLE_RATE)


def music_clip(seconds: float = 3.0) -> bytes:
    """A melody of chords (no single pitch the tone recogniser knows dominates)."""
    notes = [261.6, 329.6, 392.0, 523.3, 440.0, 349.2]
    parts = []
    step = 0.25
    for i in range(int(seconds / step)):
        root = notes[i % len(notes)]
        chord = sum(tone(root * r, step, 0.12) for r in (1.0, 1.26, 1.5))
        parts.append(chord)
    return encode_amr(np.concatenate(parts).astype(np.float32), SAMPLE_RATE)


def corrupt_clip() -> bytes:
    rng = np.random.default_rng(3)
    return b"#!AMR\n" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()


def truncated(clip: bytes) -> bytes:
    return clip[: len(clip) // 3]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speech(text: str, voice: str = "cmn", speed: int = 150) -> bytes:
    """``text`` spoken by espeak-ng, encoded to AMR-NB."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True,
                       capture_output=True, timeout=60)
        with wave.open(str(wav)) as reader:
            rate = reader.getframerate()
            pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return encode_amr(pcm.astype(np.float32) / 32768.0, rate)


def committed_speech() -> dict[str, tuple[bytes, str]]:
    """The committed espeak-ng clips: stem -> (AMR bytes, what it says)."""
    clips = {}
    for line in (DATA / "references.tsv").read_text(encoding="utf-8").splitlines():
        stem, text = line.split("\t", 1)
        clips[stem] = ((DATA / f"{stem}.amr").read_bytes(), text)
    return clips


class ToneRecogniser:
    """Stands in for a speech model: the dominant pitch of the audio names a phrase, else nothing heard.

    ``delay`` makes it slow (the time limit); ``fail`` is an exception it raises (a broken model).
    """

    name = "tone-test"

    def __init__(self, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.heard: list[float] = []  # the clip lengths it was given, in seconds

    @staticmethod
    def pitch(samples: np.ndarray, rate: int = SAMPLE_RATE) -> tuple[float, float]:
        """(dominant frequency, share of the spectrum's energy within 3% of it)."""
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
        freqs = np.fft.rfftfreq(len(samples), 1 / rate)
        peak = float(freqs[int(np.argmax(spectrum[1:])) + 1])
        near = np.abs(freqs - peak) < peak * 0.03
        return peak, float(spectrum[near].sum() / max(spectrum.sum(), 1e-12))

    def phrase(self, samples: np.ndarray, rate: int = SAMPLE_RATE) -> str:
        peak, share = self.pitch(samples, rate)
        for freq, phrase in PHRASES.items():
            if abs(peak - freq) < freq * 0.03 and share > 0.6:
                return phrase
        return ""

    def transcribe(self, audio: Audio) -> Transcript:
        self.heard.append(audio.seconds)
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return Transcript(text=self.phrase(audio.samples))


def write_committed(directory: Path) -> None:
    """Make the committed speech clips (needs espeak-ng)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for stem, text in SPEECH.items():
        (directory / f"{stem}.amr").write_bytes(speech(text))
        lines.append(f"{stem}\t{text}")
    (directory / "references.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_committed(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
