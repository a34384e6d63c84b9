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
by accident) or of another (the same words asked of another handbook were tuned on), word for word or
nearly (another particle, 咋个办 for 咋办, 好多 for 多少) — was looked at while tuning:
:func:`clean_held_out` leaves such questions out of the held-out figures, and the bench says how many
it left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
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
# Ways of saying the same thing that make two questions one (longest first).
_SAME = (("咋个办", "咋办"), ("咋个整", "咋办"), ("咋整", "咋办"), ("怎么办", "咋办"), ("咋个", "咋"), ("怎么", "咋"),
         ("啥子", "啥"), ("什么", "啥"), ("些啥", "啥"), ("好多", "多少"), ("好久", "多久"), ("哪个", "谁"),
         ("没得", "没有"), ("有没有", "有"), ("能不能", "能"), ("可不可以", "能"), ("可以", "能"), ("哪里", "哪"),
         ("哪儿", "哪"), ("哪切", "哪"))
NEAR = 0.85  # difflib ratio from which two questions' keys count as the same question


def question_key(text: str) -> str:
    """A question's words without spaces, punctuation and the variants in _SAME: what makes two
    questions the same."""
    key = _NOISE.sub("", text)
    for variant, common in _SAME:
        key = key.replace(variant, common)
    return key


def near_copy(key: str, others: Iterable[str]) -> bool:
    """True when ``key`` is one of ``others`` or differs from one by about a character in seven."""
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(key)
    for other in others:
        if other == key:
            return True
        if abs(len(other) - len(key)) > min(len(other), len(key)) * 2 * (1 / NEAR - 1):
            continue  # even all of the shorter one inside the longer would stay under NEAR
        matcher.set_seq1(other)
        if matcher.real_quick_ratio() >= NEAR and matcher.quick_ratio() >= NEAR and matcher.ratio() >= NEAR:
            return True
    return False


@lru_cache(maxsize=1)
def tuned_keys() -> frozenset[str]:
    """The keys of every question of every tuning split of every shipped handbook."""
    keys: set[str] = set()
    for handbook in HANDBOOKS:
        for item in load_items(handbook.questions):
            if item.split not in HELD_OUT:
                keys.add(question_key(item.question))
    return frozenset(keys)


def clean_held_out(items: Iterable[EvalItem]) -> tuple[list[EvalItem], list[EvalItem]]:
    """(held-out questions never seen while tuning, held-out questions a tuning split has, nearly)."""
    clean, seen = [], []
    tuned = tuned_keys()
    for item in items:
        if item.split in HELD_OUT:
            (seen if near_copy(question_key(item.question), tuned) else clean).append(item)
    return clean, seen
