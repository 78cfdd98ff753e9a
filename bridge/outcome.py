"""What a job body returns and raises: the vocabulary every provider adapter translates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # nothing to do (already done, cancelled, gone): never retried
    RETRY = "retry"  # transient: the provider retries with backoff
    FAILED = "failed"  # permanent: the provider must not retry


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds, when the body knows better than backoff

    @property
    def settles_delivery(self) -> bool:
        """The delivery ledger answers a repeat of this delivery without running it again.

        Only for outcomes a rerun would repeat (an effect, or a failure): a skip said that
        nothing was due *then*, and the same message may find work later.
        """
        return self.outcome in (Outcome.DONE, Outcome.FAILED)

    @property
    def summary(self) -> str:
        """`<outcome>: <detail>`, or the outcome alone: what a Celery task returns, for
        its worker's log line and Flower. A string, not a dict: Celery formats every
        return value with its `saferepr` (13 µs for a two-key dict, 3 µs for a string)
        and pipes it to the pool's parent, for every job."""
        return f"{self.outcome.value}: {self.detail}" if self.detail else self.outcome.value


def done(detail: str = "") -> Result:
    return Result(Outcome.DONE, detail)


def skipped(reason: str) -> Result:
    return Result(Outcome.SKIPPED, reason)


class PermanentError(Exception):
    """Raise from a body when retrying cannot help (bad data, unknown account)."""


class RetryLater(Exception):
    """Raise from a body for a transient condition with a known wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Delivery:
    """Who delivered this run of a job: lets bodies log and reason about redelivery."""

    provider: str
    delivery_id: str
    attempt: int  # 0 on the first delivery
    # The broker says this very message was handed out before (Celery's `redelivered`).
    # Not proof that the earlier run is over: a dropped broker connection or an expired
    # visibility timeout hands a message out again while its first run goes on.
    redelivered: bool = False
