"""The rules engine: static conditions decide, the first matching rule acts, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.store.db import session_scope
from tasks.mail.port import MailMessage
from tasks.models import (
    ActionStatus,
    Category,
    EmailAccount,
    ExecutedAction,
    ExecutedRule,
    LogicalOperator,
    PatternKind,
    Rule,
    RuleActionType,
    ScheduledAction,
    Sender,
    utcnow,
)
from tasks.rules import apply_rules, rule_matches
from tests.conftest import Mailbox
from tests.support.rules import add_rule
from tests.support.wait import wait_for

MESSAGE = MailMessage(
    id="m1",
    thread_id="t1",
    sender="Weekly News <news@paper.example>",
    to="me@example.test",
    subject="Your weekly digest #42",
    body="Top stories of the week.",
    folder="INBOX",
    read=False,
)


def rule(**fields: Any) -> Rule:
    defaults: dict[str, Any] = {
        "name": "r",
        "enabled": True,
        "position": 0,
        "pattern_kind": PatternKind.CONTAINS,
        "operator": LogicalOperator.AND,
    }
    return Rule(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("fields", "matches"),
    [
        ({"from_pattern": "paper.example"}, True),
        ({"from_pattern": "PAPER.EXAMPLE"}, True),
        ({"subject_pattern": "invoice"}, False),
        ({"body_pattern": "top stories"}, True),
        ({"to_pattern": "me@"}, True),
        ({"subject_pattern": r"digest #\d+", "pattern_kind": PatternKind.REGEX}, True),
        ({"subject_pattern": r"digest #[a-z]+$", "pattern_kind": PatternKind.REGEX}, False),
        ({"from_pattern": "paper", "subject_pattern": "invoice"}, False),
        (
            {"from_pattern": "paper", "subject_pattern": "invoice", "operator": LogicalOperator.OR},
            True,
        ),
        ({"sender_category": "Newsletter"}, True),
        ({"sender_category": "Receipt"}, False),
        ({}, False),
        ({"subject_pattern": "([", "pattern_kind": PatternKind.REGEX}, False),
    ],
)
def test_static_conditions(fields: dict[str, Any], matches: bool) -> None:
    assert rule_matches(rule(**fields), MESSAGE, "newsletter") is matches


def message_of(mailbox: Mailbox, index: int = 0) -> MailMessage:
    return mailbox.provider().get_message(mailbox.keys[index])


def account(mailbox: Mailbox) -> EmailAccount:
    with session_scope() as session:
        found = session.get(EmailAccount, mailbox.account_id)
        assert found is not None
        return found


def test_first_matching_rule_by_position_acts(mailbox: Mailbox) -> None:
    add_rule(
        mailbox.account_id,
        "later",
        [{"type": RuleActionType.MARK_READ}],
        subject_pattern="report",
        position=2,
    )
    add_rule(
        mailbox.account_id,
        "first",
        [{"type": RuleActionType.LABEL, "label": "Reports"}],
        subject_pattern="report",
        position=1,
    )
    message = message_of(mailbox)  # "Quarterly report"
    result = apply_rules(account(mailbox), message, mailbox.provider())
    assert (result.status, result.rule_name, result.actions) == ("applied", "first", ["LABEL"])
    updated = mailbox.provider().get_message(message.id)
    assert (updated.labels, updated.read) == (frozenset({"Reports"}), False)


def test_applying_twice_does_nothing_the_second_time(mailbox: Mailbox) -> None:
    add_rule(
        mailbox.account_id, "archive", [{"type": RuleActionType.ARCHIVE}], subject_pattern="report"
    )
    message = message_of(mailbox)
    first = apply_rules(account(mailbox), message, mailbox.provider())
    second = apply_rules(account(mailbox), message, mailbox.provider())
    assert (first.status, second.status) == ("applied", "already")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExecutedRule)) == 1
        assert session.scalar(select(func.count()).select_from(ExecutedAction)) == 1


def test_no_match_is_recorded_so_the_message_is_not_looked_at_again(mailbox: Mailbox) -> None:
    message = message_of(mailbox)
    assert apply_rules(account(mailbox), message, mailbox.provider()).status == "no_match"
    assert apply_rules(account(mailbox), message, mailbox.provider()).status == "already"


def test_delayed_action_becomes_one_scheduled_action(mailbox: Mailbox, configure: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")  # left to the sweep
    add_rule(
        mailbox.account_id,
        "later",
        [{"type": RuleActionType.ARCHIVE, "delay_minutes": 60}],
        subject_pattern="report",
    )
    message = message_of(mailbox)
    apply_rules(account(mailbox), message, mailbox.provider())
    with session_scope() as session:
        (row,) = session.scalars(select(ScheduledAction)).all()
    assert (row.message_id, row.status) == (message.id, ActionStatus.PENDING)
    assert row.scheduled_for - utcnow() > timedelta(minutes=59)
    assert mailbox.folder_keys("Archive") == set()  # not yet


def test_sender_category_condition_uses_the_senders_category(mailbox: Mailbox) -> None:
    message = message_of(mailbox, 2)  # from sender2@example.test
    with session_scope() as session:
        category = Category(email_account_id=mailbox.account_id, name="Receipt")
        session.add(category)
        session.flush()
        session.add(
            Sender(
                email_account_id=mailbox.account_id,
                email="sender2@example.test",
                category_id=category.id,
            )
        )
    add_rule(
        mailbox.account_id,
        "receipts",
        [{"type": RuleActionType.MOVE_FOLDER, "folder_name": "Receipts"}],
        sender_category="receipt",
    )
    assert apply_rules(account(mailbox), message, mailbox.provider()).status == "applied"
    assert mailbox.folder_keys("Receipts") == {message.id}


def test_send_action_sends_once_even_if_the_record_is_lost(mailbox: Mailbox) -> None:
    add_rule(
        mailbox.account_id,
        "ack",
        [{"type": RuleActionType.REPLY, "content": "Got it"}],
        subject_pattern="lunch",
    )
    message = message_of(mailbox, 1)
    apply_rules(account(mailbox), message, mailbox.provider())
    with session_scope() as session:  # a crash before the record: the next run repeats
        for executed in session.scalars(select(ExecutedRule)):
            session.delete(executed)
    apply_rules(account(mailbox), message, mailbox.provider())
    assert len(mailbox.folder_keys("Sent")) == 1


def test_delayed_archive_runs_on_celery_after_its_delay(mailbox: Mailbox, worker: Any) -> None:
    add_rule(
        mailbox.account_id,
        "later",
        [{"type": RuleActionType.ARCHIVE, "delay_minutes": 1}],
        subject_pattern="report",
    )
    message = message_of(mailbox)
    applied_at = utcnow()
    apply_rules(account(mailbox), message, mailbox.provider())
    assert mailbox.folder_keys("Archive") == set()

    def completed() -> Any:
        with session_scope() as session:
            row = session.scalars(select(ScheduledAction)).one()
        return row if row.status is ActionStatus.COMPLETED else None

    row = wait_for(completed, timeout=120, interval=0.5, what="the delayed archive")
    assert row.executed_at - applied_at >= timedelta(minutes=1)
    assert mailbox.folder_keys("Archive") == {message.id}
