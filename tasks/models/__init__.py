"""Every SQLAlchemy model, importable from `tasks.models` (Alembic reads Base.metadata)."""

from __future__ import annotations

from tasks.models.base import Base, UTCDateTime, new_id, utcnow
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
    DeferredJob,
    EmailAccount,
    MailProviderKind,
    ProcessedDelivery,
    ScheduledAction,
    SchedulingStatus,
    SeenSignature,
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
    "SummaryFrequency",
    "UTCDateTime",
    "new_id",
    "utcnow",
]
