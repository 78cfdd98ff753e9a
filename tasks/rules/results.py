"""How a rule result is recorded: the ExecutedRule row, unique per (account, message),
with an ExecutedAction row per action done.

A first result is written with plain INSERTs, on PostgreSQL in one statement (the
rule's row in a CTE): at thousands of messages a bulk run, the ORM's unit of work and
a transaction's BEGIN and COMMIT cost more than the inserts themselves. A batch of
first results (a bulk batch's) is written as two statements, in one transaction with
the batch's counts (`bulk_worker`). A forced result
(a bulk run with forceReprocess) replaces the earlier one, if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import BindParameter, Connection, Insert, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from bridge.store.db import autocommit, engine, insert_ignoring_conflicts, session_scope
from tasks.mail.port import MailMessage
from tasks.models import (
    ExecutedAction,
    ExecutedRule,
    ExecutedRuleStatus,
    RuleActionType,
    new_id,
    utcnow,
)


@dataclass(frozen=True)
class ActionDone:
    type: RuleActionType
    scheduled_action_id: str | None  # a delayed action's scheduled action
    result_id: str | None  # e.g. the sent message's id


@dataclass(frozen=True)
class RuleResult:
    """What applying the rules to one message came to."""

    account_id: str
    message: MailMessage
    rule_id: str | None  # the rule that matched, None for no match
    status: ExecutedRuleStatus
    actions: list[ActionDone]


def record_result(result: RuleResult, *, force: bool) -> bool:
    """Record the result; False when a concurrent delivery recorded one first."""
    try:
        if force:
            _replace(result)
        else:
            _insert(result)
    except IntegrityError:
        return False
    return True


def record_first_results(results: Sequence[RuleResult]) -> None:
    """The first results of many messages, in one transaction (`insert_first_results`).
    A message recorded already (by a concurrent delivery) keeps its result; a batch the
    database refuses is recorded one result at a time."""
    if not results:
        return
    try:
        with engine().begin() as connection:
            insert_first_results(connection, results)
    except IntegrityError:
        # Refused as a whole (a rule deleted since it matched): each alone, as a single
        # result is, so that one result's refusal leaves the others recorded.
        for result in results:
            record_result(result, force=False)


def insert_first_results(connection: Connection, results: Sequence[RuleResult]) -> None:
    """The first results of many messages in the caller's transaction, as two
    statements (each a multi-row INSERT, compiled once): the rules' rows, then the actions
    of those that were new. A message recorded already keeps its result. IntegrityError
    when the database refuses one of them (the caller's transaction is then lost)."""
    if not results:
        return
    now = utcnow()
    rule_rows = [_rule_row(result, now) for result in results]
    new_rules = insert_ignoring_conflicts(ExecutedRule, connection.dialect.name).returning(
        ExecutedRule.id
    )
    inserted = set(connection.execute(new_rules, rule_rows).scalars())
    action_rows = [
        _action_row(rule_row["id"], action, now)
        for rule_row, result in zip(rule_rows, results, strict=True)
        if rule_row["id"] in inserted
        for action in result.actions
    ]
    if action_rows:
        # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT; without it,
        # psycopg runs the executemany as one statement a row (each bound and planned).
        connection.execute(insert(ExecutedAction).returning(ExecutedAction.id), action_rows)


def _rule_row(result: RuleResult, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "email_account_id": result.account_id,
        "rule_id": result.rule_id,
        "message_id": result.message.id,
        "thread_id": result.message.thread_id,
        "status": result.status,
        "error": None,
        "created_at": now,
    }


def _action_row(rule_id: str, action: ActionDone, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "executed_rule_id": rule_id,
        "type": action.type,
        "scheduled_action_id": action.scheduled_action_id,
        "result_id": action.result_id,
        "created_at": now,
    }


def _insert(result: RuleResult) -> None:
    now = utcnow()
    rule_row = _rule_row(result, now)
    action_rows = [_action_row(rule_row["id"], action, now) for action in result.actions]
    if engine().dialect.name == "postgresql":
        values = {f"rule_{name}": value for name, value in rule_row.items()}
        for number, row in enumerate(action_rows):
            values.update({f"action{number}_{name}": value for name, value in row.items()})
        with autocommit() as connection:
            statement = _in_one_statement(
                tuple(rule_row), tuple(action_rows[0]) if action_rows else (), len(action_rows)
            )
            connection.execute(statement, values)
        return
    with session_scope() as session:
        session.execute(insert(ExecutedRule), rule_row)
        if action_rows:
            session.execute(insert(ExecutedAction), action_rows)


# Built once per number of actions, with parameters: building and compiling the
# statement for each message cost more CPU than running it.
@lru_cache(maxsize=8)
def _in_one_statement(
    rule_columns: tuple[str, ...], action_columns: tuple[str, ...], actions: int
) -> Insert:
    """PostgreSQL: the rule's row (parameters rule_<column>) and its actions' rows
    (action<n>_<column>), each a single-row INSERT (a multi-row VALUES would be compiled
    anew every time: SQLAlchemy does not cache it). The last action's is the statement,
    the others in CTEs, which PostgreSQL runs once each; it checks the actions' foreign
    key at the end of the whole statement."""
    rule = insert(ExecutedRule).values(_parameters(ExecutedRule, rule_columns, "rule_"))
    if not actions:
        return rule
    *earlier, last = (
        insert(ExecutedAction).values(_parameters(ExecutedAction, action_columns, f"action{n}_"))
        for n in range(actions)
    )
    ctes = [rule.cte("rule_row")] + [row.cte(f"action_row{n}") for n, row in enumerate(earlier)]
    return last.add_cte(*ctes)


def _parameters(
    model: type[ExecutedRule | ExecutedAction], names: tuple[str, ...], prefix: str
) -> dict[str, BindParameter[Any]]:
    columns = model.__table__.columns
    return {name: bindparam(prefix + name, type_=columns[name].type) for name in names}


def _replace(result: RuleResult) -> None:
    """The earlier result, if any, rewritten with this one's rule, status and actions."""
    with session_scope() as session:
        earlier = session.scalar(
            select(ExecutedRule).where(
                ExecutedRule.email_account_id == result.account_id,
                ExecutedRule.message_id == result.message.id,
            )
        )
        if earlier is not None:
            session.execute(
                delete(ExecutedAction).where(ExecutedAction.executed_rule_id == earlier.id)
            )
            earlier.rule_id = result.rule_id
            earlier.status, earlier.error, earlier.created_at = result.status, None, utcnow()
            executed = earlier
        else:
            executed = ExecutedRule(
                email_account_id=result.account_id,
                rule_id=result.rule_id,
                message_id=result.message.id,
                thread_id=result.message.thread_id,
                status=result.status,
            )
            session.add(executed)
        session.flush()
        for action in result.actions:
            session.add(
                ExecutedAction(
                    executed_rule_id=executed.id,
                    type=action.type,
                    scheduled_action_id=action.scheduled_action_id,
                    result_id=action.result_id,
                )
            )
