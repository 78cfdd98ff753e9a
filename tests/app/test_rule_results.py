"""How a rule result is recorded, on both databases the app runs on: PostgreSQL writes a
first result in one statement, SQLite (the embedded default) in one transaction; what
is recorded is the same (tasks/rules/results.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.store.db import engine, session_scope
from tasks.mail.port import MailMessage
from tasks.models import (
    EmailAccount,
    ExecutedAction,
    ExecutedRule,
    ExecutedRuleStatus,
    Rule,
    RuleActionType,
)
from tasks.rules.results import ActionDone, RuleResult, record_first_results, record_result
from tasks.schema import upgrade
from tests.support.query_plans import Sent, sent_statements

ARCHIVED = ActionDone(RuleActionType.ARCHIVE, None, None)
LABELLED = ActionDone(RuleActionType.LABEL, None, "label-result")


@dataclass(frozen=True)
class Account:
    id: str
    rules: tuple[str, str]  # two rules' ids


@pytest.fixture(params=["postgresql", "sqlite"])
def account(
    request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path
) -> Account:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'embedded.db'}"
        configure(DATABASE_URL=url)
        upgrade(url)
    return _new_account(f"results-{request.param}@example.test")


@pytest.fixture
def postgresql_account() -> Account:
    """On the suite's own database, PostgreSQL."""
    return _new_account("results-one-statement@example.test")


def _new_account(email: str) -> Account:
    with session_scope() as session:
        row = EmailAccount(email=email, provider="maildir")
        session.add(row)
        session.flush()
        rules = [Rule(email_account_id=row.id, name=name) for name in ("first", "second")]
        session.add_all(rules)
        session.flush()
        return Account(row.id, (rules[0].id, rules[1].id))


def _message(message_id: str = "m1") -> MailMessage:
    return MailMessage(
        id=message_id,
        thread_id=f"t-{message_id}",
        sender="a@example.test",
        to="b@example.test",
        subject="s",
        body="b",
        folder="INBOX",
        read=False,
    )


def _recorded(account_id: str, message_id: str = "m1") -> tuple[Any, ...]:
    """(rule id, status, thread id, [(action type, result id)]) of the message's result."""
    with session_scope() as session:
        rule = session.scalars(
            select(ExecutedRule).where(
                ExecutedRule.email_account_id == account_id, ExecutedRule.message_id == message_id
            )
        ).one()
        actions = session.execute(
            select(ExecutedAction.type, ExecutedAction.result_id)
            .where(ExecutedAction.executed_rule_id == rule.id)
            .order_by(ExecutedAction.type)
        ).all()
        return rule.rule_id, rule.status, rule.thread_id, [tuple(a) for a in actions]


def _record(
    account: Account,
    rule: int | None,
    actions: list[ActionDone],
    *,
    force: bool = False,
    message_id: str = "m1",
) -> bool:
    """Record the result of rule number `rule` (None: no match) on the message."""
    rule_id, status = (
        (None, ExecutedRuleStatus.NO_MATCH)
        if rule is None
        else (account.rules[rule], ExecutedRuleStatus.APPLIED)
    )
    result = RuleResult(account.id, _message(message_id), rule_id, status, actions)
    return record_result(result, force=force)


@pytest.fixture
def statements() -> Iterator[list[Sent]]:
    """The SQL statements the database is sent while the test runs."""
    with sent_statements(engine()) as sent:
        yield sent


def test_on_postgresql_a_first_result_is_one_statement(
    postgresql_account: Account, statements: list[Sent]
) -> None:
    assert engine().dialect.name == "postgresql"

    _record(postgresql_account, 0, [ARCHIVED, LABELLED])

    assert len(statements) == 1
    assert statements[0].statement.lstrip().upper().startswith("WITH")
    assert len(_recorded(postgresql_account.id)[3]) == 2


def test_a_batch_of_first_results_inserts_its_actions_as_one_statement(
    postgresql_account: Account, statements: list[Sent]
) -> None:
    results = [
        RuleResult(
            postgresql_account.id,
            _message(f"m{n}"),
            postgresql_account.rules[0],
            ExecutedRuleStatus.APPLIED,
            [ARCHIVED, LABELLED],
        )
        for n in range(3)
    ]

    record_first_results(results)

    actions = [s for s in statements if s.statement.startswith("INSERT INTO executed_action")]
    assert [a.rows_sent for a in actions] == [1]
    assert all(len(_recorded(postgresql_account.id, f"m{n}")[3]) == 2 for n in range(3))
