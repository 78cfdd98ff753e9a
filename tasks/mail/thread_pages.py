"""One page of threads, for every adapter: the ranking (newest message first), the
window, the filters and the cursors (docs: the mail port's `list_threads`).

A thread's place is its newest message in the folder and window, whether or not it is
read or labelled: marking read or labelling the threads of one page (what callers do
with a page) then moves no thread across the cursor. Page tokens are that place,
(-timestamp in microseconds, thread id) (`maildir_cursor`).

`thread_page` ranks messages it is handed, all of them: the definition. `walk_page`
gives the same page from a `FolderView`, a folder kept in date order (newest first) by
the adapter, and reads only about as many messages as the page shows: the window's
edge and the cursor's place are found by bisection, and the walk stops one thread past
the page. So a page costs the same in a folder of 1,000 messages or of 50,000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tasks.mail.maildir_cursor import decode_cursor, encode_cursor, micros
from tasks.mail.port import ThreadPage

# Probes per bisection round (one batch each; a fetch for a remote folder): the rounds
# are log8 of the folder's size, the messages read 7 a round. Positions walked at a time:
# a page's worth and one (a thread has one message or more), at least _LEAST_CHUNK.
_PROBES = 7
_LEAST_CHUNK = 8


@dataclass(frozen=True)
class Listed:
    """One message as a listing sees it."""

    thread_id: str
    date: datetime  # aware UTC
    message_id: str
    read: bool
    labels: frozenset[str]


def thread_page(
    messages: Iterable[Listed],
    *,
    after: datetime | None,
    before: datetime | None,
    unread_only: bool,
    exclude_labels: Sequence[str],
    page_token: str | None,
    page_size: int,
) -> ThreadPage:
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    cursor = decode_cursor(page_token) if page_token is not None else None
    excluded = frozenset(exclude_labels)
    newest: dict[str, tuple[int, str]] = {}  # thread -> (timestamp, message id) of its newest
    unread: set[str] = set()
    skipped: set[str] = set()
    for message in messages:
        if (after is not None and message.date < after) or (
            before is not None and message.date >= before
        ):
            continue
        thread = message.thread_id
        key = (micros(message.date), message.message_id)
        newest[thread] = max(newest.get(thread, key), key)
        if not message.read:
            unread.add(thread)
        if message.labels & excluded:
            skipped.add(thread)
    # Sort keys are (-timestamp, thread id): ascending order is newest first, and the
    # page after a cursor is exactly the keys greater than the cursor's.
    ranked = sorted(
        (-stamp, thread)
        for thread, (stamp, _) in newest.items()
        if thread not in skipped and (not unread_only or thread in unread)
    )
    if cursor is not None:
        ranked = [key for key in ranked if key > cursor]
    page = ranked[:page_size]
    return ThreadPage(
        thread_ids=[thread for _, thread in page],
        next_page_token=encode_cursor(page[-1]) if len(ranked) > page_size else None,
        newest_message_ids={thread: newest[thread][1] for _, thread in page},
    )


class FolderView(Protocol):
    """A folder's messages at positions 0..size-1, newest first (stamps never increase
    along the positions). `load` makes what the other methods read known for some
    positions, in one go (an adapter may fetch it then); they read nothing else."""

    @property
    def size(self) -> int: ...

    def load(self, positions: Iterable[int], *, threads: bool = False) -> None:
        """Make stamp() and message_id() known for the positions, and with `threads`
        thread() and members() too."""
        ...

    def stamp(self, position: int) -> int:
        """Microseconds since the epoch: the message's date."""
        ...

    def message_id(self, position: int) -> str: ...

    def thread(self, position: int) -> str: ...

    def members(self, position: int) -> Sequence[int]:
        """The positions of the messages of its thread in this folder (itself included)."""
        ...

    def flags(self, positions: Sequence[int]) -> Mapping[int, tuple[bool, frozenset[str]]]:
        """(read, labels) of each message, as they are now."""
        ...


class ListedFolder:
    """A FolderView over messages all in memory (a Maildir folder as scanned)."""

    def __init__(self, messages: Iterable[Listed]) -> None:
        keyed = sorted(((-micros(m.date), m.message_id), m) for m in messages)
        self.messages = [message for _, message in keyed]
        self.stamps = [-negated for (negated, _), _ in keyed]
        self.threads: dict[str, list[int]] = {}
        for position, message in enumerate(self.messages):
            self.threads.setdefault(message.thread_id, []).append(position)

    @property
    def size(self) -> int:
        return len(self.messages)

    def load(self, positions: Iterable[int], *, threads: bool = False) -> None:
        pass

    def stamp(self, position: int) -> int:
        return self.stamps[position]

    def message_id(self, position: int) -> str:
        return self.messages[position].message_id

    def thread(self, position: int) -> str:
        return self.messages[position].thread_id

    def members(self, position: int) -> Sequence[int]:
        return self.threads[self.messages[position].thread_id]

    def flags(self, positions: Sequence[int]) -> Mapping[int, tuple[bool, frozenset[str]]]:
        return {p: (self.messages[p].read, self.messages[p].labels) for p in positions}


NO_MESSAGES: FolderView = ListedFolder(())  # an empty folder, or one that does not exist


def walk_page(
    view: FolderView,
    *,
    after: datetime | None,
    before: datetime | None,
    unread_only: bool,
    exclude_labels: Sequence[str],
    page_token: str | None,
    page_size: int,
) -> ThreadPage:
    """`thread_page` over the view, reading from the cursor's place on."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    cursor = decode_cursor(page_token) if page_token is not None else None
    low = None if after is None else micros(after)
    high = None if before is None else micros(before)
    window = _Window(low, high, 0 if high is None else _first(view, lambda s: s < high))
    start = window.start
    if cursor is not None:
        start = max(start, _first(view, lambda s: s <= -cursor[0]))
    walk = _Walk(view, window, start, cursor, unread_only, frozenset(exclude_labels))
    picked: list[tuple[tuple[int, str], str]] = []
    position, chunk = start, max(_LEAST_CHUNK, page_size + 1)
    while position < view.size and len(picked) <= page_size:
        end = _chunk_end(view, position, chunk)
        view.load(range(position, end), threads=True)
        candidates, exhausted = walk.candidates(position, end)
        for key, newest in walk.keep(candidates):
            picked.append((key, newest))
            if len(picked) > page_size:
                break
        if exhausted:
            break
        position = end
    page = picked[:page_size]
    return ThreadPage(
        thread_ids=[thread for (_, thread), _ in page],
        next_page_token=encode_cursor(page[-1][0]) if len(picked) > page_size else None,
        newest_message_ids={thread: newest for (_, thread), newest in page},
    )


@dataclass(frozen=True)
class _Window:
    low: int | None  # after, in microseconds
    high: int | None  # before
    start: int  # the first position inside `before`

    def holds(self, stamp: int) -> bool:
        return (self.low is None or stamp >= self.low) and (self.high is None or stamp < self.high)


class _Walk:
    """The threads placed at the positions walked, in rank order, filtered."""

    def __init__(
        self,
        view: FolderView,
        window: _Window,
        start: int,
        cursor: tuple[int, str] | None,
        unread_only: bool,
        excluded: frozenset[str],
    ) -> None:
        self.view, self.window, self.start, self.cursor = view, window, start, cursor
        self.unread_only, self.excluded = unread_only, excluded
        self.seen: set[str] = set()

    def candidates(self, begin: int, end: int) -> tuple[list[tuple[int, str, int]], bool]:
        """(-stamp, thread, position) of the threads whose place is in [begin, end), after
        the cursor; and whether the window ends there."""
        view, window = self.view, self.window
        found: list[tuple[int, str, int]] = []
        for position in range(begin, end):
            stamp = view.stamp(position)
            if window.low is not None and stamp < window.low:
                return sorted(found), True
            if not window.holds(stamp):
                continue
            thread = view.thread(position)
            if thread in self.seen:
                continue
            self.seen.add(thread)
            # A message of the thread between the window's edge and the walk's start:
            # the thread's place is there, on an earlier page.
            if any(window.start <= other < self.start for other in view.members(position)):
                continue
            if self.cursor is not None and (-stamp, thread) <= self.cursor:
                continue
            found.append((-stamp, thread, position))
        return sorted(found), False  # equal stamps: by thread id, as the cursor orders them

    def keep(self, candidates: list[tuple[int, str, int]]) -> Iterable[tuple[tuple[int, str], str]]:
        """Each candidate the filters keep: its sort key and its newest message's id."""
        view, window = self.view, self.window
        members = {thread: list(view.members(position)) for _, thread, position in candidates}
        view.load(position for positions in members.values() for position in positions)
        inside = {
            thread: [p for p in positions if window.holds(view.stamp(p))]
            for thread, positions in members.items()
        }
        flags: Mapping[int, tuple[bool, frozenset[str]]] = {}
        if self.unread_only or self.excluded:
            flags = view.flags([p for positions in inside.values() for p in positions])
        for negated, thread, _ in candidates:
            positions = inside[thread]
            states = [flags.get(p, (True, frozenset())) for p in positions]
            if self.unread_only and all(read for read, _ in states):
                continue
            if any(labels & self.excluded for _, labels in states):
                continue
            newest = max(view.message_id(p) for p in positions if view.stamp(p) == -negated)
            yield (negated, thread), newest


def _first(view: FolderView, test: Callable[[int], bool]) -> int:
    """The first position whose stamp passes `test` (false, then true, along the order);
    view.size when none does. A few batches of probes, each narrowing the range."""
    low, high = 0, view.size
    while high - low > _PROBES + 1:
        step = (high - low) / (_PROBES + 1)
        probes = sorted({low + int(step * (number + 1)) for number in range(_PROBES)})
        view.load(probes)
        below = low
        for probe in probes:
            if test(view.stamp(probe)):
                high = probe
                break
            below = probe + 1
        low = below
    view.load(range(low, high))
    return next((p for p in range(low, high) if test(view.stamp(p))), high)


def _chunk_end(view: FolderView, begin: int, chunk: int) -> int:
    """The end of the chunk read from `begin`: `chunk` positions, then on to the end of
    the last stamp's run (equal stamps rank by thread id, so a run is read whole)."""
    end = loaded = min(view.size, begin + chunk)
    view.load(range(begin, end))
    while end < view.size:
        if end == loaded:
            loaded = min(view.size, end + chunk)
            view.load(range(end, loaded))
        if view.stamp(end) != view.stamp(end - 1):
            break
        end += 1
    return end
