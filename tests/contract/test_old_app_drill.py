"""The switch, drilled: for one bulk run and one cleanup job, the messages jobbridge
publishes and the messages the replaced app had queued for the same work arrive mixed,
by every path at once (QStash to the route, the last-resort `/simple` call, Inngest), and
each run completes with every message counted and every thread recorded once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.store.db import session_scope
from tasks import JOBS
from tasks.jobs import bulk_process, bulk_worker, clean
from tasks.jobs.clean_records import cleanup_job
from tasks.models import (
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
    CleanAction,
    CleanupJobStatus,
    CleanupThread,
    ExecutedRule,
    utcnow,
)
from tests.conftest import Mailbox
from tests.support import env
from tests.support.bulk_inbox import finished, seed_inbox
from tests.support.fake_inngest import run_function
from tests.support.fake_qstash import FakeQStash, QueuedMessage, deliver_until_final
from tests.support.old_app import iso_z
from tests.support.wait import wait_for

Send = Callable[[str, str, dict[str, Any]], None]


def via_qstash(web: str, event: str, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    url = env.WEBHOOK_URL + JOBS[event].route
    message = QueuedMessage(f"msg_{uuid.uuid4().hex}", url, body, {})
    assert deliver_until_final(message, web).status_code == 200


def via_simple(web: str, event: str, data: dict[str, Any]) -> None:
    response = httpx.post(
        f"{web}{JOBS[event].route}/simple",
        json=data,
        headers={"x-api-key": env.INTERNAL_API_KEY},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def via_inngest(web: str, event: str, data: dict[str, Any]) -> None:
    sent = {"name": event, "data": data, "id": uuid.uuid4().hex}
    run = run_function(web, JOBS[event].fn_id, sent)
    assert run.status == 200, run.output


PATHS: list[Send] = [via_qstash, via_simple, via_inngest]


def deliver_mixed(web: str, messages: list[tuple[str, dict[str, Any]]], seed: int) -> None:
    """Every message once, in a shuffled order, four at a time, each by the next path."""
    order = list(messages)
    random.Random(seed).shuffle(order)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(PATHS[n % len(PATHS)], web, event, data)
            for n, (event, data) in enumerate(order)
        ]
        for future in futures:
            future.result()


def published(fake_qstash: FakeQStash, route: str) -> list[dict[str, Any]]:
    return [json.loads(message.body) for message in fake_qstash.messages if message.route == route]


def test_a_bulk_run_fed_by_both_apps_counts_every_message_once(
    tmp_path: Path, fake_qstash: FakeQStash, web: str, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_process, "GO_ON_SECONDS", 0.0)  # page 0 here, page 1 after
    inbox = seed_inbox(tmp_path)
    with session_scope() as session:
        row = BulkProcessJob(
            email_account_id=inbox.account_id,
            start_date=utcnow() - timedelta(days=1),
            only_unread=False,
            status=BulkJobStatus.RUNNING,
        )
        session.add(row)
    window = {"startDate": iso_z(-1), "onlyUnread": False, "forceReprocess": False}
    old_first_page = {"jobId": row.id, "emailAccountId": inbox.account_id, "pageCount": 0}
    # Page 0 arrives in the old shape; what it queues (workers, page 1) is ours, captured.
    run_job(bulk_process.fetch_page, old_first_page | window, Delivery("inngest", "p0", 0))
    ours_workers = published(fake_qstash, bulk_worker.process_message.route)
    (ours_next,) = published(fake_qstash, bulk_process.fetch_page.route)
    # The old app had queued the same work in its own shapes before the switch.
    old_workers = [
        {k: w[k] for k in ("jobId", "emailAccountId", "messageId", "threadId")}
        | {"forceReprocess": False}
        for w in ours_workers
    ]
    old_next = old_first_page | window | {"pageCount": 1, "pageToken": ours_next["pageToken"]}

    deliver_mixed(
        web,
        [(bulk_worker.WORKER_EVENT, w) for w in [*ours_workers, *old_workers]]
        + [(bulk_process.FETCHER_EVENT, page) for page in (ours_next, old_next)],
        seed=1,
    )

    done = wait_for(lambda: finished(row.id), timeout=90, what="the mixed bulk run")
    assert (len(ours_workers), done.total_emails, done.emails_queued) == (25, 40, 40)
    assert (done.processed, done.failed, done.pages_fetched) == (40, 0, 2)
    with session_scope() as session:
        items = session.scalar(select(func.count(BulkProcessItem.id.distinct())))
        results = session.scalar(select(func.count()).select_from(ExecutedRule))
    assert (items, results) == (40, 40)
    assert len(inbox.provider().folder_keys("Archive")) == 20


@pytest.fixture
def more_threads(mailbox: Mailbox) -> Mailbox:
    """The mailbox with ten more threads, so a cleanup job has work for every path."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    mail = mailbox.provider()
    for number in range(10):
        message = EmailMessage()
        message["From"] = f"promo{number}@shop.example.test"
        message["To"] = mailbox.email
        message["Subject"] = f"Sale number {number}"
        message["List-Unsubscribe"] = f"<https://shop.example.test/u/{number}>"
        message["Message-ID"] = make_msgid("drill")
        message.set_content(f"Everything must go, round {number}.")
        mailbox.keys.append(mail.deliver(message))
    return mailbox


def test_a_cleanup_job_fed_by_both_apps_records_every_thread_once(
    more_threads: Mailbox, fake_qstash: FakeQStash, web: str, worker: Any
) -> None:
    job = clean.clean_inbox(more_threads.account_id, action=CleanAction.ARCHIVE, days_old=0)
    ours = published(fake_qstash, clean.process_thread.route)
    old = [
        {k: v for k, v in message.items() if k != "skips"}
        | {"instructions": "", "skips": {"starred": None, "conversation": None}}
        for message in ours
    ]

    deliver_mixed(web, [(clean.PROCESS_EVENT, m) for m in [*ours, *old]], seed=2)

    def completed() -> bool:
        return cleanup_job(job.id, job.email_account_id).status is CleanupJobStatus.COMPLETED

    assert wait_for(completed, timeout=90, what="the mixed cleanup job")
    with session_scope() as session:
        threads = session.scalars(
            select(CleanupThread.thread_id).where(CleanupThread.job_id == job.id)
        ).all()
    assert len(ours) == 13
    assert sorted(threads) == sorted(m["threadId"] for m in ours)
