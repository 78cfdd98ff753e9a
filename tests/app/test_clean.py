"""Inbox cleaning (docs/JOBS.md): the keep/done rules, applying them, the producer, and
the whole chain on a real Celery worker. Mail is a real Maildir; the AI is a fake where
a test must know what it says (and refuses to be asked where a static rule decides)."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bridge.celery.tasks import JobFailed
from bridge.core import run_job
from bridge.outcome import Delivery, Outcome, Result
from bridge.store import redis_store
from bridge.store.db import session_scope
from tasks import redis_keys
from tasks.ai import CleanDecision
from tasks.jobs import clean
from tasks.jobs.clean_progress import set_status
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import MailMessage, OutgoingMail
from tasks.models import (
    CleanAction,
    CleanupJob,
    CleanupJobStatus,
    EmailAccount,
    MailProviderKind,
)
from tests.conftest import Mailbox
from tests.support import env
from tests.support.celery_tasks import celery_task, traceback_text
from tests.support.wait import wait_for

OLD = datetime.now(UTC) - timedelta(days=40)
NEWSLETTER_HEADERS = {"List-Unsubscribe": "<https://news.example.test/unsubscribe>"}


# Helpers ---------------------------------------------------------------------------
def deliver(
    mail: MaildirProvider,
    *,
    sender: str = "alice@example.test",
    subject: str = "Catching up",
    body: str = "How have you been? Let me know when you are around.",
    date: datetime = OLD,
    headers: dict[str, str] | None = None,
    labels: Sequence[str] = (),
    attachment: bool = False,
) -> MailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.address
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = make_msgid("clean")
    for name, value in (headers or {}).items():
        message[name] = value
    if labels:
        message["X-Keywords"] = ", ".join(labels)
    message.set_content(body)
    if attachment:
        message.add_attachment(
            b"%PDF-1.4", maintype="application", subtype="pdf", filename="report.pdf"
        )
    return mail.get_message(mail.deliver(message))


def flag(mail: MaildirProvider, message: MailMessage) -> None:
    """Star it the Maildir way: the "F" flag in the file name."""
    box = mail.folder(message.folder)
    stored = box.get_message(message.id)
    stored.set_subdir("cur")
    stored.add_flag("F")
    box[message.id] = stored


def raw_labels(mail: MaildirProvider, message_id: str) -> list[str]:
    """The X-Keywords header as stored: a label added twice would show twice here."""
    folder = mail.get_message(message_id).folder
    value = str(mail.folder(folder).get_message(message_id).get("X-Keywords", ""))
    return sorted(part.strip() for part in value.split(",") if part.strip())


def new_job(account_id: str, action: CleanAction = CleanAction.ARCHIVE) -> str:
    row = CleanupJob(email_account_id=account_id, action=action, days_old=30, skips={})
    with session_scope() as session:
        session.add(row)
    return row.id


def microsoft_account(tmp_path: Path) -> tuple[str, MaildirProvider]:
    """A Microsoft account whose mail is a Maildir (no Graph adapter exists)."""
    email = f"ms-{uuid.uuid4().hex[:6]}@example.test"
    path = tmp_path / "outlook"
    row = EmailAccount(
        email=email,
        provider=MailProviderKind.MICROSOFT,
        provider_settings={"path": str(path.resolve())},
    )
    with session_scope() as session:
        session.add(row)
    return row.id, MaildirProvider(path, email)


def delivery() -> Delivery:
    return Delivery("test", uuid.uuid4().hex, 0)


def process(
    account_id: str,
    thread_id: str,
    job_id: str,
    *,
    skips: dict[str, Any] | None = None,
    instructions: str | None = None,
) -> Result:
    payload: dict[str, Any] = {
        "emailAccountId": account_id,
        "threadId": thread_id,
        "jobId": job_id,
        "action": "ARCHIVE",
        "markedDoneLabelId": "Done",
        "processedLabelId": "Processed",
        "skips": skips or {},
    }
    if instructions is not None:
        payload["instructions"] = instructions
    return run_job(clean.process_thread, payload, delivery())


def apply(
    job: Any, account_id: str, thread_id: str, job_id: str, *, mark_done: bool, action: str
) -> Result:
    payload = {
        "emailAccountId": account_id,
        "threadId": thread_id,
        "jobId": job_id,
        "markDone": mark_done,
        "action": action,
        "markedDoneLabelId": "Done",
        "processedLabelId": "Processed",
    }
    return run_job(job, payload, delivery())


def published(fake_qstash: Any) -> list[tuple[str, dict[str, Any]]]:
    """(route, body) of each message published to the fake QStash."""
    return [(message.route, json.loads(message.body)) for message in fake_qstash.messages]


def decided(fake_qstash: Any, mailbox: Mailbox, job_id: str, thread_id: str) -> tuple[bool, str]:
    """The markDone clean.process published, and the rule it recorded for the thread."""
    ((route, body),) = published(fake_qstash)
    assert route == "/api/clean/gmail"
    state = clean.thread_state(mailbox.account_id, job_id, thread_id)
    assert state["markDone"] == ("true" if body["markDone"] else "false")
    return body["markDone"], state["rule"]


class FakeAI:
    """Answers decide_clean with `answer`; with None it fails the test if asked."""

    def __init__(self, answer: bool | None = None) -> None:
        self.answer = answer
        self.asked: list[tuple[list[str], str | None]] = []

    def categorize_sender(self, sender: str, messages: Sequence[MailMessage]) -> str | None:
        return None

    def decide_clean(
        self, thread: Sequence[MailMessage], instructions: str | None
    ) -> CleanDecision:
        self.asked.append(([message.id for message in thread], instructions))
        if self.answer is None:
            raise AssertionError("the AI was asked, but a static rule should have decided")
        return CleanDecision(self.answer, "the fake AI said so")

    def summarize(self, message: MailMessage) -> str:
        return ""


@pytest.fixture
def ai(monkeypatch: pytest.MonkeyPatch) -> FakeAI:
    fake = FakeAI()
    monkeypatch.setattr(clean, "default_ai", lambda: fake)
    return fake


@pytest.fixture
def mail(mailbox: Mailbox) -> MaildirProvider:
    provider: MaildirProvider = mailbox.provider()
    return provider


@pytest.fixture
def job_id(mailbox: Mailbox) -> str:
    return new_job(mailbox.account_id)


# clean.process: one rule each ----------------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "flagged"),
    [(["Starred"], False), (["STARRED"], False), ([], True)],
    ids=["Starred label", "STARRED label", "Maildir F flag"],
)
def test_starred_thread_is_kept(
    labels: list[str],
    flagged: bool,
    mailbox: Mailbox,
    mail: MaildirProvider,
    job_id: str,
    ai: FakeAI,
    fake_qstash: Any,
) -> None:
    message = deliver(mail, headers=NEWSLETTER_HEADERS, labels=labels)
    if flagged:
        flag(mail, message)

    process(mailbox.account_id, message.thread_id, job_id, skips={"starred": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "starred")


def test_thread_i_replied_to_is_kept(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(mail, headers=NEWSLETTER_HEADERS)
    mail.send(
        OutgoingMail(
            to=message.sender,
            subject="Re: hi",
            body="Thanks!",
            in_reply_to=message.message_id_header,
        )
    )

    process(mailbox.account_id, message.thread_id, job_id, skips={"conversation": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "conversation")


def test_thread_with_an_attachment_is_kept(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(mail, headers=NEWSLETTER_HEADERS, attachment=True)

    process(mailbox.account_id, message.thread_id, job_id, skips={"attachment": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "attachment")


def test_receipt_is_kept(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(
        mail,
        sender="receipts@shop.example.test",
        subject="Your receipt #1042",
        body="Thanks for your order. Total: $42.00",
        headers=NEWSLETTER_HEADERS,  # shops add unsubscribe links to receipts too
    )

    process(mailbox.account_id, message.thread_id, job_id, skips={"receipt": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "receipt")


def invitation(mail: MaildirProvider, starts: datetime) -> MailMessage:
    return deliver(
        mail,
        sender="carol@example.test",
        subject="Invitation: Planning",
        body="BEGIN:VCALENDAR\nBEGIN:VEVENT\n"
        f"DTSTART:{starts:%Y%m%dT%H%M%SZ}\nSUMMARY:Planning\nEND:VEVENT\nEND:VCALENDAR\n",
    )


def test_invitation_to_a_past_event_is_done(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = invitation(mail, datetime.now(UTC) - timedelta(days=3))

    process(mailbox.account_id, message.thread_id, job_id, skips={"calendar": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, "calendar")


def test_invitation_to_a_future_event_is_kept(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = invitation(mail, datetime.now(UTC) + timedelta(days=3))

    process(mailbox.account_id, message.thread_id, job_id, skips={"calendar": True})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "calendar")


@pytest.mark.parametrize(
    ("sender", "headers", "rule"),
    [
        ("updates@shop.example.test", NEWSLETTER_HEADERS, "unsubscribe"),
        ("newsletter@shop.example.test", {}, "newsletter"),
    ],
    ids=["unsubscribe link", "newsletter sender"],
)
def test_newsletter_is_done(
    sender: str,
    headers: dict[str, str],
    rule: str,
    mailbox: Mailbox,
    mail: MaildirProvider,
    job_id: str,
    ai: FakeAI,
    fake_qstash: Any,
) -> None:
    message = deliver(mail, sender=sender, headers=headers)

    process(mailbox.account_id, message.thread_id, job_id)

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, rule)


@pytest.mark.parametrize(
    "label", ["CATEGORY_PROMOTIONS", "CATEGORY_SOCIAL", "CATEGORY_UPDATES", "CATEGORY_FORUMS"]
)
def test_bulk_mail_category_is_done(
    label: str, mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(mail, labels=[label])

    process(mailbox.account_id, message.thread_id, job_id)

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, "category")


def test_the_ai_decides_what_no_rule_settles(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    ai.answer = True
    message = deliver(mail)

    process(mailbox.account_id, message.thread_id, job_id, instructions="archive old chats")

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, "ai")
    assert ai.asked == [([message.id], "archive old chats")]
    state = clean.thread_state(mailbox.account_id, job_id, message.thread_id)
    assert state["reason"] == "the fake AI said so"


def test_a_keep_rule_applies_only_when_its_skip_is_set(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(mail, headers=NEWSLETTER_HEADERS, labels=["Starred"])

    process(mailbox.account_id, message.thread_id, job_id, skips={"starred": False})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, "unsubscribe")


# clean.process: the replaced app's payloads ---------------------------------------------
@pytest.mark.parametrize(
    "skips",
    [{"starred": None}, {}, dict.fromkeys(clean.Skips.model_fields)],
    ids=["starred null", "starred absent", "every skip null"],
)
def test_a_null_or_absent_skip_does_not_skip(
    skips: dict[str, Any],
    mailbox: Mailbox,
    mail: MaildirProvider,
    job_id: str,
    ai: FakeAI,
    fake_qstash: Any,
) -> None:
    # The replaced app's consumer read null and absent as false: the later rules decide.
    message = deliver(mail, headers=NEWSLETTER_HEADERS, labels=["Starred"])

    result = process(mailbox.account_id, message.thread_id, job_id, skips=skips)

    assert result.outcome is Outcome.DONE
    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (True, "unsubscribe")


def test_a_null_calendar_skip_leaves_an_invitation_to_the_later_rules(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    ai.answer = False
    message = invitation(mail, datetime.now(UTC) + timedelta(days=3))

    process(mailbox.account_id, message.thread_id, job_id, skips={"calendar": None})

    assert decided(fake_qstash, mailbox, job_id, message.thread_id) == (False, "ai")


@pytest.mark.parametrize("value", ["yes", "true", 3, 1, [], {}])
def test_a_skip_that_is_not_a_boolean_is_refused_naming_it(
    value: Any, mailbox: Mailbox, mail: MaildirProvider, job_id: str, fake_qstash: Any
) -> None:
    message = deliver(mail)

    result = process(mailbox.account_id, message.thread_id, job_id, skips={"starred": value})

    assert result.outcome is Outcome.FAILED
    assert "skips.starred: " in result.detail
    assert published(fake_qstash) == []


def test_blank_instructions_reach_the_ai_as_none(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    ai.answer = False
    message = deliver(mail)

    process(mailbox.account_id, message.thread_id, job_id, instructions="")

    assert ai.asked == [([message.id], None)]


# clean.process: recording and publishing -----------------------------------------------
def test_process_records_the_decision_with_a_ttl_then_publishes_clean_gmail(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    message = deliver(mail, headers=NEWSLETTER_HEADERS)

    result = process(mailbox.account_id, message.thread_id, job_id)

    assert result.outcome is Outcome.DONE
    ((route, body),) = published(fake_qstash)
    assert route == "/api/clean/gmail"
    assert body == {
        "emailAccountId": mailbox.account_id,
        "threadId": message.thread_id,
        "jobId": job_id,
        "markDone": True,
        "action": "ARCHIVE",
        "markedDoneLabelId": "Done",
        "processedLabelId": "Processed",
    }
    state = clean.thread_state(mailbox.account_id, job_id, message.thread_id)
    assert (state["status"], state["subject"]) == ("applying", "Catching up")
    key = redis_store.key(
        redis_keys.CLEAN_THREAD, f"{mailbox.account_id}:{job_id}:{message.thread_id}"
    )
    assert 0 < redis_store.client().ttl(key) <= clean.STATE_TTL_SECONDS


def test_redelivered_process_keeps_the_first_decision_and_publishes_once(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, ai: FakeAI, fake_qstash: Any
) -> None:
    ai.answer = True
    message = deliver(mail)
    process(mailbox.account_id, message.thread_id, job_id)
    ai.answer = False  # an AI may well answer differently the second time

    process(mailbox.account_id, message.thread_id, job_id)

    assert len(ai.asked) == 1
    assert [body["markDone"] for _, body in published(fake_qstash)] == [True]  # deduplicated


def test_process_sends_microsoft_accounts_to_clean_outlook(
    tmp_path: Path, ai: FakeAI, fake_qstash: Any
) -> None:
    account_id, outlook = microsoft_account(tmp_path)
    message = deliver(outlook, headers=NEWSLETTER_HEADERS)

    process(account_id, message.thread_id, new_job(account_id))

    ((route, body),) = published(fake_qstash)
    assert (route, body["markDone"]) == ("/api/clean/outlook", True)


# clean.gmail and clean.outlook ------------------------------------------------------------
@pytest.fixture
def conversation(mail: MaildirProvider) -> tuple[MailMessage, str]:
    """An unread inbox message and the user's reply to it (in Sent): one thread."""
    message = deliver(mail)
    reply = mail.send(
        OutgoingMail(
            to=message.sender, subject="Re: hi", body="Soon!", in_reply_to=message.message_id_header
        )
    )
    return message, reply


def cleanup_rows(job_id: str) -> list[tuple[str, bool, bool]]:
    return [(row.thread_id, row.archived, row.mark_done) for row in clean.cleaned_threads(job_id)]


def test_gmail_archives_and_labels_a_thread_marked_done(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, conversation: tuple[MailMessage, str]
) -> None:
    message, reply = conversation

    result = apply(
        clean.apply_gmail,
        mailbox.account_id,
        message.thread_id,
        job_id,
        mark_done=True,
        action="ARCHIVE",
    )

    assert result.outcome is Outcome.DONE
    assert mail.get_message(message.id).folder == "Archive"
    assert mail.get_message(reply).folder == "Sent"  # the user's reply stays where it is
    assert raw_labels(mail, message.id) == raw_labels(mail, reply) == ["Done", "Processed"]
    assert cleanup_rows(job_id) == [(message.thread_id, True, True)]
    assert clean.thread_state(mailbox.account_id, job_id, message.thread_id)["status"] == (
        "completed"
    )


def test_gmail_only_labels_a_thread_kept(
    mailbox: Mailbox, mail: MaildirProvider, job_id: str, conversation: tuple[MailMessage, str]
) -> None:
    message, _ = conversation

    apply(
        clean.apply_gmail,
        mailbox.account_id,
        message.thread_id,
        job_id,
        mark_done=False,
        action="ARCHIVE",
    )

    kept = mail.get_message(message.id)
    assert (kept.folder, kept.read) == ("INBOX", False)
    assert raw_labels(mail, message.id) == ["Processed"]
    assert cleanup_rows(job_id) == [(message.thread_id, False, False)]


def test_mark_read_marks_read_instead_of_archiving(
    mailbox: Mailbox, mail: MaildirProvider, conversation: tuple[MailMessage, str]
) -> None:
    message, _ = conversation
    job_id = new_job(mailbox.account_id, CleanAction.MARK_READ)

    apply(
        clean.apply_gmail,
        mailbox.account_id,
        message.thread_id,
        job_id,
        mark_done=True,
        action="MARK_READ",
    )

    done = mail.get_message(message.id)
    assert (done.folder, done.read) == ("INBOX", True)
    assert raw_labels(mail, message.id) == ["Done", "Processed"]
    assert cleanup_rows(job_id) == [(message.thread_id, False, True)]


def fail_once(error: Exception) -> Callable[..., Any]:
    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        failed: list[bool] = []

        def call(*args: Any, **kwargs: Any) -> Any:
            if not failed:
                failed.append(True)
                raise error
            return original(*args, **kwargs)

        return call

    return wrap


@pytest.mark.parametrize("failing", ["archive, after labelling", "status, after recording"])
def test_redelivered_gmail_records_one_row_and_labels_once(
    failing: str,
    mailbox: Mailbox,
    mail: MaildirProvider,
    job_id: str,
    conversation: tuple[MailMessage, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message, _ = conversation
    if failing.startswith("archive"):
        patched = fail_once(OSError("disk hiccup"))(MaildirProvider.archive)
        monkeypatch.setattr(MaildirProvider, "archive", patched)
    else:
        patched = fail_once(redis.ConnectionError("redis went away"))(set_status)
        monkeypatch.setattr(clean, "_set_status", patched)

    outcomes = [
        apply(
            clean.apply_gmail,
            mailbox.account_id,
            message.thread_id,
            job_id,
            mark_done=True,
            action="ARCHIVE",
        ).outcome
        for _ in range(4)
    ]

    assert outcomes[0] is Outcome.RETRY
    assert Outcome.RETRY not in outcomes[1:]
    assert cleanup_rows(job_id) == [(message.thread_id, True, True)]
    assert raw_labels(mail, message.id) == ["Done", "Processed"]
    assert mail.get_message(message.id).folder == "Archive"
    assert clean.thread_state(mailbox.account_id, job_id, message.thread_id)["status"] == (
        "completed"
    )


def test_outlook_moves_each_message_of_the_conversation_and_applies_categories(
    tmp_path: Path,
) -> None:
    account_id, outlook = microsoft_account(tmp_path)
    first = deliver(outlook, subject="Plans")
    follow_up = deliver(
        outlook,
        subject="Re: Plans",
        date=OLD + timedelta(hours=1),
        headers={"References": first.message_id_header},
    )
    job_id = new_job(account_id)

    result = apply(
        clean.apply_outlook, account_id, first.thread_id, job_id, mark_done=True, action="ARCHIVE"
    )

    assert result.outcome is Outcome.DONE
    assert outlook.folder_keys("Archive") == {first.id, follow_up.id}
    assert outlook.folder_keys("INBOX") == set()
    assert (
        raw_labels(outlook, first.id)
        == raw_labels(outlook, follow_up.id)
        == [
            "Done",
            "Processed",
        ]
    )
    assert cleanup_rows(job_id) == [(first.thread_id, True, True)]


# Bad payloads ---------------------------------------------------------------------------
BAD_ACTION = {
    "emailAccountId": "acct",
    "threadId": "t1",
    "jobId": "j1",
    "action": "DELETE",
    "markedDoneLabelId": "Done",
    "processedLabelId": "Processed",
    "skips": {},
}


def test_bad_action_answers_489_naming_action_on_the_route(web: str) -> None:
    response = httpx.post(
        web + "/api/clean",
        json=BAD_ACTION,
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert "action" in response.json()["error"]


def test_a_non_boolean_skip_answers_489_naming_it_on_the_route(web: str) -> None:
    response = httpx.post(
        web + "/api/clean",
        json={**BAD_ACTION, "action": "ARCHIVE", "skips": {"starred": "yes"}},
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 489
    assert "skips.starred" in response.json()["error"]


def test_bad_action_fails_on_celery_without_retry() -> None:
    outcome = celery_task(clean.process_thread).apply(kwargs={"payload": BAD_ACTION})

    assert outcome.failed()
    assert isinstance(outcome.result, JobFailed)
    assert "action" in str(outcome.result)
    trace = traceback_text(outcome)
    assert trace is not None and "Retry" not in trace


# The producer ---------------------------------------------------------------------------
@pytest.fixture
def old_threads(mail: MaildirProvider) -> list[str]:
    """60 old threads (the mailbox fixture's 3 messages are recent: mtime, no Date)."""
    return [
        deliver(mail, subject=f"Old {n}", date=OLD - timedelta(minutes=n)).thread_id
        for n in range(60)
    ]


@pytest.fixture
def publishes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The thread ids of each enqueue_many call: duplicates show here even where a
    provider's deduplication would hide them."""
    # The module the producer publishes from (its own name for enqueue_many).
    module = importlib.import_module(clean.clean_inbox.__module__)
    calls: list[list[str]] = []
    original = module.enqueue_many

    def spy(job: Any, payloads: Sequence[Any], **options: Any) -> Any:
        calls.append([payload.thread_id for payload in payloads])
        return original(job, payloads, **options)

    monkeypatch.setattr(module, "enqueue_many", spy)
    yield calls


def test_producer_follows_page_tokens_and_queues_each_old_thread_once(
    mailbox: Mailbox, old_threads: list[str], publishes: list[list[str]], fake_qstash: Any
) -> None:
    cleanup = clean.clean_inbox(mailbox.account_id, action="ARCHIVE", days_old=30)

    assert [len(page) for page in publishes] == [25, 25, 10]
    queued = [thread for page in publishes for thread in page]
    assert sorted(queued) == sorted(old_threads)  # each once, and none of the recent ones
    assert cleanup.threads_queued == 60
    assert {body["threadId"] for _, body in published(fake_qstash)} == set(old_threads)
    assert {route for route, _ in published(fake_qstash)} == {"/api/clean"}


def test_a_run_whose_pages_cannot_be_queued_is_closed_as_failed(
    mailbox: Mailbox, old_threads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(clean.clean_inbox.__module__)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the broker refused the publish")

    monkeypatch.setattr(module, "enqueue_many", refused)
    with pytest.raises(ConnectionError):
        clean.clean_inbox(mailbox.account_id, action="ARCHIVE", days_old=30)

    with session_scope() as session:
        (run,) = session.query(CleanupJob).filter_by(email_account_id=mailbox.account_id).all()
    assert (run.status, run.threads_queued) == (CleanupJobStatus.FAILED, 0)


ALL_SIX = {"reply", "starred", "calendar", "receipt", "attachment", "conversation"}


def test_the_producer_writes_every_skip_with_the_app_defaults(
    mailbox: Mailbox, mail: MaildirProvider, fake_qstash: Any
) -> None:
    deliver(mail)

    cleanup = clean.clean_inbox(mailbox.account_id, action="ARCHIVE", days_old=30)

    ((_, body),) = published(fake_qstash)
    assert body["skips"] == {
        "reply": True,
        "starred": True,
        "calendar": True,
        "receipt": False,
        "attachment": False,
        "conversation": False,
    }
    assert body["skips"] == clean.DEFAULT_SKIPS.to_wire()
    assert cleanup.skips == body["skips"]


def test_the_producer_writes_every_skip_of_the_skips_it_is_given(
    mailbox: Mailbox, mail: MaildirProvider, fake_qstash: Any
) -> None:
    deliver(mail)
    skips = clean.DEFAULT_SKIPS.model_copy(update={"starred": False, "receipt": True})

    clean.clean_inbox(mailbox.account_id, action="ARCHIVE", days_old=30, skips=skips)

    ((_, body),) = published(fake_qstash)
    assert set(body["skips"]) == ALL_SIX
    assert (body["skips"]["starred"], body["skips"]["receipt"]) == (False, True)


def test_the_producer_sends_blank_instructions_as_none(
    mailbox: Mailbox, mail: MaildirProvider, fake_qstash: Any
) -> None:
    deliver(mail)

    cleanup = clean.clean_inbox(mailbox.account_id, action="ARCHIVE", days_old=30, instructions=" ")

    ((_, body),) = published(fake_qstash)
    assert "instructions" not in body
    assert cleanup.instructions is None


# End to end -----------------------------------------------------------------------------
def test_clean_inbox_on_the_worker_archives_exactly_what_was_decided(
    mailbox: Mailbox, mail: MaildirProvider, worker: Any
) -> None:
    done = [
        deliver(mail, sender="updates@shop.example.test", headers=NEWSLETTER_HEADERS),
        deliver(mail, sender="bob@example.test", labels=["CATEGORY_PROMOTIONS"]),
        # Old automated mail nobody answered: the offline AI's call.
        deliver(
            mail,
            sender="no-reply@service.example.test",
            subject="Password changed",
            body="Your password was changed.",
        ),
    ]
    starred = deliver(mail, sender="news@paper.example.test", headers=NEWSLETTER_HEADERS)
    flag(mail, starred)
    kept = [
        starred,
        deliver(
            mail,
            sender="receipts@shop.example.test",
            subject="Your receipt #7",
            body="Total: $9.00",
        ),
        deliver(mail, sender="alice@example.test"),  # a person wrote it: the AI keeps it
    ]

    cleanup = clean.clean_inbox(
        mailbox.account_id,
        action="ARCHIVE",
        days_old=30,
        skips=clean.DEFAULT_SKIPS.model_copy(update={"receipt": True}),  # starred kept too
    )

    assert cleanup.threads_queued == 6
    wait_for(
        lambda: len(clean.cleaned_threads(cleanup.id)) == 6,
        timeout=60,
        what="the six threads to be cleaned",
    )
    assert mail.folder_keys("Archive") == {message.id for message in done}
    assert mail.folder_keys("INBOX") == {m.id for m in kept} | set(mailbox.keys)
    for message in done:
        assert {"Done", "Processed"} <= set(raw_labels(mail, message.id))
    for message in kept:
        assert "Done" not in raw_labels(mail, message.id)
        assert "Processed" in raw_labels(mail, message.id)
    assert len(clean.cleaned_threads(cleanup.id)) == 6  # still: no late duplicate
