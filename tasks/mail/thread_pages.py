"""One page of threads from the messages a listing saw, for every adapter: the ranking
(newest message first), the window, the filters and the cursors (docs: the mail port's
`list_threads`).

A thread's place is its newest message in the folder and window, whether or not it is
read or labelled: marking read or labelling the threads of one page (what callers do
with a page) then moves no thread across the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tasks.mail.maildir_cursor import decode_cursor, encode_cursor, micros
from tasks.mail.port import ThreadPage


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
