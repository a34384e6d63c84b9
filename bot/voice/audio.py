"""Decoding a WeChat voice clip (AMR-NB, 8 kHz) to what recognisers take: 16 kHz mono PCM.

PyAV does the decoding: its wheel bundles FFmpeg with the AMR-NB decoder, so
no system ffmpeg is needed and nothing about the codec is ours. What is ours is
the judgement around it: a clip longer than the limit is refused before it is
decoded in full, and one with no voice in it is told apart from speech before
an engine (and a cloud bill) sees it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
# A frame of 30 ms counts as voiced above this level (dBFS); a phone held to the mouth speaks at -30..-10.
VOICED_DBFS = -45.0
# Less voiced audio than this is silence (a press on the talk key without speaking, a pocket).
MIN_VOICED_SECONDS = 0.25


class AudioError(Exception):
    """The clip cannot be decoded (corrupt, truncated, not audio); ``str`` says why, for the log."""


class TooLong(AudioError):
    """The clip runs past the limit; ``seconds`` is how far decoding got."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"clip longer than the limit ({seconds:.1f}s decoded)")
        self.seconds = seconds


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 in [-1, 1], mono, SAMPLE_RATE
    seconds: float

    def voiced_seconds(self) -> float:
        """How much of the clip is louder than a quiet room, in 30 ms frames."""
        frame = int(SAMPLE_RATE * 0.03)
        usable = len(self.samples) // frame * frame
        if usable == 0:
            return 0.0
        frames = self.samples[:usable].reshape(-1, frame).astype(np.float64)
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        dbfs = 20 * np.log10(np.maximum(rms, 1e-10))
        return float(np.count_nonzero(dbfs > VOICED_DBFS)) * 0.03

    @property
    def silent(self) -> bool:
        return self.voiced_seconds() < MIN_VOICED_SECONDS

    def pcm16(self) -> bytes:
        """Little-endian signed 16-bit PCM, for engines that take raw PCM (Tencent Cloud)."""
        return (np.clip(self.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def decode(data: bytes, max_seconds: float) -> Audio:
    """Decode any clip FFmpeg knows (WeChat sends AMR-NB) to 16 kHz mono float32.

    Raises :class:`TooLong` as soon as more than ``max_seconds`` have been
    decoded, and :class:`AudioError` for anything that is not decodable audio.
    """
    import av

    if not data:
        raise AudioError("empty clip")
    chunks: list[np.ndarray] = []
    decoded = 0
    limit = int(max_seconds * SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    decoded += len(chunk)
                if decoded > limit:
                    raise TooLong(decoded / SAMPLE_RATE)
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                decoded += len(chunk)
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioError(f"{type(exc).__name__}: {exc}") from None
    if decoded > limit:
        raise TooLong(decoded / SAMPLE_RATE)
    if decoded == 0:
        raise AudioError("no samples")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    return Audio(samples=samples, seconds=len(samples) / SAMPLE_RATE)


def encode_amr(samples: np.ndarray, rate: int) -> bytes:
    """Mono float32 samples at ``rate`` -> an AMR-NB file (8 kHz, 12.2 kbit/s), as WeChat stores voice.

    PyAV's FFmpeg carries the OpenCORE AMR-NB encoder; the tests and the bench
    make their clips with it, so what they decode is a real AMR stream.
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="amr") as container:
        stream = container.add_stream("libopencore_amrnb", rate=8000, layout="mono")
        stream.bit_rate = 12200
        resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        frame = av.AudioFrame.from_ndarray((pcm * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = rate
        for out in (*resampler.resample(frame), *resampler.resample(None)):
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
