"""The evaluation set format: one JSON object per line.

``{"id", "question", "articles": ["第六条"], "facts": ["3.5万元"], "handover": false, "context": "…"}``
``document`` (optional) names the document the cited article must belong to; ``kind`` the kind of
question (amount, when, where, materials, how, eligibility, list, table, followup, unanswerable).
``split`` says when a question was written (dev, holdout, holdout2, holdout3: see docs/knowledge.md). ``articles`` lists acceptable article labels, ``facts`` strings the reply must contain, ``context`` an
earlier question whose topic the question follows up on; ``handover: true`` marks questions the
handbook cannot answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalItem:
    id: int
    question: str
    articles: tuple[str, ...]
    facts: tuple[str, ...]
    handover: bool
    context: str | None = None
    split: str = "dev"
    document: str | None = None  # the document the answer must cite (a compilation has several)
    kind: str = ""  # amount | when | where | materials | how | eligibility | list | table | followup | unanswerable | other  # dev: written first and tuned on; holdout*: written later, first run recorded in the docs


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        raw = json.loads(line)
        items.append(EvalItem(int(raw.get("id", number)), raw["question"], tuple(raw.get("articles", ())),
                              tuple(raw.get("facts", ())), bool(raw.get("handover", False)), raw.get("context"),
                              raw.get("split", "dev"), raw.get("document"),
                              raw.get("kind") or ("unanswerable" if raw.get("handover") else "")))
    return items
