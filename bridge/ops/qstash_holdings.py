"""What QStash still holds for this app, as the `/status` page asks it: messages by the
state of their latest log entry, and dead letters, each mapped to the app's routes.

QStash's log API lists entries, not messages: every message has a CREATED entry and an
ACTIVE one per delivery, so no filter on the state fetches only the messages still held
(one waiting for its `not_before` has nothing but its CREATED entry). Knowing that none
is left means reading every entry of the last LOGS_SINCE, which at real traffic is more
than one page's collection can do. So a `LogCensus` keeps the latest entry of each
message between collections: each collection reads for LOG_BUDGET seconds at most
(LOG_PAGES_PER_READ pages), first back through the window, then only what is newer than
the newest entry already read. Until one pass has reached the end of the logs within a
collection, the answer says the logs were read in part, and why.

The dead-letter queue is read anew each time (a few pages at most; past them the count
is a lower bound and says so). Each request has a short timeout, and the first failure
ends the reading with its reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from qstash.log import Log

from bridge.ops.audit import qstash_client
from bridge.ops.measure import describe, ms_since
from bridge.ops.probes import scrubbed, shown_url
from bridge.qstash import drain
from bridge.registry import Registry
from config import Settings

DEFAULT_QSTASH_URL = "https://qstash.upstash.io"
LOGS_SINCE = timedelta(days=7)  # as `jobbridge qstash messages` reads them by default
LOG_BUDGET = 4.0  # seconds of log pages per collection (one page at least)
LOG_PAGES_PER_READ = 20  # of drain.LOG_PAGE (1000) entries, per collection at most
# A pass after the first starts this long before the newest entry already read: entries
# are listed by their time, and one written late with an earlier time is not missed.
OVERLAP_MS = 10_000
# Messages followed at most (a few hundred bytes each): past this the logs are too many
# for a web page to follow, and `jobbridge qstash messages` is the tool.
MAX_MESSAGES = 200_000
DLQ_READ = 3 * drain.DLQ_PAGE  # dead letters read at most (each one's body comes along)
REQUEST_TIMEOUT = 3.0  # seconds per request to QStash's API


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True, slots=True)
class Latest:
    """A message's latest log entry: enough to count it and to order a later one."""

    time: int  # Unix milliseconds
    rank: int
    state: str
    url: str

    @classmethod
    def of(cls, entry: Log, url: str) -> Latest:
        state = entry.state.value
        return cls(entry.time, drain.progress(state), state, url)


@dataclass
class _Pass:
    """One newest-first read of the logs from `from_ms` to now, resumed by `cursor`."""

    from_ms: int
    cursor: str | None = None
    newest_ms: int | None = None  # the newest entry's time, from the pass's first page


@dataclass(frozen=True)
class LogReading:
    by_url: dict[str, Counter[str]]  # messages by destination URL and latest state
    partial: str | None  # why the logs were not read to the end; None: they were


class LogCensus:
    """The latest log entry of each message of the last LOGS_SINCE, kept between
    collections (one per status page: bridge.web.status_page). Thread-safe: a collection
    that finds another still reading (one left running past the page's deadline) does
    not wait for it, and says so."""

    def __init__(
        self,
        *,
        page_size: int = drain.LOG_PAGE,
        max_pages: int = LOG_PAGES_PER_READ,
        budget: float = LOG_BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._page_size, self._max_pages, self._budget = page_size, max_pages, budget
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[str, Latest] = {}  # by message id
        self._urls: dict[str, str] = {}  # one string per destination URL, shared
        self._read_to_ms: int | None = None  # the newest entry of the last pass that ended
        self._pass: _Pass | None = None  # the pass under way

    def read(self, client: Any, now: datetime) -> LogReading:
        if not self._lock.acquire(blocking=False):
            return LogReading({}, "an earlier read of them is still running")
        try:
            return self._read(client, _ms(now - LOGS_SINCE))
        except Exception:
            self._pass = None  # begun again next time; what is known stays
            raise
        finally:
            self._lock.release()

    def _read(self, client: Any, floor_ms: int) -> LogReading:
        started, pages = self._clock(), 0
        # A pass begun in an earlier collection leaves unread what was logged since then.
        current = self._pass is None
        partial: str | None = None
        while True:
            if pages and (pages >= self._max_pages or self._clock() - started >= self._budget):
                partial = self._progress()
                break
            if self._pass is None:
                start = floor_ms
                if self._read_to_ms is not None:
                    start = max(floor_ms, self._read_to_ms - OVERLAP_MS)
                self._pass = _Pass(start)
            now_pass = self._pass
            cursor, logs = _logs_page(client, now_pass.cursor, self._page_size, now_pass.from_ms)
            pages += 1
            self._take(logs)
            if now_pass.newest_ms is None:  # its first page holds the newest entries
                now_pass.newest_ms = max((log.time for log in logs), default=now_pass.from_ms)
            now_pass.cursor = cursor
            if len(self._latest) > MAX_MESSAGES:
                self._forget()
                partial = f"more than {MAX_MESSAGES} messages: too many to follow here"
                break
            if cursor is None:  # the pass reached the end of the logs
                self._read_to_ms = max(self._read_to_ms or 0, now_pass.newest_ms)
                self._pass = None
                if current:
                    break  # a pass begun in this collection: nothing is left unread
                current = True  # once more from there, for what was logged meanwhile
        self._prune(floor_ms)
        return LogReading(self._counts(), partial)

    def _take(self, logs: list[Log]) -> None:
        for entry in logs:
            seen = self._latest.get(entry.message_id)
            url = self._urls.setdefault(entry.url, entry.url)
            found = Latest.of(entry, url)
            if seen is None or (found.time, found.rank) > (seen.time, seen.rank):
                self._latest[entry.message_id] = found

    def _progress(self) -> str:
        """Where the reading stands, for the page: the next collection goes on."""
        if self._read_to_ms is None:
            oldest = min((latest.time for latest in self._latest.values()), default=None)
            back = "" if oldest is None else f" back to {_when(oldest)}"
            return f"read{back} so far; each refresh reads further"
        since = _when(self._read_to_ms)
        return f"what was logged since {since} is still being read; each refresh reads further"

    def _prune(self, floor_ms: int) -> None:
        """Messages whose latest entry left the window go, as a new reading would not
        see them."""
        gone = [key for key, latest in self._latest.items() if latest.time < floor_ms]
        for key in gone:
            del self._latest[key]
        if gone:
            self._urls = {latest.url: latest.url for latest in self._latest.values()}

    def _forget(self) -> None:
        self._latest.clear()
        self._urls.clear()
        self._read_to_ms, self._pass = None, None

    def _counts(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for latest in self._latest.values():
            found.setdefault(latest.url, Counter())[latest.state] += 1
        return found


def _logs_page(
    client: Any, cursor: str | None, count: int, from_ms: int
) -> tuple[str | None, list[Log]]:
    """One page of GET /v2/events, newest first (drain.list_logs: the SDK's, silent)."""
    page = drain.list_logs(client, cursor, count, {"from_time": from_ms})
    return page.cursor or None, page.logs


@dataclass(frozen=True)
class QStashHoldings:
    """`error` says why QStash was not asked (or failed); the counts are None then."""

    configured: bool  # QSTASH_TOKEN is set, so QStash can be asked at all
    error: str | None = None
    since: datetime | None = None
    # This app's messages (its job and cron routes under WEBHOOK_URL), by latest state.
    by_state: Counter[str] = field(default_factory=Counter)
    other_messages: int = 0  # messages of the account to URLs that are not this app's
    logs_partial: str | None = None  # why the logs were not read to the end
    dlq_for_app: int | None = None
    dlq_total: int | None = None
    dlq_is_lower_bound: bool = False  # more dead letters than were read
    latency_ms: float | None = None

    @property
    def answered(self) -> bool:
        return self.configured and self.error is None

    @property
    def logs_truncated(self) -> bool:
        """Entries were left unread: a message still held may be among them."""
        return self.logs_partial is not None

    @property
    def pending_for_app(self) -> int | None:
        """This app's messages QStash will still deliver or retry (not delivered, failed
        or canceled: drain.FINAL_STATES); None when QStash was not asked."""
        if not self.answered:
            return None
        return sum(n for state, n in self.by_state.items() if state not in drain.FINAL_STATES)

    def states(self) -> list[str]:
        """Columns: the usual states always, any other one seen after them."""
        known = [*drain.PENDING_STATES, *drain.FINAL_STATES]
        return known + sorted(set(self.by_state) - set(known))

    def as_json(self) -> dict[str, Any]:
        return {
            "configured": self.configured,
            "error": self.error,
            "since": self.since.isoformat() if self.since else None,
            "messagesByState": dict(sorted(self.by_state.items())),
            "pendingForApp": self.pending_for_app,
            "otherMessages": self.other_messages,
            "logsTruncated": self.logs_truncated,
            "logsPartial": self.logs_partial,
            "dlqForApp": self.dlq_for_app,
            "dlqTotal": self.dlq_total,
            "dlqIsLowerBound": self.dlq_is_lower_bound,
        }


def read_qstash_holdings(
    settings: Settings,
    registry: Registry,
    now: datetime,
    census: LogCensus | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> QStashHoldings:
    """The DLQ first (a request or a few), then the logs for what is left of the budget.
    Without a `census` kept by the caller, the logs are read from scratch."""
    if settings.qstash_token is None:
        return QStashHoldings(configured=False, error="QSTASH_TOKEN is not set")
    url = settings.qstash_url or DEFAULT_QSTASH_URL
    where = shown_url(url)
    routes = drain.Routes(registry, settings.webhook_url)
    since = now - LOGS_SINCE
    started = time.perf_counter()
    try:
        client = qstash_client(settings, timeout)
        letters = drain.list_dead_letters(client, routes, limit=DLQ_READ)
        reading = (census or LogCensus()).read(client, now)
    except Exception as error:
        why = scrubbed(drain.describe_failure(error, where) or describe(error), url)
        return QStashHoldings(configured=True, error=why, since=since)
    ours: Counter[str] = Counter()
    other = 0
    for destination_url, by_state in reading.by_url.items():
        if routes.destination(destination_url).route is not None:
            ours.update(by_state)
        else:
            other += sum(by_state.values())
    return QStashHoldings(
        configured=True,
        since=since,
        by_state=ours,
        other_messages=other,
        logs_partial=reading.partial,
        dlq_for_app=sum(1 for letter in letters.letters if letter.destination.route is not None),
        dlq_total=len(letters.letters),
        dlq_is_lower_bound=letters.cursor is not None,
        latency_ms=ms_since(started),
    )
