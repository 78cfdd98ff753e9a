"""Periodic work is never hidden by an earlier run that found nothing to do: an hourly
fan-out's jobs carry the hour they cover, a skip is not remembered as done, and a fan-out
whose provider is away asks its scheduler to come back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from bridge.store.db import session_scope
from bridge.web.factory import create_app
from tasks import JOBS
from tasks.jobs import digest
from tasks.models import EmailAccount, SummaryFrequency, utcnow
from tests.conftest import Mailbox
from tests.support import env
from tests.support.digests import add_pending_digest
from tests.support.fake_inngest import FakeInngest, run_function
from tests.support.fake_qstash import FakeQStash, deliver_until_final
from tests.support.services import free_port
from tests.support.wait import wait_for

EIGHT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
NINE = EIGHT + timedelta(hours=1)
DIGEST_SUBJECT = "Your digest: 1 email"


def due_digest_schedule(mailbox: Mailbox) -> None:
    with session_scope() as session:
        session.execute(
            update(EmailAccount)
            .where(EmailAccount.id == mailbox.account_id)
            .values(digest_interval_days=1, digest_next_at=utcnow() - timedelta(hours=2))
        )


def due_digest_and_summary(mailbox: Mailbox) -> None:
    """The account is due both hourly fan-outs: its digest, and a daily summary."""
    due_digest_schedule(mailbox)
    with session_scope() as session:
        session.execute(
            update(EmailAccount)
            .where(EmailAccount.id == mailbox.account_id)
            .values(summary_frequency=SummaryFrequency.DAILY)
        )


def add_pending_item(mailbox: Mailbox) -> None:
    """What an `ai.digest` between the two hourly runs leaves: one item to send."""
    add_pending_digest(mailbox.account_id)


def sent_subjects(mailbox: Mailbox) -> list[str]:
    mail = mailbox.provider()
    return [str(mail.folder("Sent")[key]["Subject"]) for key in mailbox.folder_keys("Sent")]


class Hourly:
    """Runs the digest fan-out at a given hour through one provider, and delivers what it
    published the way that provider would."""

    def __init__(self, provider: str, web: str, router: Any, configure: Any) -> None:
        self.provider, self.web = provider, web
        self.inngest: FakeInngest | None = None
        self.qstash: FakeQStash | None = None
        if provider == "inngest":
            configure(**env.INNGEST_ENV)
            self.inngest = FakeInngest(router)
        elif provider == "qstash":
            configure(**env.QSTASH_ENV)
            self.qstash = FakeQStash(router)
        elif provider == "http":
            configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)

    def run(self, at: datetime) -> list[str]:
        """The published jobs' ids (or outcomes, where the provider answers at once)."""
        # The cron's own function takes the time it runs at; CronSpec.body is typed as
        # the shim calls it, with none.
        assert digest.enqueue_due_digests.body(at) == {"enqueued": 1}  # type: ignore[call-arg]
        if self.inngest is not None:
            event = self.inngest.events[-1]
            run = run_function(self.web, JOBS[digest.DIGEST_EVENT].fn_id, event)
            assert run.status == 200, run.output
            return [str(event["id"])]
        if self.qstash is not None:
            message = self.qstash.messages[-1]
            assert deliver_until_final(message, self.web).status_code == 200
            return [message.message_id]
        return []


@pytest.mark.parametrize("provider", ["celery", "inngest", "qstash", "http"])
def test_a_digest_due_after_a_skipped_hourly_run_is_sent_by_the_next_hourly_run(
    provider: str, mailbox: Mailbox, web: str, worker: Any, router: Any, configure: Any
) -> None:
    due_digest_schedule(mailbox)
    hourly = Hourly(provider, web, router, configure)

    first = hourly.run(EIGHT)  # nothing collected yet: the job skips
    add_pending_item(mailbox)
    second = hourly.run(NINE)

    assert first != second or not first
    sent = wait_for(lambda: sent_subjects(mailbox), timeout=30, what=f"the digest via {provider}")
    assert sent == [DIGEST_SUBJECT]


@pytest.mark.parametrize(
    "fan_out", [digest.enqueue_due_digests.body, digest.enqueue_due_summaries.body]
)
def test_hourly_fan_out_ids_name_the_hour_they_cover(
    fan_out: Callable[..., Any], mailbox: Mailbox, fake_inngest: Any
) -> None:
    due_digest_and_summary(mailbox)

    fan_out(EIGHT)
    fan_out(EIGHT + timedelta(minutes=59))
    fan_out(NINE)

    ids = [event["id"] for event in fake_inngest.events]
    assert ids[0] == ids[1] != ids[2]


def test_a_skipped_delivery_is_run_again_when_it_is_delivered_again(
    mailbox: Mailbox, web: str
) -> None:
    due_digest_schedule(mailbox)
    payload = {"emailAccountId": mailbox.account_id}
    headers = {"x-api-key": env.INTERNAL_API_KEY, "x-jobbridge-delivery-id": "same-delivery"}

    def post() -> dict[str, Any]:
        response = httpx.post(web + "/api/resend/digest", json=payload, headers=headers)
        assert response.status_code == 200
        return dict(response.json())

    assert post()["outcome"] == "skipped"
    add_pending_item(mailbox)

    assert post()["outcome"] == "done"
    assert sent_subjects(mailbox) == [DIGEST_SUBJECT]


@pytest.mark.parametrize("route", ["/api/resend/digest/all", "/api/resend/summary/all"])
def test_an_hourly_fan_out_whose_provider_is_away_is_asked_to_come_back(
    route: str, mailbox: Mailbox, configure: Callable[..., Any]
) -> None:
    due_digest_and_summary(mailbox)
    port = free_port()  # nothing listens there
    away = {"INNGEST_BASE_URL": f"http://127.0.0.1:{port}", "JOB_FAILOVER": "false"}
    settings = configure(**{**env.INNGEST_ENV, **away})
    with TestClient(create_app(settings)) as web:
        response = web.post(route, headers={"Authorization": f"Bearer {env.CRON_SECRET}"})

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "inngest did not take it" in response.json()["error"]
    assert str(port) not in response.text
