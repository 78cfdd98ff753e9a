"""What the jobs ask of "the AI", whatever answers (offline rules today, a model later).

Jobs depend on this Protocol only, so swapping the implementation (see `default_ai`)
changes no job code and tests can pass their own fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tasks.mail.port import MailMessage


@dataclass(frozen=True)
class CleanDecision:
    done: bool  # True: mark the thread done (archive / mark read); False: keep it
    reason: str  # shown to the user and recorded with the thread, so it must read well


@runtime_checkable
class AI(Protocol):
    def categorize_sender(self, sender: str, messages: Sequence[MailMessage]) -> str | None:
        """A category name for `sender` judged from a few of its recent messages.

        None means "cannot tell": the caller leaves the sender uncategorized rather than
        writing a placeholder category that a later answer would have to overwrite.
        """
        ...

    def decide_clean(
        self, thread: Sequence[MailMessage], instructions: str | None
    ) -> CleanDecision:
        """Keep or mark done a thread no static clean rule settled (clean.process)."""
        ...

    def summarize(self, message: MailMessage) -> str:
        """A short summary for the digest; "" when there is nothing worth summarising."""
        ...
