"""送政策: answering households' policy questions from the county's handbook.

Public API (see docs/knowledge.md): ``KnowledgeBase``, ``Answer``, ``Source``,
``ensure_sample_loaded``, ``promote_unanswered``.
"""

from knowledge.result import Answer, Source
from knowledge.service import KnowledgeBase, ensure_sample_loaded, promote_unanswered

__all__ = ["Answer", "KnowledgeBase", "Source", "ensure_sample_loaded", "promote_unanswered"]
