"""Bulk processing's worker: the rules applied to one message of a run (docs/JOBS.md,
"Bulk processing"), or to many at once.

On the wire a worker message names one message, on every provider. On Celery the
messages of one page are delivered as one batch (`process_messages`,
bridge/celery/batches.py): the runs, the account and the messages' rule results are read
in one statement, and the new rule results and the counts written in one transaction,
for the batch; each message keeps its own outcome. One message is a batch of one, so
both ways are the same code.

A message is counted once, by its item row; the count that adds a run's last message
completes the run. A repeated message is a no-op: counted already, or (not forced) it
has a rule result and is counted as processed; forced, a message the run has counted is
skipped, so the rules are applied again once per run (a forced message is counted as
soon as it is done, not with its batch). A batch cut short (its worker killed) is
delivered again whole: its messages done before the cut are applied again, which makes
no second effect (every effect is idempotent), and each is counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from sqlalchemy.exc import IntegrityError

from bridge.outcome import Delivery, Outcome, PermanentError, Result, RetryLater, done, skipped
from bridge.payload import ExternalId, Id, Payload
from bridge.store.db import engine
from tasks.jobs import bulk_records as records
from tasks.mail.accounts import mail_provider_for
from tasks.mail.port import MailProvider, MessageNotFound
from tasks.models import BulkItemStatus, BulkJobStatus, EmailAccount
from tasks.rules.apply import apply_rules
from tasks.rules.results import RuleResult, insert_first_results, record_first_results
from tasks.shim import registry

WORKER_EVENT = "inbox-zero/bulk-process.worker"


class ProcessMessage(Payload):
    job_id: Id
    email_account_id: Id
    message_id: ExternalId
    thread_id: ExternalId
    force_reprocess: bool | None = None


def either(carried: bool | None, stored: bool) -> bool:
    """What a message carries wins over what its run stores."""
    return stored if carried is None else carried


def process_messages(payloads: Sequence[ProcessMessage], delivery: Delivery) -> list[Result]:
    """The batch body: the messages of one account, one Result each, in their order."""
    account_id = payloads[0].email_account_id
    if any(payload.email_account_id != account_id for payload in payloads):
        raise ValueError("a batch of bulk workers must be of one account")
    read = records.worker_read(
        {p.job_id for p in payloads}, account_id, [p.message_id for p in payloads]
    )
    forced = {p.job_id for p in payloads if _forced(p, read)}
    counted = {job: records.counted_in_run(job, _ids(payloads, job)) for job in forced}
    counts: dict[str, dict[str, BulkItemStatus]] = {}
    unrecorded: list[RuleResult] = []
    results: list[Result] = []
    # The account's mail provider, made once for the batch when a message first needs it.
    mail = cache(mail_provider_for)
    try:
        for payload in payloads:
            done_with = counted.get(payload.job_id, set())
            result, status = _process(payload, read, done_with, unrecorded, mail)
            results.append(result)
            if status is not None and payload.job_id in forced:
                # At once: a forced message is applied again until it is counted (its
                # result is rewritten at once too), and a redelivered batch must not.
                records.count(payload.job_id, payload.message_id, status)
            elif status is not None:
                counts.setdefault(payload.job_id, {})[payload.message_id] = status
    finally:
        # What was done is recorded and counted even when a later message raised (the
        # batch is then retried message by message, and a message with a result, or
        # forced and counted, is not applied again).
        _record_and_count(unrecorded, counts)
    return results


def _record_and_count(
    unrecorded: list[RuleResult], counts: dict[str, dict[str, BulkItemStatus]]
) -> None:
    """The batch's rule results, then its counts, in one transaction: a message is
    never counted before its result. What the database refuses (a rule or a run
    deleted since) is written again as each part alone would be: a result refused
    alone leaves its message counted. Runs are counted in the order of their ids, so
    that two batches of the same runs lock their rows in the same order."""
    if not unrecorded and not counts:
        return
    try:
        with engine().begin() as connection:
            insert_first_results(connection, unrecorded)
            for job_id in sorted(counts):
                records.add_counts(connection, job_id, counts[job_id])
    except IntegrityError:
        record_first_results(unrecorded)
        for job_id, items in counts.items():
            records.count_many(job_id, items)


def _forced(payload: ProcessMessage, read: records.WorkerRead) -> bool:
    run = read.runs.get(payload.job_id)
    return run is not None and either(payload.force_reprocess, run[1])


def _ids(payloads: Sequence[ProcessMessage], job_id: str) -> list[str]:
    return [p.message_id for p in payloads if p.job_id == job_id]


def _process(
    payload: ProcessMessage,
    read: records.WorkerRead,
    counted: set[str],
    unrecorded: list[RuleResult],
    mail_of: Callable[[EmailAccount], MailProvider],
) -> tuple[Result, BulkItemStatus | None]:
    """One message's result, and how it is to be counted (None: not counted now)."""
    run = read.runs.get(payload.job_id)
    if run is None:
        return Result(Outcome.FAILED, f"unknown bulk job {payload.job_id}"), None
    status, stored_force = run
    if status is BulkJobStatus.CANCELLED:
        return skipped("job was cancelled"), None
    force = either(payload.force_reprocess, stored_force)
    if force and payload.message_id in counted:
        # Applied again once per run: a redelivery must not apply the rules a third time.
        return skipped("message was already processed in this run"), None
    if read.account is None:
        return Result(Outcome.FAILED, f"unknown email account {payload.email_account_id}"), None
    try:
        mail = mail_of(read.account)
        try:
            message = mail.get_message(payload.message_id)
        except MessageNotFound:
            return skipped("message no longer exists"), BulkItemStatus.SKIPPED
        has_result = payload.message_id in read.with_rule_result
        outcome = apply_rules(
            read.account, message, mail, force=force, has_result=has_result, unrecorded=unrecorded
        )
    except PermanentError as error:
        # Counted here as well as by the hook (once: the item row is unique).
        return Result(Outcome.FAILED, str(error)), BulkItemStatus.FAILED
    except RetryLater as error:  # this message's (a mail server's rate limit, say)
        return Result(Outcome.RETRY, str(error), error.retry_after), None
    return done(f"rules {outcome.status}: {outcome.rule_name or '-'}"), BulkItemStatus.PROCESSED


@registry.job(
    event=WORKER_EVENT,
    route="/api/bulk-process/worker",
    payload=ProcessMessage,
    concurrency=3,
    retries=3,
    # Failed for good on any provider: counted as failed, so the run still completes.
    on_failure=records.count_failed,
    batch_body=process_messages,
)
def process_message(payload: ProcessMessage, delivery: Delivery) -> Result:
    return process_messages([payload], delivery)[0]
