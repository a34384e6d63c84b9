"""How well a recogniser did: character error rate, the measure Chinese ASR is compared by."""

from __future__ import annotations


def _chars(text: str) -> list[str]:
    """The characters that count: punctuation and spaces are the recogniser's styling, not its hearing."""
    return [c for c in text if c.isalnum()]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Substitutions + deletions + insertions over the reference's length (one clip)."""
    ref = _chars(reference)
    return edit_distance(ref, _chars(hypothesis)) / max(len(ref), 1)


def corpus_cer(pairs: list[tuple[str, str]]) -> float:
    """CER over a set of clips: total edits over total reference characters (long clips weigh more)."""
    edits = sum(edit_distance(_chars(ref), _chars(hyp)) for ref, hyp in pairs)
    return edits / max(sum(len(_chars(ref)) for ref, _ in pairs), 1)
