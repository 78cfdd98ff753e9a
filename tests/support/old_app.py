"""Messages as the replaced TypeScript app sent them, one per job (docs/MIGRATION.md,
"Messages the replaced app left in flight").

Each builder takes the world a contract case set up and the message jobbridge would
send for it, and returns the message the old app's producer sent for the same work,
field by field as that producer wrote it: the bulk fetcher's `pageCount` and window,
the worker's `forceReprocess`, clean's nullable skips, `""` among the senders to
categorize, the summary fan-out's `{email}`, the digest item's `to: ""`. Where the old
producer only sent a job for a world in a given state (the digest fan-out: accounts
whose schedule is due), the builder puts the world in that state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bridge.store.db import session_scope
from tasks.models import EmailAccount, utcnow
from tests.conftest import Mailbox

OldMessage = Callable[[Mailbox, dict[str, Any]], dict[str, Any]]


def iso_z(days_from_now: float) -> str:
    """A time as JavaScript's toISOString() writes it: milliseconds and Z."""
    moment = utcnow() + timedelta(days=days_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fetcher(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    # The start route's first page; later pages add pageToken and count up.
    return {
        "jobId": ours["jobId"],
        "emailAccountId": ours["emailAccountId"],
        "startDate": iso_z(-1),
        "onlyUnread": False,
        "forceReprocess": False,
        "pageCount": 0,
    }


def worker(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    return {
        "jobId": ours["jobId"],
        "emailAccountId": ours["emailAccountId"],
        "messageId": ours["messageId"],
        "threadId": ours["threadId"],
        "forceReprocess": False,
    }


def categorize(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    # A From line it could not parse became "", and two spellings of one address both
    # survived its de-duplication of raw From lines.
    (sender,) = ours["senders"]
    return {"emailAccountId": ours["emailAccountId"], "senders": ["", sender, sender.upper()]}


def clean_process(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    # Its skips came from the user's form as they were: null or absent meant "don't skip".
    return {
        "emailAccountId": ours["emailAccountId"],
        "threadId": ours["threadId"],
        "markedDoneLabelId": ours["markedDoneLabelId"],
        "processedLabelId": ours["processedLabelId"],
        "jobId": ours["jobId"],
        "action": ours["action"],
        "instructions": "",
        "skips": {"reply": None, "starred": None, "receipt": True, "conversation": None},
    }


def clean_apply(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    return {
        "emailAccountId": ours["emailAccountId"],
        "threadId": ours["threadId"],
        "markDone": ours["markDone"],
        "action": ours["action"],
        "markedDoneLabelId": ours["markedDoneLabelId"],
        "processedLabelId": ours["processedLabelId"],
        "jobId": ours["jobId"],
    }


def ai_digest(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    message = ours["message"]
    return {
        "emailAccountId": ours["emailAccountId"],
        "message": {
            "id": message["id"],
            "threadId": message["threadId"],
            "from": message["from"],
            "to": "",
            "subject": message["subject"],
            "content": message["content"],
        },
    }


def scheduled_action(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    return {"scheduledActionId": ours["scheduledActionId"], "scheduledFor": iso_z(-0.001)}


def resend_digest(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    # Its fan-out sent no `force`: only for accounts whose digest was due.
    with session_scope() as session:
        account = session.get(EmailAccount, ours["emailAccountId"])
        assert account is not None
        account.digest_interval_days = 1
        account.digest_next_at = utcnow() - timedelta(minutes=1)
    return {"emailAccountId": ours["emailAccountId"]}


def resend_summary(m: Mailbox, ours: dict[str, Any]) -> dict[str, Any]:
    return {"email": m.email}


OLD_MESSAGES: dict[str, OldMessage] = {
    "inbox-zero/bulk-process.fetcher": fetcher,
    "inbox-zero/bulk-process.worker": worker,
    "inbox-zero/categorize.senders-batch": categorize,
    "inbox-zero/clean.process": clean_process,
    "inbox-zero/clean.gmail": clean_apply,
    "inbox-zero/clean.outlook": clean_apply,
    "inbox-zero/ai.digest": ai_digest,
    "inbox-zero/scheduled-action.execute": scheduled_action,
    "inbox-zero/resend.digest": resend_digest,
    "inbox-zero/resend.summary": resend_summary,
}
