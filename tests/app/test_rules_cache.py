"""A process keeps an account's rules while the database says they have not changed: the
account's rules_version, bumped by triggers on every change to a rule or an action."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, text, update

from bridge.store.db import engine, session_scope
from tasks.models import EmailAccount, Rule, RuleAction, RuleActionType
from tasks.rules import apply_rules
from tasks.rules.cache import rules_of
from tasks.schema import upgrade
from tests.conftest import Mailbox
from tests.support.rules import add_rule

ARCHIVE = [{"type": RuleActionType.ARCHIVE}]


def account(account_id: str) -> EmailAccount:
    with session_scope() as session:
        found = session.get(EmailAccount, account_id)
        assert found is not None
        return found


@contextmanager
def rule_reads(bound: Engine) -> Iterator[list[str]]:
    """The statements that read the rule table while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = args[2]
        if statement.lstrip().upper().startswith("SELECT") and "FROM rule " in statement:
            seen.append(statement)

    event.listen(bound, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(bound, "before_cursor_execute", record)


def test_unchanged_rules_are_read_once_per_process(mailbox: Mailbox) -> None:
    add_rule(mailbox.account_id, "reports", ARCHIVE, subject_pattern="report")
    with rule_reads(engine()) as reads:
        first = rules_of(account(mailbox.account_id))
        again = rules_of(account(mailbox.account_id))
    assert [rule.name for rule in again] == ["reports"]
    assert again is first
    assert len(reads) == 1


def test_an_edited_rule_applies_to_the_next_message(mailbox: Mailbox) -> None:
    rule_id = add_rule(mailbox.account_id, "reports", ARCHIVE, subject_pattern="report")
    mail = mailbox.provider()
    first = apply_rules(account(mailbox.account_id), mail.get_message(mailbox.keys[0]), mail)
    assert first.rule_name == "reports"
    with session_scope() as session:
        session.execute(update(Rule).where(Rule.id == rule_id).values(subject_pattern="lunch"))
    second = apply_rules(account(mailbox.account_id), mail.get_message(mailbox.keys[1]), mail)
    assert (second.status, second.rule_name) == ("applied", "reports")  # "Team lunch"


def test_a_changed_action_is_read_again(mailbox: Mailbox) -> None:
    rule_id = add_rule(mailbox.account_id, "reports", ARCHIVE, subject_pattern="report")
    before = rules_of(account(mailbox.account_id))
    with session_scope() as session:
        session.execute(
            update(RuleAction)
            .where(RuleAction.rule_id == rule_id)
            .values(type=RuleActionType.MARK_READ)
        )
    after = rules_of(account(mailbox.account_id))
    assert [action.type for action in before[0].actions] == [RuleActionType.ARCHIVE]
    assert [action.type for action in after[0].actions] == [RuleActionType.MARK_READ]


def test_a_deleted_rule_stops_applying(mailbox: Mailbox) -> None:
    rule_id = add_rule(mailbox.account_id, "reports", ARCHIVE, subject_pattern="report")
    assert rules_of(account(mailbox.account_id))
    with session_scope() as session:
        session.execute(delete(Rule).where(Rule.id == rule_id))
    assert rules_of(account(mailbox.account_id)) == ()


def versions_after_each_change(bound: Engine, account_id: str, other_id: str) -> list[int]:
    """The account's rules_version after each kind of change, in raw SQL (any writer)."""
    steps = [
        "INSERT INTO rule (id, email_account_id, name, enabled, position, pattern_kind, "
        "operator, created_at) VALUES (:rule, :account, 'n', true, 0, 'CONTAINS', 'AND', "
        "CURRENT_TIMESTAMP)",
        "UPDATE rule SET subject_pattern = 'x' WHERE id = :rule",
        "INSERT INTO rule_action (id, rule_id, position, type) "
        "VALUES (:action, :rule, 0, 'ARCHIVE')",
        "UPDATE rule_action SET label = 'L' WHERE id = :action",
        "DELETE FROM rule_action WHERE id = :action",
        "DELETE FROM rule WHERE id = :rule",
    ]
    names = {"account": account_id, "rule": f"r-{account_id}", "action": f"a-{account_id}"}
    versions = []
    with bound.begin() as connection:
        for step in steps:
            connection.execute(text(step), names)
            versions.append(
                connection.execute(
                    text("SELECT rules_version FROM email_account WHERE id = :account"),
                    {"account": account_id},
                ).scalar_one()
            )
        other = connection.execute(
            text("SELECT rules_version FROM email_account WHERE id = :other"), {"other": other_id}
        ).scalar_one()
    assert other == 0  # another account's changes leave it alone
    return versions


def add_accounts(bound: Engine) -> tuple[str, str]:
    """Two accounts, by raw SQL; their ids."""
    ids = (f"acc-{uuid.uuid4().hex[:8]}", f"acc-{uuid.uuid4().hex[:8]}")
    with bound.begin() as connection:
        for account_id in ids:
            connection.execute(
                text(
                    "INSERT INTO email_account (id, email, provider, provider_settings, "
                    "created_at) VALUES (:id, :email, 'maildir', '{}', CURRENT_TIMESTAMP)"
                ),
                {"id": account_id, "email": f"{account_id}@example.test"},
            )
    return ids


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'rules.db'}"
    upgrade(url)
    bound = create_engine(url)
    yield bound
    bound.dispose()


def test_every_change_to_rules_bumps_the_version_on_sqlite(sqlite_engine: Engine) -> None:
    account_id, other_id = add_accounts(sqlite_engine)
    assert versions_after_each_change(sqlite_engine, account_id, other_id) == [1, 2, 3, 4, 5, 6]


def test_every_change_to_rules_bumps_the_version_on_postgresql() -> None:
    bound = engine()
    assert bound.dialect.name == "postgresql"
    account_id, other_id = add_accounts(bound)
    try:
        assert versions_after_each_change(bound, account_id, other_id) == [1, 2, 3, 4, 5, 6]
    finally:
        with bound.begin() as connection:
            connection.execute(
                text("DELETE FROM email_account WHERE id IN (:a, :b)"),
                {"a": account_id, "b": other_id},
            )


def test_a_writer_with_another_search_path_still_bumps_the_version() -> None:
    bound = engine()
    account_id, other_id = add_accounts(bound)
    elsewhere = create_engine(bound.url, connect_args={"options": "-csearch_path=pg_catalog"})
    try:
        with elsewhere.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO public.rule (id, email_account_id, name, enabled, position, "
                    "pattern_kind, operator, created_at) VALUES (:rule, :account, 'n', true, 0, "
                    "'CONTAINS', 'AND', CURRENT_TIMESTAMP)"
                ),
                {"account": account_id, "rule": f"r-{account_id}"},
            )
        with bound.connect() as connection:
            version = connection.execute(
                text("SELECT rules_version FROM email_account WHERE id = :account"),
                {"account": account_id},
            ).scalar_one()
        assert version == 1
    finally:
        elsewhere.dispose()
        with bound.begin() as connection:
            connection.execute(
                text("DELETE FROM email_account WHERE id IN (:a, :b)"),
                {"a": account_id, "b": other_id},
            )
