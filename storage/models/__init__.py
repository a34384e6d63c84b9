"""All models; importing this package registers every table on ``Base.metadata``."""

from storage.models.base import Base
from storage.models.followers import Follower
from storage.models.knowledge import (
    KbArticle,
    KbDocument,
    KbFaq,
    KbIndex,
    KbPassage,
    KbState,
    KbSynonym,
    KbUnanswered,
)
from storage.models.messages import MessageLog, WeChatToken

__all__ = [
    "Base",
    "Follower",
    "KbArticle",
    "KbDocument",
    "KbFaq",
    "KbIndex",
    "KbPassage",
    "KbState",
    "KbSynonym",
    "KbUnanswered",
    "MessageLog",
    "WeChatToken",
]
