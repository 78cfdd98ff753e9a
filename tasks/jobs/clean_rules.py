"""How `clean.process` decides keep or done for a thread (docs/JOBS.md, "Cleaning the
inbox"): the user's skips, the static rules in the documented order, then the AI.

No database and no Redis here: `decide` reads the thread and the skips, and is handed
the AI, the mailbox's star and the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict

from bridge.payload import Payload
from tasks.ai import AI
from tasks.ai import static_rules as rules
from tasks.mail.port import MailMessage, MailProvider

# Gmail's STARRED system label, or a "Starred" keyword on Maildir: compared casefolded.
_STARRED = "starred"


def _null_is_false(value: Any) -> Any:
    # The replaced app's schema (`z.boolean().default(X).nullish()`) let null and absent
    # through as such, and its consumer read both as false: "don't skip".
    return False if value is None else value


# One skip on the wire: true, false, null or absent, the last two meaning False. Strict:
# "yes", "true" or 1 is refused (naming the field), not read as true.
Skip = Annotated[
    bool, Strict(), BeforeValidator(_null_is_false, json_schema_input_type=bool | None)
]


class Skips(Payload):
    """Kinds of thread the user wants kept. A skip the message leaves out or sends as
    null is False, as the replaced app read it; the app's own choices are DEFAULT_SKIPS,
    which its producers write out in full."""

    # For an AI that can tell "needs a reply": the AI port takes no skips yet, and the
    # offline AI keeps anything a person wrote anyway. No static rule reads it.
    reply: Skip = False
    starred: Skip = False
    calendar: Skip = False  # invites: future events kept, past ones done
    receipt: Skip = False
    attachment: Skip = False
    conversation: Skip = False


# What jobbridge's producers (`clean_inbox`, and so `jobbridge clean`) ask for unless told
# otherwise: every skip explicit, so the wire form of our own messages carries all six.
DEFAULT_SKIPS = Skips(
    reply=True, starred=True, calendar=True, receipt=False, attachment=False, conversation=False
)


@dataclass(frozen=True)
class Decision:
    mark_done: bool
    rule: str  # which rule settled it ("starred", ..., "ai"): for the UI and the logs
    reason: str


def decide(
    thread: Sequence[MailMessage],
    skips: Skips,
    instructions: str | None,
    *,
    ai: AI,
    is_starred: Callable[[MailMessage], bool],
    now: datetime,
) -> Decision:
    """Keep or done for a whole thread: each rule looks at every message before the
    next rule is tried, so a rule's place in docs/JOBS.md's order is its priority (the app
    tried all rules on one message before the next, letting an unsubscribe link in
    the first message beat a star on the last).

    Keep rules look at every message; done rules only at mail from others, so a line
    of the user's own reply cannot get their conversation archived.
    """
    others = [message for message in thread if not message.sent_by_me]
    if skips.starred and any(is_starred(message) for message in thread):
        return Decision(False, "starred", "Starred")
    if skips.conversation and len(others) < len(thread):
        return Decision(False, "conversation", "You took part in this conversation")
    if skips.attachment and any(message.has_attachment for message in thread):
        return Decision(False, "attachment", "Has an attachment")
    if skips.receipt and any(rules.is_receipt(message) for message in thread):
        return Decision(False, "receipt", "Looks like a receipt")
    if skips.calendar:
        when = _event_time(others)
        if when is not None and when <= now:
            return Decision(True, "calendar", "Invitation to an event that is over")
        if when is not None:
            return Decision(False, "calendar", "Invitation to an upcoming event")
    if any(rules.has_unsubscribe_link(message) for message in others):
        return Decision(True, "unsubscribe", "Has an unsubscribe link")
    if any(rules.is_newsletter(message) for message in others):
        return Decision(True, "newsletter", "Sent by a newsletter")
    category = rules.gmail_category(thread[-1])
    if category is not None:
        return Decision(True, "category", f"Filed under {category}")
    verdict = ai.decide_clean(thread, instructions)
    return Decision(verdict.done, "ai", verdict.reason)


def _event_time(messages: Sequence[MailMessage]) -> datetime | None:
    """When the newest invitation's event starts; None if no invitation says when."""
    for message in reversed(messages):
        if rules.is_calendar_invite(message):
            when = rules.calendar_event_time(message)
            if when is not None:
                return when
    return None


def starred_in(mail: MailProvider) -> Callable[[MailMessage], bool]:
    """Whether a message is starred: a STARRED label, or the mailbox's own star."""

    def starred(message: MailMessage) -> bool:
        if any(label.casefold() == _STARRED for label in message.labels):
            return True
        return mail.is_starred(message)

    return starred
