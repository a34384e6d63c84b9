"""The handbooks the project ships, each with its household question set (bench and tests share this list).

- ``qingshan``: the sample handbook (第X章/第X条), knowledge/data/qingshan_handbook.md.
- ``yunxi``: a 政策文件汇编 of eight documents (通知, 实施方案, 办法, 细则, 规程), numbered 一、（一）, no 第X条.
- ``shiqiao``: a 问答 booklet, numbered questions under 一、 headings.
- ``baishui``: a second 政策文件汇编 (eight documents of another county, another order and wording),
  written with its whole question set before any tuning on it; every question is held out.
- ``shimen``: a county 实施细则 in chapters (第一章 …) with 一、（一） sections inside them and no
  第X条, the shape whose sections used to be lost under their chapter; written by another engineer
  and never tuned on, its questions were written before the first run.

Every set marks which questions were tuned on (``dev``, ``tune``, ``tune2``) and which were held
out (``holdout``, ``holdout2``, ``holdout3``, ``heldout``): held-out questions are never looked at
one by one while tuning; their figures are what the quality targets are measured on.

A held-out question whose words also stand in a tuning split — of its own handbook (written twice
by accident) or of another (the same words asked of another handbook were tuned on) — was looked at
while tuning: :func:`clean_held_out` leaves such questions out of the held-out figures, and the bench
says how many it left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from knowledge.evaluation.dataset import EvalItem, load_items

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "knowledge" / "data"
QUESTIONS = ROOT / "tests" / "data"
HELD_OUT = frozenset({"holdout", "holdout2", "holdout3", "heldout"})


@dataclass(frozen=True)
class ShippedHandbook:
    name: str
    files: tuple[Path, ...]
    questions: Path


HANDBOOKS = (
    ShippedHandbook("qingshan", (DATA / "qingshan_handbook.md",), QUESTIONS / "qa_eval.jsonl"),
    ShippedHandbook("yunxi", (DATA / "handbooks" / "yunxi_compilation.md",), QUESTIONS / "qa_eval_yunxi.jsonl"),
    ShippedHandbook("shiqiao", (DATA / "handbooks" / "shiqiao_qa_booklet.md",), QUESTIONS / "qa_eval_shiqiao.jsonl"),
    ShippedHandbook("baishui", (DATA / "handbooks" / "baishui_compilation.md",), QUESTIONS / "qa_eval_baishui.jsonl"),
    ShippedHandbook("shimen", (DATA / "handbooks" / "shimen_medical_rules.md",), QUESTIONS / "qa_eval_shimen.jsonl"),
)


_NOISE = re.compile(r"[\s，,。．.？?！!～~、；;：:\"'“”‘’（）()]")


def question_key(text: str) -> str:
    """A question's words, without spaces and punctuation: what makes two questions the same."""
    return _NOISE.sub("", text)


@lru_cache(maxsize=1)
def tuned_keys() -> frozenset[str]:
    """The words of every question of every tuning split of every shipped handbook."""
    keys: set[str] = set()
    for handbook in HANDBOOKS:
        for item in load_items(handbook.questions):
            if item.split not in HELD_OUT:
                keys.add(question_key(item.question))
    return frozenset(keys)


def clean_held_out(items: Iterable[EvalItem]) -> tuple[list[EvalItem], list[EvalItem]]:
    """(held-out questions never seen while tuning, held-out questions whose words a tuning split has)."""
    clean, seen = [], []
    for item in items:
        if item.split in HELD_OUT:
            (seen if question_key(item.question) in tuned_keys() else clean).append(item)
    return clean, seen
