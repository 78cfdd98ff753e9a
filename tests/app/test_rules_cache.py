"""A process keeps an account's rules while the database says they have not changed: the
account's rules_version, bumped by triggers on every change to a rule or an action."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, delete, event, text, update

from bridge.store.db import engine, session_scope
from tasks.models import EmailAccount, Rule, RuleAction, RuleActionType
from tasks.rules import apply_rules
from tasks.rules.cache import rules_of
from tasks.schema import upgrade
from tests.conftest import Mailbox
from tests.support.rules import add_rule
from tests.support.services import create_database, drop_database

migration_0008 = importlib.import_module("tasks.migrations.versions.0008_rules_version")

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


STEPS = [
    "INSERT INTO rule (id, email_account_id, name, enabled, position, pattern_kind, "
    "operator, created_at) VALUES (:rule, :account, 'n', true, 0, 'CONTAINS', 'AND', "
    "CURRENT_TIMESTAMP)",
    "UPDATE rule SET subject_pattern = 'x' WHERE id = :rule",
    "INSERT INTO rule_action (id, rule_id, position, type) VALUES (:action, :rule, 0, 'ARCHIVE')",
    "UPDATE rule_action SET label = 'L' WHERE id = :action",
    "DELETE FROM rule_action WHERE id = :action",
    "DELETE FROM rule WHERE id = :rule",
]


def version(connection: Connection, account_id: str) -> int:
    found = connection.execute(
        text("SELECT rules_version FROM email_account WHERE id = :account"),
        {"account": account_id},
    ).scalar_one()
    return int(found)


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


@pytest.fixture(params=["sqlite", "postgresql", "postgresql, a schema of its own"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own migrated to head, as `jobbridge db upgrade` leaves it; the
    third keeps jobbridge's tables in a schema `jobbridge` (DATABASE_URL's search_path)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rules.db'}"
        upgrade(url)
        bound = create_engine(url)
        yield bound
        bound.dispose()
        return
    url = create_database()
    try:
        if request.param != "postgresql":
            with create_engine(url).begin() as connection:
                connection.execute(text("CREATE SCHEMA jobbridge"))
            url += "?options=-csearch_path%3Djobbridge"
        upgrade(url)
        bound = create_engine(url)
        yield bound
        bound.dispose()
    finally:
        drop_database(url.split("?")[0])


def test_every_change_to_rules_gives_a_new_version(migrated: Engine) -> None:
    account_id, other_id = add_accounts(migrated)
    names = {"account": account_id, "rule": f"r-{account_id}", "action": f"a-{account_id}"}
    with migrated.begin() as connection:
        other_before = version(connection, other_id)
        seen = [version(connection, account_id)]
        for step in STEPS:
            connection.execute(text(step), names)
            seen.append(version(connection, account_id))
        other_after = version(connection, other_id)
    assert len(set(seen)) == len(STEPS) + 1  # a new token after each change
    assert other_after == other_before  # another account's rules did not change


def test_the_rules_triggers_exist_at_head(migrated: Engine) -> None:
    if migrated.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    with migrated.connect() as connection:
        names = set(connection.execute(text(query)).scalars())
    expected = (
        {name for name, _ in migration_0008.sqlite_triggers()}
        if migrated.dialect.name == "sqlite"
        else {
            f"{table}_{kind}"
            for table in migration_0008.TABLES
            for kind in ("bumps_rules_version", "truncate_bumps_rules_versions")
        }
    )
    assert expected <= names


def test_a_truncate_on_postgresql_gives_every_account_a_new_version() -> None:
    url = create_database()
    upgrade(url)
    fresh = create_engine(url)
    try:
        first, second = add_accounts(fresh)
        with fresh.begin() as connection:
            before = (version(connection, first), version(connection, second))
            connection.execute(text("TRUNCATE rule CASCADE"))
            after = (version(connection, first), version(connection, second))
        assert before[0] != after[0] and before[1] != after[1]
    finally:
        fresh.dispose()
        drop_database(url)


def test_a_writer_with_another_search_path_still_changes_the_version() -> None:
    url = create_database()
    try:
        with create_engine(url).begin() as connection:
            connection.execute(text("CREATE SCHEMA jobbridge"))
        upgrade(url + "?options=-csearch_path%3Djobbridge")
        writer = create_engine(url)  # search_path "$user", public: jobbridge's schema unseen
        with writer.begin() as connection:
            account = f"acc-{uuid.uuid4().hex[:8]}"
            connection.execute(
                text(
                    "INSERT INTO jobbridge.email_account (id, email, provider, "
                    "provider_settings, created_at) VALUES (:id, 'w@example.test', 'maildir', "
                    "'{}', CURRENT_TIMESTAMP)"
                ),
                {"id": account},
            )
            # A table of the writer's own under the same name must not catch the change.
            connection.execute(
                text("CREATE TEMP TABLE email_account (id text, rules_version bigint)")
            )
            connection.execute(
                text(
                    "INSERT INTO jobbridge.rule (id, email_account_id, name, enabled, "
                    "position, pattern_kind, operator, created_at) VALUES ('r', :id, 'n', "
                    "true, 0, 'CONTAINS', 'AND', CURRENT_TIMESTAMP)"
                ),
                {"id": account},
            )
            changed = connection.execute(
                text("SELECT rules_version FROM jobbridge.email_account WHERE id = :id"),
                {"id": account},
            ).scalar_one()
        writer.dispose()
        assert changed != 0
    finally:
        drop_database(url)
