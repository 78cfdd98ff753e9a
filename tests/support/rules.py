"""Rules written straight to the database for tests."""

from __future__ import annotations

from typing import Any

from bridge.store.db import session_scope
from tasks.models import Rule, RuleAction, RuleActionType


def add_rule(account_id: str, name: str, actions: list[dict[str, Any]], **conditions: Any) -> str:
    """A rule with the given conditions (from_pattern=..., subject_pattern=...) and actions
    ({"type": RuleActionType.ARCHIVE, "label": ...}); returns its id."""
    with session_scope() as session:
        rule = Rule(email_account_id=account_id, name=name, **conditions)
        rule.actions = [
            RuleAction(position=position, **{"type": RuleActionType(a.pop("type")), **a})
            for position, a in enumerate(dict(action) for action in actions)
        ]
        session.add(rule)
        session.flush()
        return rule.id
