"""Digests and summaries: items collected once, sent once, nothing stuck PROCESSING."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome
from bridge.store.db import session_scope
from tasks.jobs import digest
from tasks.mail.maildir import MaildirProvider
from tasks.models import (
    Digest,
    DigestItem,
    DigestStatus,
    EmailAccount,
    RuleActionType,
    SummaryFrequency,
    utcnow,
)
from tests.conftest import Mailbox
from tests.support.rules import add_rule
from tests.support.wait import wait_for


def item_payload(mailbox: Mailbox, number: int = 0, /, **message: Any) -> dict[str, Any]:
    fields = {
        "id": f"m{number}",
        "threadId": f"t{number}",
        "from": f"Shop <shop{number}@example.test>",
        "subject": f"Order {number} shipped",
        "content": f"Your order number {number} is on its way to you today.",
        **message,
    }
    return {"emailAccountId": mailbox.account_id, "message": fields}


def deliver(spec: Any, payload: dict[str, Any], delivery_id: str = "d", attempt: int = 0) -> Any:
    return run_job(spec, payload, Delivery("test", delivery_id, attempt))


def count(model: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def sent_digests(mailbox: Mailbox) -> list[Any]:
    mail = mailbox.provider()
    return [mail.get_message(key) for key in sorted(mailbox.folder_keys("Sent"))]


def set_schedule(mailbox: Mailbox, **values: Any) -> None:
    with session_scope() as session:
        session.execute(
            update(EmailAccount).where(EmailAccount.id == mailbox.account_id).values(**values)
        )


def test_ai_digest_adds_one_summarised_item_however_often_delivered(mailbox: Mailbox) -> None:
    results = [deliver(digest.add_to_digest, item_payload(mailbox)) for _ in range(3)]
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.SKIPPED, Outcome.SKIPPED]
    with session_scope() as session:
        (item,) = session.scalars(select(DigestItem)).all()
    assert item.content and "order number 0" in item.content.lower()
    assert count(Digest) == 1


def test_ai_digest_skips_mail_from_the_digest_sender(mailbox: Mailbox) -> None:
    own = f'"{digest.DIGEST_SENDER_NAME}" <{mailbox.email}>'
    result = deliver(digest.add_to_digest, item_payload(mailbox, **{"from": own}))
    assert (result.outcome, count(DigestItem)) == (Outcome.SKIPPED, 0)


def test_ai_digest_skips_a_message_with_nothing_to_summarise(mailbox: Mailbox) -> None:
    result = deliver(digest.add_to_digest, item_payload(mailbox, content="   "))
    assert (result.outcome, count(DigestItem)) == (Outcome.SKIPPED, 0)


def test_ai_digest_payload_errors_name_the_field(mailbox: Mailbox) -> None:
    payload = item_payload(mailbox)
    del payload["message"]["threadId"]
    result = deliver(digest.add_to_digest, payload)
    assert result.outcome is Outcome.FAILED and "message.threadId" in result.detail


def test_resend_digest_sends_one_email_grouped_by_rule_then_closes_the_digest(
    mailbox: Mailbox,
) -> None:
    set_schedule(mailbox, digest_interval_days=1, digest_next_at=utcnow() - timedelta(hours=1))
    for number in range(3):
        deliver(digest.add_to_digest, item_payload(mailbox, number))

    first = deliver(digest.send_digest, {"emailAccountId": mailbox.account_id})
    again = deliver(digest.send_digest, {"emailAccountId": mailbox.account_id})

    assert (first.outcome, again.outcome) == (Outcome.DONE, Outcome.SKIPPED)
    (email,) = sent_digests(mailbox)
    assert email.subject == "Your digest: 3 emails"
    assert digest.is_digest_email(email.sender, mailbox.email)
    with session_scope() as session:
        (row,) = session.scalars(select(Digest)).all()
        contents = set(session.scalars(select(DigestItem.content)))
        account = session.get(EmailAccount, mailbox.account_id)
    assert row.status is DigestStatus.SENT and contents == {None}  # redacted
    assert account is not None and account.digest_next_at is not None
    assert account.digest_next_at > utcnow()


def test_digest_without_items_does_not_stay_processing(mailbox: Mailbox) -> None:
    with session_scope() as session:
        session.add(Digest(email_account_id=mailbox.account_id, status=DigestStatus.PENDING))
    result = deliver(digest.send_digest, {"emailAccountId": mailbox.account_id, "force": True})
    with session_scope() as session:
        (row,) = session.scalars(select(Digest)).all()
    assert (result.outcome, row.status) == (Outcome.SKIPPED, DigestStatus.SENT)
    assert sent_digests(mailbox) == []


def test_failed_send_hands_the_digest_back_then_fails_it_on_the_last_attempt(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver(digest.add_to_digest, item_payload(mailbox))

    def broken(self: Any, mail: Any) -> str:
        raise ConnectionError("relay down")

    monkeypatch.setattr(MaildirProvider, "send", broken)
    payload = {"emailAccountId": mailbox.account_id, "force": True}
    statuses = []
    for attempt in (0, digest.send_digest.retries):
        assert deliver(digest.send_digest, payload, attempt=attempt).outcome is Outcome.RETRY
        with session_scope() as session:
            statuses.append(session.scalars(select(Digest.status)).one())
    assert statuses == [DigestStatus.PENDING, DigestStatus.FAILED]


def test_concurrent_senders_send_the_digest_once(mailbox: Mailbox) -> None:
    deliver(digest.add_to_digest, item_payload(mailbox))
    payload = {"emailAccountId": mailbox.account_id, "force": True}
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []

    def send(number: int) -> None:
        barrier.wait()
        outcomes.append(deliver(digest.send_digest, payload, f"d{number}").outcome)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([Outcome.DONE] + [Outcome.SKIPPED] * 3)
    assert len(sent_digests(mailbox)) == 1


def test_digest_fan_out_enqueues_each_due_account_once(mailbox: Mailbox, fake_inngest: Any) -> None:
    set_schedule(mailbox, digest_interval_days=7, digest_next_at=utcnow() - timedelta(minutes=5))
    assert digest.enqueue_due_digests.body() == {"enqueued": 1}
    (event,) = fake_inngest.events
    assert event["name"] == "inbox-zero/resend.digest"
    assert event["data"] == {"emailAccountId": mailbox.account_id, "force": False}


def test_digest_fan_out_skips_accounts_not_due(mailbox: Mailbox, fake_inngest: Any) -> None:
    set_schedule(mailbox, digest_interval_days=7, digest_next_at=utcnow() + timedelta(days=1))
    assert digest.enqueue_due_digests.body() == {"enqueued": 0}


def test_summary_fan_out_sends_the_account_id_not_the_email(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    set_schedule(mailbox, summary_frequency=SummaryFrequency.DAILY)
    assert digest.enqueue_due_summaries.body() == {"enqueued": 1}
    assert fake_inngest.events[0]["data"] == {"emailAccountId": mailbox.account_id}


def test_a_digest_sent_by_a_run_that_died_before_saying_so_is_not_sent_again_with_newer_items(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_schedule(mailbox, digest_interval_days=7, digest_next_at=utcnow() - timedelta(hours=1))
    payload = {"emailAccountId": mailbox.account_id}  # when due, as the fan-out sends it
    deliver(digest.add_to_digest, item_payload(mailbox, 0))
    finish = digest._finish

    def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database went away after the send")

    monkeypatch.setattr(digest, "_finish", lost)
    assert deliver(digest.send_digest, payload, "first").outcome is Outcome.RETRY
    monkeypatch.setattr(digest, "_finish", finish)
    deliver(digest.add_to_digest, item_payload(mailbox, 1))  # a new digest meanwhile
    with session_scope() as session:  # the dead run's lease runs out
        session.execute(
            update(Digest)
            .where(Digest.status == DigestStatus.PROCESSING)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )

    # The takeover sends the dead run's digest alone, leaving the schedule where it was,
    # so the next delivery, still due, sends the newer one.
    outcomes = [deliver(digest.send_digest, payload, f"later-{n}").outcome for n in range(3)]

    assert outcomes == [Outcome.DONE, Outcome.DONE, Outcome.SKIPPED]
    emails = sent_digests(mailbox)
    assert [email.subject for email in emails] == ["Your digest: 1 email"] * 2
    assert sorted(("Order 0" in e.body, "Order 1" in e.body) for e in emails) == [
        (False, True),
        (True, False),
    ]


def test_a_first_summary_whose_record_failed_is_not_sent_again(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_schedule(mailbox, summary_frequency=SummaryFrequency.WEEKLY)
    payload = {"emailAccountId": mailbox.account_id}
    deliver(digest.send_summary, payload)
    set_schedule(mailbox, last_summary_at=None)  # as if its record had not been written
    later = utcnow() + timedelta(minutes=5)
    monkeypatch.setattr(digest, "utcnow", lambda: later)  # the retry comes minutes later

    deliver(digest.send_summary, payload, attempt=1)

    assert len(sent_digests(mailbox)) == 1


def test_summary_is_sent_once_per_period(mailbox: Mailbox) -> None:
    set_schedule(mailbox, summary_frequency=SummaryFrequency.WEEKLY)
    payload = {"emailAccountId": mailbox.account_id}
    outcomes = [deliver(digest.send_summary, payload).outcome for _ in range(2)]
    assert outcomes == [Outcome.DONE, Outcome.SKIPPED]
    (summary,) = sent_digests(mailbox)
    assert summary.subject == "Your inbox summary"
    assert "3 unread threads" in summary.body


def test_a_summary_named_by_email_in_any_case_reaches_the_account(mailbox: Mailbox) -> None:
    # The replaced app's fan-out sent {"email": ...}, not {"emailAccountId": ...}.
    set_schedule(mailbox, summary_frequency=SummaryFrequency.DAILY)

    result = deliver(digest.send_summary, {"email": mailbox.email.upper()})

    assert result.outcome is Outcome.DONE
    (summary,) = sent_digests(mailbox)
    assert summary.subject == "Your inbox summary"
    with session_scope() as session:
        account = session.get(EmailAccount, mailbox.account_id)
    assert account is not None and account.last_summary_at is not None


def test_a_summary_for_an_email_no_account_has_is_skipped_naming_it(mailbox: Mailbox) -> None:
    set_schedule(mailbox, summary_frequency=SummaryFrequency.DAILY)

    result = deliver(digest.send_summary, {"email": "gone@example.test"})

    assert result.outcome is Outcome.SKIPPED
    assert "gone@example.test" in result.detail
    assert sent_digests(mailbox) == []


def test_a_summary_naming_both_goes_to_the_account_id(mailbox: Mailbox) -> None:
    set_schedule(mailbox, summary_frequency=SummaryFrequency.DAILY)
    payload = {"emailAccountId": mailbox.account_id, "email": "gone@example.test"}

    result = deliver(digest.send_summary, payload)

    assert result.outcome is Outcome.DONE
    assert len(sent_digests(mailbox)) == 1


@pytest.mark.parametrize(
    "payload",
    [{}, {"emailAccountId": None}, {"email": None}],
    ids=["neither", "a null id", "a null email"],
)
def test_a_summary_naming_no_account_is_invalid_naming_the_account_id_field(
    payload: dict[str, Any],
) -> None:
    result = deliver(digest.send_summary, payload)

    assert result.outcome is Outcome.FAILED
    assert result.detail == (
        "invalid payload: emailAccountId: required (or email, as the replaced app sent)"
    )


def test_digest_rule_fills_a_digest_that_is_delivered_into_the_maildir(
    mailbox: Mailbox, worker: Any
) -> None:
    from tasks.accounts import account_or_fail
    from tasks.rules import apply_rules

    add_rule(
        mailbox.account_id, "Receipts", [{"type": RuleActionType.DIGEST}], subject_pattern="receipt"
    )
    mail = mailbox.provider()
    message = mail.get_message(mailbox.keys[2])  # "Your receipt"
    apply_rules(account_or_fail(mailbox.account_id), message, mail)

    wait_for(lambda: count(DigestItem) == 1, timeout=30, what="ai.digest to run on Celery")
    result = deliver(digest.send_digest, {"emailAccountId": mailbox.account_id, "force": True})
    assert result.outcome is Outcome.DONE
    (email,) = sent_digests(mailbox)
    assert "Receipts" in email.body and "Your receipt" in email.body


def test_a_digest_rule_publishes_the_message_by_its_ids_only(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No queue (Inngest's event history, QStash's log) may keep a copy of the mail.
    from tasks.accounts import account_or_fail
    from tasks.rules import apply, apply_rules

    published: list[dict[str, Any]] = []
    monkeypatch.setattr(
        apply, "enqueue", lambda spec, payload, **_: published.append(payload.to_wire())
    )
    add_rule(
        mailbox.account_id, "Receipts", [{"type": RuleActionType.DIGEST}], subject_pattern="receipt"
    )
    mail = mailbox.provider()
    message = mail.get_message(mailbox.keys[2])

    apply_rules(account_or_fail(mailbox.account_id), message, mail)

    assert [p["message"] for p in published] == [{"id": message.id, "threadId": message.thread_id}]


def test_ai_digest_reads_a_message_named_by_its_ids_from_the_mailbox(mailbox: Mailbox) -> None:
    key = mailbox.keys[2]  # "Your receipt"
    payload = {"emailAccountId": mailbox.account_id, "message": {"id": key, "threadId": key}}

    result = deliver(digest.add_to_digest, payload)

    assert result.outcome is Outcome.DONE
    with session_scope() as session:
        (item,) = session.scalars(select(DigestItem)).all()
    assert (item.subject, item.message_id) == ("Your receipt", key)
    assert item.content and "receipt" in item.content.lower()


def test_ai_digest_skips_a_message_named_by_its_ids_that_is_gone(mailbox: Mailbox) -> None:
    payload = {"emailAccountId": mailbox.account_id, "message": {"id": "gone", "threadId": "gone"}}

    result = deliver(digest.add_to_digest, payload)

    assert (result.outcome, result.detail) == (Outcome.SKIPPED, "message no longer exists")
