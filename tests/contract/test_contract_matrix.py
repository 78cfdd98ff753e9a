"""The contract matrix: every job, delivered by every provider, ends in the same state.

Each case sets a world up, names the job and its payload, and says what the world looks
like afterwards. Each provider then delivers it its own way: a real Celery worker; the
web server driven as Inngest drives it (signed requests, the step loop); the web server
receiving signed QStash deliveries; direct HTTP. Follow-up jobs a job publishes run on
the session's Celery worker, whichever provider delivered the first one. A job without
a case fails `test_every_job_has_a_case`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bridge import enqueue
from bridge.store.db import session_scope
from tasks import JOBS
from tasks.mail.port import MessageNotFound
from tasks.models import (
    ActionStatus,
    ActionType,
    BulkJobStatus,
    BulkProcessJob,
    Category,
    CleanAction,
    CleanupJob,
    CleanupThread,
    Digest,
    DigestItem,
    DigestStatus,
    EmailAccount,
    RuleActionType,
    ScheduledAction,
    Sender,
    SummaryFrequency,
    utcnow,
)
from tests.conftest import Mailbox
from tests.support import env
from tests.support.actions import insert_action
from tests.support.celery_tasks import celery_task, traceback_text
from tests.support.digests import add_pending_digest
from tests.support.fake_inngest import FakeInngest, run_function
from tests.support.fake_qstash import FakeQStash, deliver_until_final
from tests.support.rules import add_rule
from tests.support.wait import wait_for
from tests.support.wire import wire


def key_of(mailbox: Mailbox, subject: str) -> str:
    """The key of the seeded message with this subject. Read while jobs may be rewriting
    the Maildir (a label renames its file), so a message missed mid-rename is looked
    for again, as Mailbox.snapshot does."""
    mail = mailbox.provider()
    while True:
        try:
            (key,) = [k for k in mailbox.keys if mail.get_message(k).subject == subject]
        except MessageNotFound:
            continue
        return key


def rows(model: Any, *columns: Any) -> list[tuple[Any, ...]]:
    with session_scope() as session:
        return sorted(tuple(row) for row in session.execute(select(*columns)))


@dataclass(frozen=True)
class Case:
    setup: Callable[[Mailbox], dict[str, Any]]  # prepares the world, returns the payload
    state: Callable[[Mailbox], Any]  # what the world looks like (compared when settled)
    expected: Callable[[Mailbox], Any]


# scheduled-action.execute ------------------------------------------------------------


def _scheduled_setup(m: Mailbox) -> dict[str, Any]:
    row = insert_action(m.account_id, ActionType.ARCHIVE, key_of(m, "Quarterly report"))
    return {"scheduledActionId": row.id}


def _scheduled_state(m: Mailbox) -> Any:
    return rows(ScheduledAction, ScheduledAction.status), m.folder_keys("Archive")


def _scheduled_expected(m: Mailbox) -> Any:
    return [(ActionStatus.COMPLETED,)], {key_of(m, "Quarterly report")}


# bulk-process.fetcher and .worker --------------------------------------------------------


def _bulk_job(m: Mailbox, **values: Any) -> str:
    add_rule(m.account_id, "reports", [{"type": RuleActionType.ARCHIVE}], subject_pattern="report")
    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=m.account_id,
            start_date=utcnow() - timedelta(days=1),
            only_unread=False,
            status=BulkJobStatus.RUNNING,
            **values,
        )
        session.add(job)
    return job.id


def _bulk_state(m: Mailbox) -> Any:
    counts = rows(
        BulkProcessJob,
        BulkProcessJob.status,
        BulkProcessJob.total_emails,
        BulkProcessJob.emails_queued,
        BulkProcessJob.processed,
        BulkProcessJob.failed,
    )
    return counts, m.folder_keys("Archive")


def _fetcher_setup(m: Mailbox) -> dict[str, Any]:
    return {"jobId": _bulk_job(m), "emailAccountId": m.account_id, "page": 0}


def _worker_setup(m: Mailbox) -> dict[str, Any]:
    job_id = _bulk_job(m, emails_queued=1, total_emails=1, pages_fetched=1, all_queued=True)
    key = key_of(m, "Quarterly report")
    return {"jobId": job_id, "emailAccountId": m.account_id, "messageId": key, "threadId": key}


# categorize.senders-batch ----------------------------------------------------------------


def _categorize_setup(m: Mailbox) -> dict[str, Any]:
    return {"emailAccountId": m.account_id, "senders": ["sender2@example.test"]}


def _categorize_state(m: Mailbox) -> Any:
    with session_scope() as session:
        return sorted(
            session.execute(
                select(Sender.email, Category.name).join(
                    Category, Category.id == Sender.category_id
                )
            ).all()
        )


# clean.process, clean.gmail, clean.outlook -------------------------------------------------


def _cleanup_job(m: Mailbox) -> str:
    with session_scope() as session:
        job = CleanupJob(email_account_id=m.account_id, action=CleanAction.ARCHIVE, days_old=0)
        session.add(job)
    return job.id


def _clean_process_setup(m: Mailbox) -> dict[str, Any]:
    return {
        "emailAccountId": m.account_id,
        "threadId": _thread(m, "Your receipt"),
        "jobId": _cleanup_job(m),
        "action": "ARCHIVE",
        "markedDoneLabelId": "Done",
        "processedLabelId": "Processed",
        "skips": {"receipt": True},
    }


def _apply_setup(m: Mailbox) -> dict[str, Any]:
    return {
        "emailAccountId": m.account_id,
        "threadId": _thread(m, "Team lunch"),
        "jobId": _cleanup_job(m),
        "markDone": True,
        "action": "ARCHIVE",
        "markedDoneLabelId": "Done",
        "processedLabelId": "Processed",
    }


def _thread(m: Mailbox, subject: str) -> str:
    return str(m.provider().get_message(key_of(m, subject)).thread_id)


def _clean_state(m: Mailbox) -> Any:
    return rows(CleanupThread, CleanupThread.archived, CleanupThread.mark_done), m.snapshot()


def _receipt_kept(m: Mailbox) -> Any:
    snapshot = m.snapshot()
    labelled = [
        (key, read, ["Processed"] if key == key_of(m, "Your receipt") else labels)
        for key, read, labels in snapshot["INBOX"]
    ]
    return [(False, False)], {**snapshot, "INBOX": labelled}


def _lunch_archived(m: Mailbox) -> Any:
    lunch = key_of(m, "Team lunch")
    return [(True, True)], {
        "INBOX": [(k, False, []) for k in sorted(m.keys) if k != lunch],
        "Archive": [(lunch, False, ["Done", "Processed"])],
    }


# ai.digest, resend.digest, resend.summary ------------------------------------------------


def _ai_digest_setup(m: Mailbox) -> dict[str, Any]:
    return {
        "emailAccountId": m.account_id,
        "message": {
            "id": "m1",
            "threadId": "t1",
            "from": "Shop <shop@example.test>",
            "subject": "Order shipped",
            "content": "Your order is on its way and will arrive tomorrow morning.",
        },
    }


def _ai_digest_state(m: Mailbox) -> Any:
    return rows(DigestItem, DigestItem.message_id, DigestItem.content)


def _resend_digest_setup(m: Mailbox) -> dict[str, Any]:
    add_pending_digest(m.account_id)
    return {"emailAccountId": m.account_id, "force": True}


def _resend_digest_state(m: Mailbox) -> Any:
    return (
        rows(Digest, Digest.status),
        rows(DigestItem, DigestItem.content),
        m.snapshot().get("Sent"),
    )


def _summary_setup(m: Mailbox) -> dict[str, Any]:
    with session_scope() as session:
        account = session.get(EmailAccount, m.account_id)
        assert account is not None
        account.summary_frequency = SummaryFrequency.DAILY
    return {"emailAccountId": m.account_id}


def _summary_state(m: Mailbox) -> Any:
    sent = m.snapshot().get("Sent", [])
    return sent, rows(EmailAccount, EmailAccount.last_summary_at.is_not(None))


CASES: dict[str, Case] = {
    "inbox-zero/scheduled-action.execute": Case(
        _scheduled_setup, _scheduled_state, _scheduled_expected
    ),
    "inbox-zero/bulk-process.fetcher": Case(
        _fetcher_setup,
        _bulk_state,
        lambda m: ([(BulkJobStatus.COMPLETED, 3, 3, 3, 0)], {key_of(m, "Quarterly report")}),
    ),
    "inbox-zero/bulk-process.worker": Case(
        _worker_setup,
        _bulk_state,
        lambda m: ([(BulkJobStatus.COMPLETED, 1, 1, 1, 0)], {key_of(m, "Quarterly report")}),
    ),
    "inbox-zero/categorize.senders-batch": Case(
        _categorize_setup, _categorize_state, lambda m: [("sender2@example.test", "Receipt")]
    ),
    "inbox-zero/clean.process": Case(_clean_process_setup, _clean_state, _receipt_kept),
    "inbox-zero/clean.gmail": Case(_apply_setup, _clean_state, _lunch_archived),
    "inbox-zero/clean.outlook": Case(_apply_setup, _clean_state, _lunch_archived),
    "inbox-zero/ai.digest": Case(
        _ai_digest_setup,
        _ai_digest_state,
        lambda m: [("m1", "Your order is on its way and will arrive tomorrow morning.")],
    ),
    "inbox-zero/resend.digest": Case(
        _resend_digest_setup,
        _resend_digest_state,
        lambda m: ([(DigestStatus.SENT,)], [(None,)], [("sent", "Your digest: 1 email")]),
    ),
    "inbox-zero/resend.summary": Case(
        _summary_setup, _summary_state, lambda m: ([("sent", "Your inbox summary")], [(True,)])
    ),
}


def test_every_job_has_a_case() -> None:
    assert set(CASES) == set(JOBS)


# How each provider delivers ---------------------------------------------------------------


def via_celery(event: str, payload: dict[str, Any], **_: Any) -> None:
    enqueue(*wire(event, payload))  # the suite's own chain is Celery: the worker runs it


def via_inngest(
    event: str, payload: dict[str, Any], *, web: str, router: Any, configure: Any
) -> None:
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    enqueue(*wire(event, payload))
    (sent,) = inngest.events
    run = run_function(web, JOBS[event].fn_id, sent)
    assert run.status == 200, run.output


def via_qstash(
    event: str, payload: dict[str, Any], *, web: str, router: Any, configure: Any
) -> None:
    configure(**env.QSTASH_ENV)
    qstash = FakeQStash(router)
    enqueue(*wire(event, payload))
    (message,) = qstash.messages
    response = deliver_until_final(message, web)
    assert response.status_code == 200, response.text


def via_http(event: str, payload: dict[str, Any], *, web: str, configure: Any, **_: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    enqueue(*wire(event, payload))


class Deliver(Protocol):
    """A provider's way to bring a job to the app (each takes what it needs)."""

    def __call__(
        self, event: str, payload: dict[str, Any], *, web: str, router: Any, configure: Any
    ) -> None: ...


PROVIDERS: dict[str, Deliver] = {
    "celery": via_celery,
    "inngest": via_inngest,
    "qstash": via_qstash,
    "http": via_http,
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("event", sorted(CASES))
def test_job_has_the_same_effect_whichever_provider_delivers_it(
    event: str,
    provider: str,
    mailbox: Mailbox,
    web: str,
    worker: Any,
    router: Any,
    configure: Any,
) -> None:
    case = CASES[event]
    payload = case.setup(mailbox)
    PROVIDERS[provider](event, payload, web=web, router=router, configure=configure)
    expected = case.expected(mailbox)
    settled = wait_for(
        lambda: case.state(mailbox) == expected,
        timeout=60,
        what=f"{event} via {provider} to settle",
    )
    assert settled


@pytest.mark.parametrize("kind", ["imap", "gmail", "graph"])
@pytest.mark.parametrize("event", sorted(CASES))
def test_job_has_the_same_effect_on_a_real_mailbox(
    event: str, kind: str, worker: Any, request: pytest.FixtureRequest
) -> None:
    # The same case on a real IMAP server (Dovecot), and on a Gmail and a Microsoft 365
    # account (their API doubles), instead of a Maildir folder.
    mailbox = request.getfixturevalue(f"{kind}_mailbox")
    case = CASES[event]
    payload = case.setup(mailbox)
    via_celery(event, payload)
    expected = case.expected(mailbox)
    settled = wait_for(
        lambda: case.state(mailbox) == expected,
        timeout=60,
        what=f"{event} on {kind} to settle",
    )
    assert settled


@pytest.mark.parametrize("event", sorted(CASES))
def test_job_delivered_three_times_has_the_effect_of_one(
    event: str, mailbox: Mailbox, web: str, worker: Any, configure: Any
) -> None:
    case = CASES[event]
    payload = case.setup(mailbox)
    for _ in range(3):  # three separate deliveries: none is recognised as a duplicate
        via_http(event, payload, web=web, configure=configure)
    expected = case.expected(mailbox)
    assert wait_for(lambda: case.state(mailbox) == expected, timeout=60, what=f"{event} to settle")


# Bad payloads, every route ------------------------------------------------------------


def required_field(event: str) -> str:
    """The wire name of the first field an empty payload lacks (a required field, or one
    of two that name the same thing, such as resend.summary's emailAccountId or email)."""
    try:
        JOBS[event].payload.model_validate({})
    except ValidationError as error:
        return str(error.errors()[0]["loc"][0])
    raise AssertionError(f"{event}: an empty payload is valid")


def table_counts() -> dict[str, int]:
    from sqlalchemy import func, text

    from tasks.models import Base

    with session_scope() as session:
        return {
            table.name: int(
                session.scalar(select(func.count()).select_from(text(f'"{table.name}"'))) or 0
            )
            for table in Base.metadata.sorted_tables
        }


@pytest.mark.parametrize("event", sorted(JOBS))
def test_bad_payload_answers_489_naming_the_field_and_writes_nothing(
    event: str, web: str, mailbox: Mailbox
) -> None:
    import httpx

    from tests.support.fake_qstash import mint_signature

    route = JOBS[event].route
    before = table_counts()
    body = b"{}"
    response = httpx.post(
        web + route,
        content=body,
        headers={
            "Content-Type": "application/json",
            "Upstash-Signature": mint_signature(body, env.WEBHOOK_URL + route),
            "Upstash-Message-Id": f"msg_bad_payload_{event}",
        },
    )
    assert response.status_code == 489
    assert response.headers["upstash-nonretryable-error"] == "true"
    assert required_field(event) in response.json()["error"]
    assert table_counts() == before


@pytest.mark.parametrize("event", sorted(JOBS))
def test_bad_payload_fails_on_celery_without_retry(event: str) -> None:
    from bridge.celery.tasks import JobFailed

    outcome = celery_task(JOBS[event]).apply(kwargs={"payload": {}})
    assert outcome.failed() and isinstance(outcome.result, JobFailed)
    assert required_field(event) in str(outcome.result)
    trace = traceback_text(outcome)
    assert trace is not None and "Retry" not in trace


@pytest.mark.parametrize("event", sorted(CASES))
def test_job_retried_after_a_failure_has_the_effect_of_one(
    event: str, mailbox: Mailbox, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.core import run_job
    from bridge.outcome import Delivery
    from tasks.mail.maildir import MaildirProvider

    case = CASES[event]
    payload = case.setup(mailbox)
    failed: list[str] = []
    # The first change the job makes to the mailbox fails, as a provider outage would.
    for name in ("archive", "label", "mark_read", "move", "send"):
        original = getattr(MaildirProvider, name)

        def fail_once(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            if not failed:
                failed.append(_name)
                raise ConnectionError(f"{_name}: provider unavailable")
            return _original(self, *args)

        monkeypatch.setattr(MaildirProvider, name, fail_once)
    first = run_job(JOBS[event], payload, Delivery("test", "d1", 0))
    monkeypatch.undo()
    if failed:
        assert first.outcome.value == "retry", first
    run_job(JOBS[event], payload, Delivery("test", "d1", 1))
    expected = case.expected(mailbox)
    assert wait_for(lambda: case.state(mailbox) == expected, timeout=60, what=f"{event} to settle")
