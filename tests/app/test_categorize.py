"""categorize.senders-batch and its producer (docs/JOBS.md): static rules before the AI,
categories created once, redelivery harmless, progress counted once, bad payloads
refused for good on every path."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bridge.celery.tasks import JobFailed
from bridge.core import run_job
from bridge.outcome import Delivery, Outcome, Result
from bridge.store.db import session_scope
from tasks.ai import CleanDecision
from tasks.jobs import categorize
from tasks.mail.port import MailMessage
from tasks.models import Category, Sender
from tests.conftest import Mailbox
from tests.support import env
from tests.support.celery_tasks import celery_task, traceback_text
from tests.support.wait import wait_for

ROUTE = "/api/user/categorize/senders/batch"


class FakeAI:
    """Answers categorize_sender from a table and records who it was asked about."""

    def __init__(self, answers: dict[str, str | None] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[tuple[str, list[str]]] = []

    def categorize_sender(self, sender: str, messages: Sequence[MailMessage]) -> str | None:
        self.asked.append((sender, [message.subject for message in messages]))
        return self.answers.get(sender)

    def decide_clean(
        self, thread: Sequence[MailMessage], instructions: str | None
    ) -> CleanDecision:
        raise AssertionError("categorize must not ask decide_clean")

    def summarize(self, message: MailMessage) -> str:
        raise AssertionError("categorize must not ask summarize")


@pytest.fixture
def ai(monkeypatch: pytest.MonkeyPatch) -> FakeAI:
    fake = FakeAI()
    monkeypatch.setattr(categorize, "default_ai", lambda: fake)
    return fake


def deliver(
    mailbox: Mailbox, sender: str, subject: str, body: str = "Hello.", **headers: str
) -> str:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mailbox.email
    message["Subject"] = subject
    message["Message-ID"] = make_msgid("categorize")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return str(mailbox.provider().deliver(message))


def newsletter(mailbox: Mailbox, sender: str) -> None:
    for issue in (1, 2):
        deliver(
            mailbox,
            sender,
            f"Issue #{issue}",
            "Ten links for you.",
            List_Unsubscribe=f"<https://letters.test/unsubscribe/{issue}>",
        )


def run_batch(account_id: str, senders: list[str], attempt: int = 0) -> Result:
    data = {"emailAccountId": account_id, "senders": senders}
    delivery = Delivery("test", f"batch-{uuid.uuid4().hex}", attempt)
    return run_job(categorize.categorize_senders_batch, data, delivery)


def categories_of(account_id: str) -> dict[str, str | None]:
    """Sender email -> its category's name (None: uncategorized), for every Sender row."""
    with session_scope() as session:
        rows = session.execute(
            select(Sender.email, Category.name)
            .outerjoin(Category, Category.id == Sender.category_id)
            .where(Sender.email_account_id == account_id)
        ).all()
    return {email: name for email, name in rows}


def category_rows(account_id: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(select(Category.name).where(Category.email_account_id == account_id))
        )


def add_categorized_sender(account_id: str, email: str, category: str = "Work") -> None:
    with session_scope() as session:
        row = Category(email_account_id=account_id, name=category)
        session.add(row)
        session.flush()
        session.add(Sender(email_account_id=account_id, email=email, category_id=row.id))


def published(fake_qstash: Any) -> list[tuple[str, dict[str, Any]]]:
    """(dedup id, JSON body) of every message the producer published to QStash."""
    return [
        (message.headers["upstash-deduplication-id"], json.loads(message.body))
        for message in fake_qstash.messages
    ]


# The job ---------------------------------------------------------------------------


def test_newsletter_and_receipt_senders_are_categorized_without_the_ai(
    mailbox: Mailbox, ai: FakeAI
) -> None:
    newsletter(mailbox, "Letters <weekly@letters.test>")
    deliver(mailbox, "billing@shop.test", "Your receipt #1042", "Total: $42.00")

    result = run_batch(mailbox.account_id, ["weekly@letters.test", "billing@shop.test"])

    assert result.outcome is Outcome.DONE
    assert categories_of(mailbox.account_id) == {
        "weekly@letters.test": "Newsletter",
        "billing@shop.test": "Receipt",
    }
    assert ai.asked == []


def test_a_sender_no_static_rule_settles_goes_to_the_ai(mailbox: Mailbox, ai: FakeAI) -> None:
    deliver(mailbox, "Ann <ann@friends.test>", "Dinner on Friday?", "Shall we?")
    ai.answers["ann@friends.test"] = "Friends"

    run_batch(mailbox.account_id, ["ann@friends.test"])

    assert ai.asked == [("ann@friends.test", ["Dinner on Friday?"])]
    assert categories_of(mailbox.account_id) == {"ann@friends.test": "Friends"}


def test_a_new_category_is_created_once_and_reused(mailbox: Mailbox, ai: FakeAI) -> None:
    for sender in ("a@air.test", "b@rail.test", "c@ship.test"):
        deliver(mailbox, sender, "Your trip", "See you on board.")
    ai.answers.update({"a@air.test": "Travel", "b@rail.test": "Travel", "c@ship.test": "travel"})

    run_batch(mailbox.account_id, ["a@air.test", "b@rail.test"])
    run_batch(mailbox.account_id, ["c@ship.test"])

    assert category_rows(mailbox.account_id) == ["Travel"]
    assert set(categories_of(mailbox.account_id).values()) == {"Travel"}
    assert len(categories_of(mailbox.account_id)) == 3


def test_a_sender_the_ai_cannot_place_stays_uncategorized_but_counts_as_done(
    mailbox: Mailbox, ai: FakeAI, fake_qstash: Any
) -> None:
    deliver(mailbox, "who@mystery.test", "Hm", "...")
    categorize.categorize_senders(mailbox.account_id, ["who@mystery.test"])
    (message,) = fake_qstash.messages

    result = run_batch(mailbox.account_id, json.loads(message.body)["senders"])

    assert result.outcome is Outcome.DONE
    assert categories_of(mailbox.account_id) == {}  # no row, so no placeholder category
    assert category_rows(mailbox.account_id) == []
    assert categorize.progress(mailbox.account_id) == {"total": 1, "completed": 1}


def test_a_redelivered_batch_changes_nothing_and_counts_once(
    mailbox: Mailbox, ai: FakeAI, fake_qstash: Any
) -> None:
    newsletter(mailbox, "weekly@letters.test")
    deliver(mailbox, "ann@friends.test", "Dinner?", "Shall we?")
    ai.answers["ann@friends.test"] = "Friends"
    categorize.categorize_senders(mailbox.account_id, ["weekly@letters.test", "ann@friends.test"])
    (message,) = fake_qstash.messages
    senders = json.loads(message.body)["senders"]

    first = run_batch(mailbox.account_id, senders, attempt=0)
    again = run_batch(mailbox.account_id, senders, attempt=1)

    assert (first.outcome, again.outcome) == (Outcome.DONE, Outcome.DONE)
    assert categories_of(mailbox.account_id) == {
        "weekly@letters.test": "Newsletter",
        "ann@friends.test": "Friends",
    }
    assert sorted(category_rows(mailbox.account_id)) == ["Friends", "Newsletter"]
    assert len(ai.asked) == 1  # the redelivery asked nothing again
    assert categorize.progress(mailbox.account_id) == {"total": 2, "completed": 2}


# The job: entries that are no usable address ---------------------------------------


def test_a_blank_and_a_duplicate_are_left_out_and_the_rest_categorized(
    mailbox: Mailbox, ai: FakeAI
) -> None:
    # The replaced app's producer sent "" for a From line it could not parse.
    newsletter(mailbox, "weekly@letters.test")
    deliver(mailbox, "billing@shop.test", "Your receipt #1042", "Total: $42.00")
    senders = ["weekly@letters.test", "", " Weekly@Letters.TEST ", "billing@shop.test"]

    result = run_batch(mailbox.account_id, senders)

    assert result.outcome is Outcome.DONE
    assert categories_of(mailbox.account_id) == {
        "weekly@letters.test": "Newsletter",
        "billing@shop.test": "Receipt",
    }
    assert result.detail.startswith("2 by rules, 0 by AI")
    assert result.detail.endswith("; 1 unusable sender left out: ''")


def test_the_progress_counts_only_the_usable_senders_of_a_batch(
    mailbox: Mailbox, ai: FakeAI
) -> None:
    newsletter(mailbox, "weekly@letters.test")

    run_batch(mailbox.account_id, ["weekly@letters.test", "", "Ann <ann@b.test>"])

    assert categorize.progress(mailbox.account_id) == {"total": 1, "completed": 1}


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "   ",
        "Ann <ann@friends.test>",
        "ann@friends.test, bob@friends.test",
        "no-at-sign",
        "ann@friends.test\x00",
        "ann\n@friends.test",
        "ann@friends.test\ud800",
        "a" * 320 + "@friends.test",
    ],
    ids=[
        "blank",
        "spaces",
        "display name",
        "two addresses",
        "no @",
        "NUL",
        "line break inside",
        "lone surrogate",
        "longer than the column",
    ],
)
def test_a_batch_of_only_unusable_entries_is_skipped_naming_them(
    entry: str, mailbox: Mailbox, ai: FakeAI
) -> None:
    result = run_batch(mailbox.account_id, [entry, entry])

    assert result.outcome is Outcome.SKIPPED
    assert result.detail.startswith("1 unusable sender left out: ")
    assert result.detail.isprintable()  # NUL, line breaks and surrogates shown escaped
    assert categories_of(mailbox.account_id) == {}
    assert ai.asked == []


def test_an_empty_batch_is_skipped(mailbox: Mailbox, ai: FakeAI) -> None:
    result = run_batch(mailbox.account_id, [])

    assert (result.outcome, result.detail) == (Outcome.SKIPPED, "no senders in the batch")


def test_the_detail_names_a_few_unusable_entries_shortened_and_counts_the_rest(
    mailbox: Mailbox, ai: FakeAI
) -> None:
    senders = ["x" * 100] + [f"bad {number}" for number in range(7)]

    result = run_batch(mailbox.account_id, senders)

    assert result.detail == (
        f"8 unusable senders left out: '{'x' * 39}…', 'bad 0', 'bad 1', 'bad 2', 'bad 3' and 3 more"
    )


def test_a_batch_with_a_blank_sender_answers_200_on_the_route(web: str, mailbox: Mailbox) -> None:
    response = httpx.post(
        web + ROUTE,
        json={"emailAccountId": mailbox.account_id, "senders": ["", "sender2@example.test"]},
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 200, response.text
    assert categories_of(mailbox.account_id) == {"sender2@example.test": "Receipt"}


def test_without_redis_the_job_still_categorizes(
    mailbox: Mailbox, ai: FakeAI, configure: Callable[..., Any]
) -> None:
    newsletter(mailbox, "weekly@letters.test")
    configure(REDIS_URL=None)

    result = run_batch(mailbox.account_id, ["weekly@letters.test"])

    assert result.outcome is Outcome.DONE
    assert categories_of(mailbox.account_id) == {"weekly@letters.test": "Newsletter"}
    assert categorize.progress(mailbox.account_id) == {"total": 0, "completed": 0}


# The producer ----------------------------------------------------------------------


def test_the_producer_publishes_120_senders_as_3_chunks_of_at_most_50(
    mailbox: Mailbox, fake_qstash: Any
) -> None:
    senders = [f"sender{number:03}@many.test" for number in range(120)]

    queued = categorize.categorize_senders(mailbox.account_id, senders)

    chunks = [body["senders"] for _, body in published(fake_qstash)]
    assert queued == categorize.Queued(chunks=3, senders=120, already_categorized=0)
    assert [len(chunk) for chunk in chunks] == [50, 50, 20]
    assert sorted(sender for chunk in chunks for sender in chunk) == senders
    assert {message.route for message in fake_qstash.messages} == {ROUTE}
    assert len({dedup for dedup, _ in published(fake_qstash)}) == 3
    assert categorize.progress(mailbox.account_id) == {"total": 120, "completed": 0}


def test_the_producer_skips_duplicates_and_categorized_senders(
    mailbox: Mailbox, fake_qstash: Any
) -> None:
    add_categorized_sender(mailbox.account_id, "known@work.test")

    queued = categorize.categorize_senders(
        mailbox.account_id, ["new@a.test", " NEW@a.test", "known@work.test", "other@b.test"]
    )

    ((_, body),) = published(fake_qstash)
    assert body == {"emailAccountId": mailbox.account_id, "senders": ["new@a.test", "other@b.test"]}
    assert queued == categorize.Queued(chunks=1, senders=2, already_categorized=1)


def test_producing_the_same_senders_twice_is_deduplicated_and_counted_once(
    mailbox: Mailbox, fake_qstash: Any
) -> None:
    senders = ["a@a.test", "b@b.test"]

    categorize.categorize_senders(mailbox.account_id, senders)
    again = categorize.categorize_senders(mailbox.account_id, list(reversed(senders)))

    assert len(fake_qstash.messages) == 1
    assert again == categorize.Queued(chunks=0, senders=0, already_categorized=0)
    assert categorize.progress(mailbox.account_id) == {"total": 2, "completed": 0}


def test_a_failed_publish_leaves_no_progress_behind(mailbox: Mailbox, fake_qstash: Any) -> None:
    from bridge import PublishError

    fake_qstash.fail_publish = True

    with pytest.raises(PublishError):
        categorize.categorize_senders(mailbox.account_id, ["a@a.test"])

    assert categorize.progress(mailbox.account_id) == {"total": 0, "completed": 0}


def test_the_producer_leaves_out_senders_that_are_no_address_and_counts_them(
    mailbox: Mailbox, fake_qstash: Any
) -> None:
    queued = categorize.categorize_senders(
        mailbox.account_id, ["ok@a.test", "Ann <ann@b.test>", "", "", "ok@a.test"]
    )

    ((_, body),) = published(fake_qstash)
    assert body["senders"] == ["ok@a.test"]
    assert queued == categorize.Queued(chunks=1, senders=1, already_categorized=0, unusable=2)
    assert categorize.progress(mailbox.account_id) == {"total": 1, "completed": 0}


def test_the_producer_given_no_usable_sender_sends_nothing(
    mailbox: Mailbox, fake_qstash: Any
) -> None:
    queued = categorize.categorize_senders(mailbox.account_id, ["", "Ann <ann@b.test>"])

    assert fake_qstash.messages == []
    assert queued == categorize.Queued(chunks=0, senders=0, already_categorized=0, unusable=2)
    assert categorize.progress(mailbox.account_id) == {"total": 0, "completed": 0}


# Invalid payloads are refused for good ------------------------------------------------

INVALID = [
    pytest.param([f"s{number}@many.test" for number in range(51)], id="51 senders"),
    pytest.param(["ok@a.test", 42], id="a non-string sender"),
    pytest.param(["ok@a.test", None], id="a null sender"),
    pytest.param(["x" * (categorize.SENDER_ENTRY_LENGTH + 1)], id="an entry over 4 KB"),
]


@pytest.mark.parametrize("senders", INVALID)
def test_an_invalid_batch_answers_489_naming_senders(web: str, senders: list[Any]) -> None:
    response = httpx.post(
        web + ROUTE,
        json={"emailAccountId": "any", "senders": senders},
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 489
    assert response.headers["upstash-nonretryable-error"] == "true"
    assert "senders" in response.json()["error"]


@pytest.mark.parametrize("senders", INVALID)
def test_an_invalid_batch_fails_on_celery_without_retry(senders: list[Any]) -> None:
    payload = {"emailAccountId": f"acct-{uuid.uuid4().hex}", "senders": senders}

    outcome = celery_task(categorize.categorize_senders_batch).apply(kwargs={"payload": payload})

    assert outcome.failed()
    assert isinstance(outcome.result, JobFailed)
    assert "senders" in str(outcome.result)
    trace = traceback_text(outcome)
    assert trace is not None and "Retry" not in trace


# End to end ------------------------------------------------------------------------


def test_producer_to_celery_worker_categorizes_the_senders(mailbox: Mailbox, worker: Any) -> None:
    # The mailbox fixture holds "Quarterly report" from sender0 and "Your receipt" from
    # sender2; the worker runs the default (offline) AI.
    newsletter(mailbox, "weekly@letters.test")
    senders = ["sender0@example.test", "sender2@example.test", "weekly@letters.test"]

    queued = categorize.categorize_senders(mailbox.account_id, senders)

    assert queued.chunks == 1
    wait_for(
        lambda: categorize.progress(mailbox.account_id) == {"total": 3, "completed": 3},
        timeout=30,
        what="the batch to run on the worker",
    )
    assert categories_of(mailbox.account_id) == {
        "sender0@example.test": "Work",
        "sender2@example.test": "Receipt",
        "weekly@letters.test": "Newsletter",
    }


def test_a_static_verdict_and_an_ai_answer_of_one_name_share_one_category(
    mailbox: Mailbox, ai: FakeAI
) -> None:
    newsletter(mailbox, "weekly@letters.test")
    deliver(mailbox, "x@x.test", "Hi", "Hi.")
    ai.answers["x@x.test"] = "newsletter"

    run_batch(mailbox.account_id, ["weekly@letters.test", "x@x.test"])

    assert category_rows(mailbox.account_id) == ["Newsletter"]
    assert set(categories_of(mailbox.account_id).values()) == {"Newsletter"}
