"""A bounded cache of answers, one per loaded snapshot.

Households ask the same few dozen questions again and again ("低保咋个申请", "危房改造补好多"), and a
webhook worker spends most of a policy question's time cutting, weighing and ranking it. The answer
depends only on the snapshot (handbook, FAQ, synonyms, the synonym file as read), the question and
the previous topic, so it can be kept. The cache lives with the snapshot it was filled from: a new
generation or an edited synonym file makes a new snapshot and so an empty cache — an old answer can
never be served for a changed knowledge base, whatever thread loaded what when.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from knowledge.result import Answer


def _copy(answer: Answer) -> Answer:
    """Answers are plain dataclasses a caller may change; each caller gets its own."""
    return replace(answer, sources=[replace(s) for s in answer.sources])


class AnswerCache:
    """Least recently used answers, at most ``size`` of them; thread-safe."""

    def __init__(self, size: int, owner: object) -> None:
        self.size = size
        self.owner = owner  # the snapshot these answers were computed from
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[object, ...], Answer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[object, ...]) -> Answer | None:
        with self._lock:
            answer = self._items.get(key)
            if answer is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
        return _copy(answer)

    def put(self, key: tuple[object, ...], answer: Answer) -> None:
        kept = _copy(answer)
        with self._lock:
            self._items[key] = kept
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
