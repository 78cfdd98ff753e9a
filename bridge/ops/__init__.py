"""What the operator commands (`jobbridge keys|audit|sync|status`) compute, without the
CLI, one module per concern. Every probe is bounded in time.

What the app counts (its audit) comes from the app, found by bridge.apps.
"""

from __future__ import annotations

from bridge.ops.audit import QStashAudit, audit_qstash, qstash_queues
from bridge.ops.keys import InngestKeys, generate_keys, write_env_file
from bridge.ops.measure import describe
from bridge.ops.probes import Check, check_broker, check_database
from bridge.ops.status import StatusReport, collect_status, every
from bridge.ops.sync import SyncResult, sync_app, sync_url

__all__ = [
    "Check",
    "InngestKeys",
    "QStashAudit",
    "StatusReport",
    "SyncResult",
    "audit_qstash",
    "check_broker",
    "check_database",
    "collect_status",
    "describe",
    "every",
    "generate_keys",
    "qstash_queues",
    "sync_app",
    "sync_url",
    "write_env_file",
]
