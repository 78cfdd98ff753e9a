"""Does a rule match a message? Pure functions, no I/O."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

from tasks.mail.port import MailMessage
from tasks.models import LogicalOperator, PatternKind, Rule

log = logging.getLogger("jobbridge.rules")


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        log.warning("rule pattern %r is not a valid regex (%s): it matches nothing", pattern, error)
        return None


def pattern_matches(pattern: str, text: str, kind: PatternKind) -> bool:
    if kind is PatternKind.REGEX:
        compiled = _compiled(pattern)
        return compiled is not None and compiled.search(text) is not None
    return pattern.lower() in text.lower()


def rule_matches(rule: Rule, message: MailMessage, sender_category: str | None) -> bool:
    """Every condition the rule sets must hold (AND), or any one of them (OR).

    A rule that sets no condition matches nothing: an empty rule must not act on all mail.
    """
    fields = (
        (rule.from_pattern, message.sender),
        (rule.to_pattern, message.to),
        (rule.subject_pattern, message.subject),
        (rule.body_pattern, message.body),
    )
    checks = [pattern_matches(p, text, rule.pattern_kind) for p, text in fields if p]
    if rule.sender_category:
        wanted = rule.sender_category.lower()
        checks.append(sender_category is not None and sender_category.lower() == wanted)
    if not checks:
        return False
    return all(checks) if rule.operator is LogicalOperator.AND else any(checks)


def first_match(
    rules: Sequence[Rule], message: MailMessage, sender_category: str | None
) -> Rule | None:
    """The first enabled rule, by position, whose conditions hold."""
    for rule in sorted(rules, key=lambda r: (r.position, r.name)):
        if rule.enabled and rule_matches(rule, message, sender_category):
            return rule
    return None
