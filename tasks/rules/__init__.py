"""The rules engine: static conditions matched against a message, and their actions."""

from __future__ import annotations

from tasks.rules.apply import ApplyResult, apply_rules
from tasks.rules.matching import first_match, rule_matches

__all__ = ["ApplyResult", "apply_rules", "first_match", "rule_matches"]
