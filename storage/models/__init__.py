"""All models; importing this package registers every table on ``Base.metadata``."""

from storage.models.accounts import ApiToken, AuditLog, ConsoleSession, User
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
from storage.models.jobs import JobPosting, JobSignup
from storage.models.messages import MessageLog, WeChatToken
from storage.models.org import (
    Area,
    Cadre,
    GroupNotice,
    Hamlet,
    Household,
    HouseholdBinding,
    MessagingGroup,
    Team,
    Township,
    Village,
)
from storage.models.pushes import EarlyReceipt, Push, PushDelivery, PushOptOut, PushSender
from storage.models.surveys import SurveyCampaign, SurveyCase, SurveyResponse, VisitCheck
from storage.models.uploads import ConsoleUpload

__all__ = [
    "ApiToken",
    "AuditLog",
    "ConsoleSession",
    "ConsoleUpload",
    "User",
    "Area",
    "Base",
    "Cadre",
    "GroupNotice",
    "Hamlet",
    "Household",
    "HouseholdBinding",
    "MessagingGroup",
    "Team",
    "Township",
    "Village",
    "Follower",
    "JobPosting",
    "JobSignup",
    "Push",
    "PushDelivery",
    "PushOptOut",
    "EarlyReceipt",
    "PushSender",
    "SurveyCampaign",
    "SurveyCase",
    "SurveyResponse",
    "VisitCheck",
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
