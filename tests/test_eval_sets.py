"""The question sets keep their held-out splits honest (knowledge/evaluation/handbooks.py).

A held-out question whose words a tuning split of the same handbook also has was tuned on: the sets
must not hold one. The same words in another handbook's tuning split are allowed (households ask
the same things everywhere) but leave the question out of the held-out figures, which
``clean_held_out`` does and these tests check.
"""

from __future__ import annotations

from knowledge.evaluation.dataset import EvalItem, load_items
from knowledge.evaluation.handbooks import HANDBOOKS, HELD_OUT, clean_held_out, question_key


def test_no_handbook_tunes_on_its_own_held_out_questions() -> None:
    for handbook in HANDBOOKS:
        items = load_items(handbook.questions)
        tuned = {question_key(i.question) for i in items if i.split not in HELD_OUT}
        twice = [i.question for i in items if i.split in HELD_OUT and question_key(i.question) in tuned]
        assert twice == [], (handbook.name, twice)


def test_held_out_figures_leave_out_what_another_handbook_tuned_on() -> None:
    every_tuned = {question_key(i.question) for h in HANDBOOKS for i in load_items(h.questions) if i.split not in HELD_OUT}
    for handbook in HANDBOOKS:
        items = load_items(handbook.questions)
        clean, seen = clean_held_out(items)
        assert len(clean) + len(seen) == sum(i.split in HELD_OUT for i in items)
        assert all(question_key(i.question) not in every_tuned for i in clean)
        assert all(question_key(i.question) in every_tuned for i in seen)
    probe = EvalItem(1, "贷款 要找人担保不？", (), (), False, split="heldout")  # spacing and punctuation aside
    assert question_key(probe.question) == "贷款要找人担保不"
