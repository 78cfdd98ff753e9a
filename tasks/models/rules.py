"""Rules (static conditions and their actions) and what applying them recorded."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bridge.store.columns import EXTERNAL_LENGTH, ID_LENGTH, Base, new_id, string_enum, utcnow
from tasks.models.senders import CATEGORY_LENGTH


class RuleActionType(StrEnum):
    ARCHIVE = "ARCHIVE"
    LABEL = "LABEL"
    MARK_READ = "MARK_READ"
    MOVE_FOLDER = "MOVE_FOLDER"
    REPLY = "REPLY"
    SEND_EMAIL = "SEND_EMAIL"
    FORWARD = "FORWARD"
    DIGEST = "DIGEST"


class PatternKind(StrEnum):
    CONTAINS = "CONTAINS"  # case-insensitive substring
    REGEX = "REGEX"  # Python regex, case-insensitive, searched anywhere


class LogicalOperator(StrEnum):
    AND = "AND"
    OR = "OR"


class Rule(Base):
    __tablename__ = "rule"
    __table_args__ = (UniqueConstraint("email_account_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)  # lower runs first; first match wins
    # Static conditions: each one set must hold (AND) or any one must (OR).
    from_pattern: Mapped[str | None] = mapped_column(Text)
    to_pattern: Mapped[str | None] = mapped_column(Text)
    subject_pattern: Mapped[str | None] = mapped_column(Text)
    body_pattern: Mapped[str | None] = mapped_column(Text)
    pattern_kind: Mapped[PatternKind] = mapped_column(
        string_enum(PatternKind, "pattern_kind"), default=PatternKind.CONTAINS
    )
    sender_category: Mapped[str | None] = mapped_column(String(CATEGORY_LENGTH))
    operator: Mapped[LogicalOperator] = mapped_column(
        string_enum(LogicalOperator, "logical_operator"), default=LogicalOperator.AND
    )
    actions: Mapped[list[RuleAction]] = relationship(
        back_populates="rule", cascade="all, delete-orphan", order_by="RuleAction.position"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleAction(Base):
    __tablename__ = "rule_action"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(ForeignKey("rule.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    type: Mapped[RuleActionType] = mapped_column(string_enum(RuleActionType, "rule_action_type"))
    label: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    folder_name: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    to: Mapped[str | None] = mapped_column(Text)
    cc: Mapped[str | None] = mapped_column(Text)
    bcc: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    delay_minutes: Mapped[int | None]  # set: becomes a scheduled action
    rule: Mapped[Rule] = relationship(back_populates="actions")


class ExecutedRuleStatus(StrEnum):
    APPLIED = "APPLIED"  # a rule matched and its actions ran or were scheduled
    NO_MATCH = "NO_MATCH"  # no rule matched: recorded so the message is not looked at again
    ERROR = "ERROR"


class ExecutedRule(Base):
    """One per (account, message): applying rules twice does nothing the second time."""

    __tablename__ = "executed_rule"
    __table_args__ = (UniqueConstraint("email_account_id", "message_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE")
    )
    rule_id: Mapped[str | None] = mapped_column(ForeignKey("rule.id", ondelete="SET NULL"))
    message_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    thread_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH), index=True)
    status: Mapped[ExecutedRuleStatus] = mapped_column(
        string_enum(ExecutedRuleStatus, "executed_rule_status")
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExecutedAction(Base):
    __tablename__ = "executed_action"
    __table_args__ = (Index("ix_executed_action_rule", "executed_rule_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    executed_rule_id: Mapped[str] = mapped_column(
        ForeignKey("executed_rule.id", ondelete="CASCADE")
    )
    type: Mapped[RuleActionType] = mapped_column(string_enum(RuleActionType, "rule_action_type"))
    scheduled_action_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))  # delayed actions
    # e.g. the sent message's id
    result_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
