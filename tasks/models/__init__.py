"""Every SQLAlchemy model of the app, importable from `tasks.models`; with the shim's own
tables (bridge.store.tables) they make the metadata Alembic reads."""

from __future__ import annotations

from bridge.store.columns import Base, UTCDateTime, new_id, utcnow
from bridge.store.tables import DeferredJob, ProcessedDelivery, SeenSignature
from tasks.models.bulk import (
    OPEN_BULK_STATUSES,
    BulkItemStatus,
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
)
from tasks.models.cleanup import CleanAction, CleanupJob, CleanupJobStatus, CleanupThread
from tasks.models.core import (
    ActionStatus,
    ActionType,
    EmailAccount,
    MailProviderKind,
    ScheduledAction,
    SchedulingStatus,
    SummaryFrequency,
)
from tasks.models.digests import Digest, DigestItem, DigestStatus
from tasks.models.rules import (
    ExecutedAction,
    ExecutedRule,
    ExecutedRuleStatus,
    LogicalOperator,
    PatternKind,
    Rule,
    RuleAction,
    RuleActionType,
)
from tasks.models.senders import Category, Sender, SenderStatus
from tasks.models.sent_mail import SentMail

__all__ = [
    "OPEN_BULK_STATUSES",
    "ActionStatus",
    "ActionType",
    "Base",
    "BulkItemStatus",
    "BulkJobStatus",
    "BulkProcessItem",
    "BulkProcessJob",
    "Category",
    "CleanAction",
    "CleanupJob",
    "CleanupJobStatus",
    "CleanupThread",
    "DeferredJob",
    "Digest",
    "DigestItem",
    "DigestStatus",
    "EmailAccount",
    "ExecutedAction",
    "ExecutedRule",
    "ExecutedRuleStatus",
    "LogicalOperator",
    "MailProviderKind",
    "PatternKind",
    "ProcessedDelivery",
    "Rule",
    "RuleAction",
    "RuleActionType",
    "ScheduledAction",
    "SchedulingStatus",
    "SeenSignature",
    "Sender",
    "SenderStatus",
    "SentMail",
    "SummaryFrequency",
    "UTCDateTime",
    "new_id",
    "utcnow",
]
