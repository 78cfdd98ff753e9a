"""Apply an account's rules to one message, once.

Effects first, record last: every effect is idempotent (mail operations by nature,
sends by idempotency key, scheduled actions by a deterministic id, digest items by a
unique constraint), so a crash before the record only means the next delivery repeats
harmless work; a record first would lose the actions. The ExecutedRule row, unique per
(account, message), then makes any later application a no-op, unless it is forced (a
bulk run with forceReprocess): then the rules run again and the row is rewritten with
the new result. Forced or not, an action already done for the message is not done again
(its idempotency key, or its scheduled action's id, is the same).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import BindParameter, Exists, exists, select

from bridge.publishing import enqueue
from bridge.store.db import read_scope
from tasks import scheduled_actions
from tasks.jobs.digest import AddToDigest, add_to_digest
from tasks.jobs.digest_message import DigestMessage
from tasks.mail.actions import MailAction, perform
from tasks.mail.port import MailMessage, MailProvider
from tasks.models import (
    ActionType,
    Category,
    EmailAccount,
    ExecutedRule,
    ExecutedRuleStatus,
    RuleAction,
    RuleActionType,
    Sender,
    utcnow,
)
from tasks.rules.cache import rules_of
from tasks.rules.matching import first_match
from tasks.rules.results import ActionDone, RuleResult, record_result

log = logging.getLogger("jobbridge.rules")


@dataclass(frozen=True)
class ApplyResult:
    status: str  # "applied", "no_match" or "already" (a result existed: nothing done)
    rule_name: str | None = None
    actions: list[str] = field(default_factory=list)


def rule_result_exists(
    account_id: str | BindParameter[Any], message_id: str | BindParameter[Any]
) -> Exists:
    """Whether the message has a rule result, as an expression a query can carry (the
    ids as values, or as parameters of a statement built once)."""
    return exists().where(
        ExecutedRule.email_account_id == account_id, ExecutedRule.message_id == message_id
    )


def has_rule_result(account_id: str, message_id: str) -> bool:
    with read_scope() as session:
        return bool(session.scalar(select(rule_result_exists(account_id, message_id))))


def sender_category(account_id: str, sender: str) -> str | None:
    address = parseaddr(sender)[1].lower()
    with read_scope() as session:
        return session.scalar(
            select(Category.name)
            .join(Sender, Sender.category_id == Category.id)
            .where(Sender.email_account_id == account_id, Sender.email == address)
        )


def apply_rules(
    account: EmailAccount,
    message: MailMessage,
    mail: MailProvider,
    *,
    force: bool = False,
    has_result: bool | None = None,
    unrecorded: list[RuleResult] | None = None,
) -> ApplyResult:
    """Run the first matching rule's actions on the message, unless it has a result already
    and the application is not forced. Whether the message has a result is not read again
    when the caller read it already; the rules are the process's (`rules_of`), read again
    only when the account's rules version changed; the sender's category is read only
    when a rule asks for one. A first result is appended to `unrecorded`, where given,
    for the caller to record with others (`record_first_results`) after their effects."""
    if not force:
        if has_result is None:
            has_result = has_rule_result(account.id, message.id)
        if has_result:
            return ApplyResult("already")
    rules = rules_of(account)
    wanted = any(rule.sender_category for rule in rules)
    category = sender_category(account.id, message.sender) if wanted else None
    rule = first_match(rules, message, category)
    results: list[ActionDone] = []
    if rule is not None:
        results = [_run(account, message, mail, action) for action in rule.actions]
    status = ExecutedRuleStatus.APPLIED if rule else ExecutedRuleStatus.NO_MATCH
    result = RuleResult(account.id, message, rule.id if rule else None, status, results)
    if unrecorded is not None and not force:
        unrecorded.append(result)
    elif not record_result(result, force=force):
        return ApplyResult("already")  # a concurrent delivery recorded it first
    return ApplyResult(
        "applied" if rule else "no_match",
        rule.name if rule else None,
        [action.type.value for action in results],
    )


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _run(
    account: EmailAccount, message: MailMessage, mail: MailProvider, action: RuleAction
) -> ActionDone:
    """Perform or schedule one action."""
    if action.type is RuleActionType.DIGEST:
        _enqueue_digest(account, message, action)
        return ActionDone(action.type, None, None)
    if action.delay_minutes:
        row = scheduled_actions.schedule(
            action_id=_stable_id("rule-action", account.id, message.id, action.id),
            email_account_id=account.id,
            action_type=ActionType(action.type.value),
            message_id=message.id,
            thread_id=message.thread_id,
            scheduled_for=utcnow() + timedelta(minutes=action.delay_minutes),
            label=action.label,
            folder_name=action.folder_name,
            to=action.to,
            cc=action.cc,
            bcc=action.bcc,
            subject=action.subject,
            content=action.content,
        )
        return ActionDone(action.type, row.id, None)
    mail_action = MailAction(
        type=ActionType(action.type.value),
        message_id=message.id,
        idempotency_key=f"rule-action-{_stable_id(action.id, message.id)}",
        label=action.label,
        folder=action.folder_name,
        to=action.to,
        cc=action.cc,
        bcc=action.bcc,
        subject=action.subject,
        content=action.content,
    )
    return ActionDone(action.type, None, perform(mail, mail_action))


def _enqueue_digest(account: EmailAccount, message: MailMessage, action: RuleAction) -> None:
    payload = AddToDigest(
        email_account_id=account.id,
        action_id=action.id,
        # Ids only: the job reads the message from the mailbox, no queue keeps its text.
        message=DigestMessage(id=message.id, thread_id=message.thread_id),
    )
    enqueue(add_to_digest, payload, dedup_id=f"digest-{_stable_id(account.id, message.id)}")
