"""Voice: decoding cost, and with a speech model its speed and accuracy.

    python bench/voice.py [--model-dir DIR] [--clips DIR] [--repeat 20] [--json]

Always: the time PyAV takes to decode AMR-NB (8 kHz, as WeChat stores voice)
to 16 kHz PCM, in milliseconds per second of audio, for clips of 5, 15, 30
and 60 seconds and for the committed speech clips.

With ``--model-dir`` (or SISONG_ASR_MODEL_DIR): the local engine's load time,
its real-time factor (seconds of computing per second of audio, one thread
unless SISONG_ASR_THREADS says otherwise) and its character error rate on the
clips in ``--clips`` (default tests/data/voice: ``<name>.amr`` files and a
``references.tsv`` of ``name<TAB>what is said``). Those default clips are
espeak-ng's synthetic Mandarin, not households' 西南官话: the figure says the
model and the code work, not how they do on real dialect speech. Point
``--clips`` at real recordings with their transcripts for that. Nothing in
the code is tuned on these clips.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bot.voice.audio import SAMPLE_RATE, decode, encode_amr  # noqa: E402
from bot.voice.evaluation import cer, corpus_cer  # noqa: E402

DEFAULT_CLIPS = ROOT / "tests" / "data" / "voice"


def load_clips(directory: Path) -> list[tuple[str, bytes, str]]:
    clips = []
    for line in (directory / "references.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, text = line.split("\t", 1)
            clips.append((name, (directory / f"{name}.amr").read_bytes(), text.strip()))
    return clips


def speechlike(seconds: float) -> bytes:
    """Noise shaped like speech (syllable-rate bursts), so the AMR encoder works as hard as on a voice."""
    rng = np.random.default_rng(int(seconds))
    n = int(seconds * SAMPLE_RATE)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / SAMPLE_RATE)
    return encode_amr((rng.standard_normal(n) * 0.1 * envelope).astype(np.float32), SAMPLE_RATE)


def bench_decode(clips: list[tuple[str, bytes, str]], repeat: int) -> list[dict[str, object]]:
    rows = []
    cases = [(f"{s}s speech-like", speechlike(s)) for s in (5, 15, 30, 60)]
    cases += [(f"{name} (espeak-ng)", clip) for name, clip, _ in clips]
    for label, clip in cases:
        decode(clip, 120)  # warm up
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            audio = decode(clip, 120)
            times.append(time.perf_counter() - started)
        median, best = float(np.median(times)), float(min(times))
        rows.append({"clip": label, "bytes": len(clip), "seconds": round(audio.seconds, 2),
                     "decode_ms": round(median * 1000, 2), "best_ms": round(best * 1000, 2),
                     "ms_per_audio_second": round(median * 1000 / audio.seconds, 3),
                     "best_ms_per_audio_second": round(best * 1000 / audio.seconds, 3)})
    return rows


def bench_model(model_dir: str, clips: list[tuple[str, bytes, str]]) -> dict[str, object]:
    from bot.voice.engines import LocalEngine

    started = time.perf_counter()
    engine = LocalEngine(model_dir, os.environ.get("SISONG_ASR_MODEL_TYPE", "auto"),
                         int(os.environ.get("SISONG_ASR_THREADS", "1")))
    load_s = time.perf_counter() - started
    engine.transcribe(decode(clips[0][1], 120))  # warm up
    per_clip, pairs, audio_s, compute_s = [], [], 0.0, 0.0
    for name, clip, reference in clips:
        audio = decode(clip, 120)
        started = time.perf_counter()
        text = engine.transcribe(audio).text
        took = time.perf_counter() - started
        audio_s += audio.seconds
        compute_s += took
        pairs.append((reference, text))
        per_clip.append({"clip": name, "reference": reference, "heard": text, "cer": round(cer(reference, text), 3),
                         "rtf": round(took / audio.seconds, 3)})
    return {"model": engine.model_path, "family": engine.model_type, "load_s": round(load_s, 2),
            "rtf": round(compute_s / audio_s, 3), "cer": round(corpus_cer(pairs), 3), "clips": per_clip}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=os.environ.get("SISONG_ASR_MODEL_DIR"))
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    clips = load_clips(args.clips)
    result: dict[str, object] = {"decode": bench_decode(clips, args.repeat)}
    if args.model_dir:
        result["model"] = bench_model(args.model_dir, clips)
    else:
        result["model"] = "skipped: no --model-dir / SISONG_ASR_MODEL_DIR (docs/voice.md says which models to get)"
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print("decode: median and best of --repeat runs (the best is the cost on an idle core)")
    print(f"{'clip':<24}{'bytes':>8}{'audio s':>9}{'median ms':>11}{'best ms':>9}{'ms/audio s':>12}{'best':>8}")
    for row in result["decode"]:  # type: ignore[union-attr]
        print(f"{row['clip']:<24}{row['bytes']:>8}{row['seconds']:>9}{row['decode_ms']:>11}{row['best_ms']:>9}"
              f"{row['ms_per_audio_second']:>12}{row['best_ms_per_audio_second']:>8}")
    model = result["model"]
    if isinstance(model, str):
        print(f"\nmodel: {model}")
    else:
        print(f"\nmodel {model['model']} ({model['family']}): load {model['load_s']} s, "
              f"RTF {model['rtf']}, CER {model['cer']}")
        for row in model["clips"]:
            print(f"  {row['clip']:<10} CER {row['cer']:<6} RTF {row['rtf']:<6} {row['reference']} -> {row['heard']}")


if __name__ == "__main__":
    main()
