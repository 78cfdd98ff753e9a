"""Draining QStash: what it still holds for this app (its logs, DLQ and schedules), each
destination URL mapped back to the app's job route, and dead letters replayed through
the current provider chain.

Pure functions over the SDK client (`qstash.QStash`): no settings, no printing. The
publish step is passed in (`Publish`): bridge.qstash stands alone from the other
providers (the import contracts), and the provider chain lives in bridge.publishing.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from qstash import QStash
from qstash.dlq import DlqMessage
from qstash.errors import QStashError
from qstash.log import (
    ListLogsResponse,
    Log,
    LogFilter,
    parse_logs_response,
    prepare_list_logs_request_params,
)

from bridge.errors import PublishError
from bridge.payload import Payload, describe_validation_error
from bridge.receipt import Receipt
from bridge.registry import CronSpec, JobSpec, Registry

LOG_PAGE = 1000  # GET /v2/logs: the API's largest page
DLQ_PAGE = 100  # GET /v2/dlq: the API's largest page
DEDUP_HEADER = "upstash-deduplication-id"
# Still in QStash's hands (it will deliver or retry them), then what ends a message.
PENDING_STATES = ("CREATED", "ACTIVE", "RETRY", "ERROR")
FINAL_STATES = ("DELIVERED", "FAILED", "CANCELED")
# For log entries of one message with the same time: the one further along wins.
_PROGRESS = {"CREATED": 0, "ACTIVE": 1, "IN_PROGRESS": 1, "RETRY": 2, "ERROR": 2}
_STATUS = re.compile(r"status: (\d{3})")

# (job, its validated payload, dedup id) -> the receipt; raises PublishError.
Publish = Callable[[JobSpec[Any], Payload, str], Receipt]


# Destination URLs -> the app's routes


@dataclass(frozen=True)
class Destination:
    """A URL QStash delivers to, and what of this app's it is (if anything)."""

    url: str
    route: str | None = None  # the path under WEBHOOK_URL, when this app serves it
    job: JobSpec[Any] | None = None
    cron: CronSpec | None = None
    alias: bool = False  # one of the job's other paths (the replaced app's, `/simple`)

    @property
    def label(self) -> str:
        if self.job is not None:
            return f"{self.route} ({self.job.name}{', alias' if self.alias else ''})"
        if self.cron is not None:
            return f"{self.route} (cron {self.cron.name})"
        return f"other: {self.url}"

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "route": self.route,
            "job": self.job.name if self.job is not None else None,
            "cron": self.cron.name if self.cron is not None else None,
            "alias": self.alias,
        }


class Routes:
    """The app's job routes and aliases (and cron routes) under WEBHOOK_URL."""

    def __init__(self, registry: Registry, webhook_url: str | None) -> None:
        self._base = urlsplit(webhook_url.rstrip("/")) if webhook_url else None
        self._jobs: dict[str, tuple[JobSpec[Any], bool]] = {}
        for spec in registry.jobs.values():
            self._jobs[spec.route] = (spec, False)
            self._jobs.update((alias, (spec, True)) for alias in spec.aliases)
        self._crons = {cron.route: cron for cron in registry.crons.values()}

    def destination(self, url: str) -> Destination:
        path = self._path_under_base(url)
        if path in self._jobs:
            spec, alias = self._jobs[path]
            return Destination(url, path, job=spec, alias=alias)
        if path in self._crons:
            return Destination(url, path, cron=self._crons[path])
        return Destination(url)

    def _path_under_base(self, url: str) -> str | None:
        base = self._base
        if base is None:
            return None
        parts = urlsplit(url)
        # Scheme and host compare without case, as URLs do; the query is not the route.
        same_origin = (parts.scheme.lower(), parts.netloc.lower()) == (
            base.scheme.lower(),
            base.netloc.lower(),
        )
        if not same_origin or not parts.path.startswith(base.path + "/"):
            return None
        return parts.path[len(base.path) :]


# Errors, as one line


def status_of(error: QStashError) -> int | None:
    """The HTTP status of a failed SDK call: the SDK keeps it only in its message."""
    found = _STATUS.search(str(error))
    return int(found.group(1)) if found else None


def describe_failure(error: Exception, where: str) -> str | None:
    """One line for an SDK call that failed; None when the error is not QStash's."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    kind = type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return f"QStash at {where} did not answer in time ({kind}): check QSTASH_URL"
    if isinstance(error, httpx.HTTPError):
        return f"QStash at {where} is unreachable ({kind}: {first}): check QSTASH_URL"
    if isinstance(error, QStashError):
        status = status_of(error)
        if status in (401, 403):
            return f"QStash at {where} refused QSTASH_TOKEN (HTTP {status}): check QSTASH_TOKEN"
        return f"QStash at {where} failed: {first}"
    return None


# Messages, from the logs


def progress(state: str) -> int:
    """How far along a log entry's state is, to order entries of one message logged at
    the same time (final states rank last)."""
    return _PROGRESS.get(state, 3)


def _order(log: Log) -> tuple[int, int]:
    return log.time, progress(log.state.value)


@dataclass
class MessageCounts:
    """Messages by destination and by the state of their latest log entry."""

    since: datetime
    pages: int = 0
    entries: int = 0
    truncated: bool = False  # pages were left unread: older messages are missing
    destinations: dict[str, Destination] = field(default_factory=dict)  # by label
    by_destination: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def by_state(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_destination.values():
            total.update(counts)
        return total

    @property
    def pending(self) -> int:
        """Messages QStash still holds: not delivered, failed or canceled."""
        return sum(n for state, n in self.by_state.items() if state not in FINAL_STATES)

    def states(self) -> list[str]:
        """The table's columns: the usual states always, any other one seen after them."""
        known = [*PENDING_STATES, *FINAL_STATES]
        return known + sorted(set(self.by_state) - set(known))

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "pages": self.pages,
            "logEntries": self.entries,
            "truncated": self.truncated,
            "pending": self.pending,
            "byState": dict(sorted(self.by_state.items())),
            "byRoute": [
                {
                    "label": label,
                    **self.destinations[label].as_json(),
                    "states": dict(sorted(counts.items())),
                    "total": sum(counts.values()),
                }
                for label, counts in sorted(self.by_destination.items())
            ],
        }


def list_logs(
    client: QStash, cursor: str | None, count: int, wanted: LogFilter
) -> ListLogsResponse:
    """The SDK's `log.list`, built from its own request and parsing helpers, without the
    print() of every answer of GET /v2/events that it makes (3.4.0): that would put
    message bodies in a command's output or the web's log, and redirecting stdout
    instead would swap it for every thread of the process."""
    params = prepare_list_logs_request_params(cursor=cursor, count=count, filter=wanted)
    response = client.http.request(path="/v2/events", method="GET", params=params)
    return ListLogsResponse(
        cursor=response.get("cursor"), logs=parse_logs_response(response["events"])
    )


def count_messages(
    client: QStash, routes: Routes, *, since: datetime, max_pages: int, page_size: int = LOG_PAGE
) -> MessageCounts:
    """Page through the logs since `since` (newest first), at most `max_pages` pages; each
    message counts once, in the state of its latest entry."""
    found = MessageCounts(since=since)
    latest: dict[str, Log] = {}
    wanted: LogFilter = {"from_time": int(since.timestamp() * 1000)}
    cursor: str | None = None
    while True:
        page = list_logs(client, cursor, page_size, wanted)
        found.pages += 1
        found.entries += len(page.logs)
        for entry in page.logs:
            seen = latest.get(entry.message_id)
            if seen is None or _order(entry) > _order(seen):
                latest[entry.message_id] = entry
        cursor = page.cursor or None
        if cursor is None or found.pages >= max_pages:
            break
    found.truncated = cursor is not None
    for entry in latest.values():
        destination = routes.destination(entry.url)
        found.destinations[destination.label] = destination
        found.by_destination.setdefault(destination.label, Counter())[entry.state.value] += 1
    return found


# The dead-letter queue


@dataclass(frozen=True)
class DeadLetter:
    message: DlqMessage
    destination: Destination

    @property
    def created_at(self) -> datetime:
        return from_millis(self.message.created_at)

    @property
    def dedup_id(self) -> str:
        """The original publish's deduplication id when QStash kept it among the message's
        headers, else QStash's message id: stable, so a second replay is a duplicate."""
        for name, values in (self.message.headers or {}).items():
            if name.lower() == DEDUP_HEADER and values and values[0]:
                return values[0]
        return self.message.message_id

    def body(self) -> Any:
        """The body as JSON; ValueError when it is none or not JSON."""
        raw = self.message.body
        if raw is None and self.message.body_base64 is not None:
            raw = base64.b64decode(self.message.body_base64).decode("utf-8")
        if not raw:
            raise ValueError("it has no body")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"its body is not JSON ({error})") from None


@dataclass(frozen=True)
class DlqListing:
    letters: list[DeadLetter]
    cursor: str | None  # where the next page starts; None at the end of the DLQ


def list_dead_letters(
    client: QStash, routes: Routes, *, cursor: str | None = None, limit: int = DLQ_PAGE
) -> DlqListing:
    """Up to `limit` dead letters from `cursor` on, paged through with the SDK's cursor."""
    letters: list[DeadLetter] = []
    while len(letters) < limit:
        page = client.dlq.list(cursor=cursor, count=min(DLQ_PAGE, limit - len(letters)))
        letters.extend(DeadLetter(m, routes.destination(m.url)) for m in page.messages)
        cursor = page.cursor or None
        if cursor is None:
            break
    return DlqListing(letters, cursor)


def get_dead_letters(
    client: QStash, routes: Routes, dlq_ids: Iterable[str]
) -> list[tuple[str, DeadLetter | None]]:
    """Each id with its dead letter, or None when the DLQ has no such entry (404)."""
    found: list[tuple[str, DeadLetter | None]] = []
    for dlq_id in dlq_ids:
        try:
            message = client.dlq.get(dlq_id)
        except QStashError as error:
            if status_of(error) != 404:
                raise
            found.append((dlq_id, None))
        else:
            found.append((dlq_id, DeadLetter(message, routes.destination(message.url))))
    return found


@dataclass(frozen=True)
class ReplayOutcome:
    dlq_id: str
    message_id: str | None
    label: str
    receipt: Receipt | None = None
    left_because: str | None = None  # why it is still in the DLQ (nothing was published)
    not_removed: str | None = None  # replayed, but deleting the DLQ entry failed

    @property
    def replayed(self) -> bool:
        return self.receipt is not None

    def line(self) -> str:
        head = f"{self.dlq_id} {self.message_id or '-'} {self.label}:"
        if self.receipt is None:
            return f"{head} left in the DLQ: {self.left_because}"
        took = f"replayed to {self.receipt.provider.value} {self.receipt.id}"
        if self.receipt.deduplicated:
            took += " (deduplicated)"
        if self.not_removed is not None:
            return f"{head} {took}; still in the DLQ: {self.not_removed}"
        return f"{head} {took}; removed from the DLQ"


def not_found(dlq_id: str) -> ReplayOutcome:
    return ReplayOutcome(dlq_id, None, "-", left_because="no such DLQ entry")


def replay(client: QStash, letter: DeadLetter, publish: Publish, where: str) -> ReplayOutcome:
    """Validate the body against the job's payload, publish it with the original dedup id,
    and only then delete the DLQ entry. Whatever stops it leaves the entry where it is."""
    message, destination = letter.message, letter.destination

    def left(reason: str) -> ReplayOutcome:
        return ReplayOutcome(message.dlq_id, message.message_id, destination.label, None, reason)

    spec = destination.job
    if spec is None:
        if destination.cron is not None:
            return left("a cron route: its next run does this work (delete it instead)")
        return left("not a job route of this app under WEBHOOK_URL")
    try:
        payload = spec.payload.model_validate(letter.body())
    except ValidationError as error:
        return left(describe_validation_error(error))  # names each bad field
    except ValueError as error:
        return left(str(error))
    try:
        receipt = publish(spec, payload, letter.dedup_id)
    except (PublishError, ValueError, TypeError) as error:
        return left(f"publish failed: {error}")
    outcome = ReplayOutcome(message.dlq_id, message.message_id, destination.label, receipt)
    try:
        client.dlq.delete(message.dlq_id)
    except (QStashError, httpx.HTTPError) as error:
        why = describe_failure(error, where) or str(error)
        return replace(outcome, not_removed=why)
    return outcome


def delete_dead_letters(client: QStash, dlq_ids: list[str]) -> int:
    """Delete by id (DELETE /v2/dlq, in chunks of one page); how many QStash deleted."""
    deleted = 0
    for start in range(0, len(dlq_ids), DLQ_PAGE):
        deleted += client.dlq.delete_many(dlq_ids[start : start + DLQ_PAGE])
    return deleted


def from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)
