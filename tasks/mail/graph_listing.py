"""list_threads on Graph: a folder's messages, newest first, grouped into conversations.

Graph filters on the server: the window ($filter receivedDateTime ge `after` and lt
`before`), `isRead eq false` for unread_only, `not(categories/any(...))` per excluded
label, ordered by receivedDateTime desc ($orderby needs its property first in $filter,
so a listing with any filter always starts with a receivedDateTime clause). A thread's
place is its newest message that matches; `newest_message_ids` holds that message.

Page tokens are cursors, not offsets: Graph's @odata.nextLink for messages is a $skip
offset, and an offset skips threads when the threads of a page are archived (or marked
read) before the next page is asked for, which is what the clean job does. So a token is
the place of the page's last thread (its newest matching message's receivedDateTime and
its conversationId), and the next page lists the messages at or before that moment
again, from the start. A conversation found there was on an earlier page if it has a
matching message after that moment (asked for each new conversation found, 20 to a JSON
batch), or one at that very moment and an id not after the last one's. nextLinks are
followed only within one call, and only under our own Graph root (`GraphApi.link`).

A token is `g1.` and base64url JSON this module wrote; anything else is InvalidPageToken
before any request is made, so no token can send a request anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.outcome import RetryLater
from tasks.mail.graph_folders import GraphFolders, odata_text
from tasks.mail.graph_http import RETRY_SECONDS, GraphApi, SubRequest, path_of, raise_for
from tasks.mail.graph_messages import LISTED, graph_time, parse_time
from tasks.mail.maildir_cursor import micros
from tasks.mail.port import InvalidPageToken, MessageNotFound, ThreadPage

_PREFIX = "g1."
_EARLIEST = "receivedDateTime ge 1900-01-01T00:00:00Z"  # a window clause that keeps all
_CONVERSATION = re.compile(r"^[A-Za-z0-9+/=_\-.:]{1,1024}$")
MAX_TOP = 1000  # Graph's largest page of messages


@dataclass(frozen=True)
class Cursor:
    """The place of the last thread a page gave."""

    moment: datetime  # its newest matching message's receivedDateTime
    conversation: str


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([graph_time(cursor.moment), cursor.conversation]).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode()


def decode_cursor(token: str) -> Cursor:
    bad = InvalidPageToken(f"invalid page token {token[:40]!r}")
    if not token.startswith(_PREFIX):
        raise bad
    try:
        moment, conversation = json.loads(base64.urlsafe_b64decode(token[len(_PREFIX) :]))
    except (binascii.Error, UnicodeError, ValueError, TypeError, RecursionError):
        raise bad from None
    if not isinstance(moment, str) or not isinstance(conversation, str):
        raise bad
    if not _CONVERSATION.match(conversation):
        raise bad
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        raise bad from None
    if parsed.tzinfo is None or graph_time(parsed) != moment:
        raise bad
    return Cursor(parsed, conversation)


@dataclass(frozen=True)
class Listing:
    """One listing's question: which folder, window and filters."""

    messages_path: str  # me/mailFolders/<segment>/messages
    after: datetime | None
    before: datetime | None
    unread_only: bool
    exclude_labels: Sequence[str]

    def conditions(self) -> list[str]:
        found = ["isRead eq false"] if self.unread_only else []
        found += [f"not(categories/any(c:c eq {odata_text(x)}))" for x in self.exclude_labels]
        return found

    def window(self) -> list[str]:
        found = []
        if self.after is not None:
            found.append(f"receivedDateTime ge {graph_time(self.after)}")
        if self.before is not None:
            found.append(f"receivedDateTime lt {graph_time(self.before)}")
        return found


def list_page(
    api: GraphApi,
    folders: GraphFolders,
    *,
    folder: str,
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
    segment = folders.segment(folder)
    if segment is None:
        return ThreadPage(thread_ids=[], next_page_token=None)  # no such folder: nothing in it
    listing = Listing(
        path_of("me", "mailFolders", segment, "messages"),
        after,
        before,
        unread_only,
        list(exclude_labels),
    )
    try:
        newest, new = _read(api, listing, cursor, page_size)
    except MessageNotFound:  # a well-known folder this mailbox lacks (an archive, say)
        return ThreadPage(thread_ids=[], next_page_token=None)
    ranked = sorted(new, key=lambda c: (-micros(newest[c][0]), c))
    page = ranked[:page_size]
    last = page[-1] if page else None
    return ThreadPage(
        thread_ids=page,
        next_page_token=(
            encode_cursor(Cursor(newest[last][0], last))
            if last is not None and len(ranked) > page_size
            else None
        ),
        newest_message_ids={c: newest[c][1] for c in page},
    )


def _read(
    api: GraphApi, listing: Listing, cursor: Cursor | None, page_size: int
) -> tuple[dict[str, tuple[datetime, str]], list[str]]:
    """Each conversation's newest listed message, and the conversations not on an
    earlier page, read until more than a page of them are known in order."""
    window = listing.window()
    if cursor is not None:
        window.append(f"receivedDateTime le {graph_time(cursor.moment)}")
    clauses = window + listing.conditions()
    if clauses and not window:
        clauses.insert(0, _EARLIEST)
    params = {
        "$orderby": "receivedDateTime desc",
        "$top": str(min(MAX_TOP, 2 * page_size + 2)),
        "$select": LISTED,
    }
    if clauses:
        params["$filter"] = " and ".join(clauses)
    newest: dict[str, tuple[datetime, str]] = {}
    verdicts: dict[str, bool] = {}  # conversation -> not on an earlier page
    path: str = listing.messages_path
    query: dict[str, str] | None = params
    links: set[str] = set()
    while True:
        answer = api.call("list messages", "GET", path, params=query)
        last: datetime | None = None
        for item in answer.get("value", []):
            if not isinstance(item, dict) or not item.get("id"):
                continue
            when = parse_time(item.get("receivedDateTime"))
            conversation = str(item.get("conversationId") or item["id"])
            newest.setdefault(conversation, (when, str(item["id"])))
            last = when
        link = answer.get("@odata.nextLink")
        # Ordered for sure: what is newer than the last message read (more messages of
        # that very moment may come on the next page), or everything at the end.
        settled = [
            c
            for c, (when, _) in newest.items()
            if not isinstance(link, str) or (last is not None and when > last)
        ]
        unchecked = [c for c in settled if c not in verdicts]
        verdicts.update(_verdicts(api, listing, cursor, newest, unchecked))
        new = [c for c in settled if verdicts[c]]
        if not isinstance(link, str) or len(new) > page_size:
            return newest, new
        if link in links:
            raise RetryLater(f"{api.who}: Microsoft Graph repeated a page link", RETRY_SECONDS)
        links.add(link)
        path, query = link, None


def _verdicts(
    api: GraphApi,
    listing: Listing,
    cursor: Cursor | None,
    newest: dict[str, tuple[datetime, str]],
    conversations: list[str],
) -> dict[str, bool]:
    """Whether each conversation is not on an earlier page (module docstring)."""
    if cursor is None:
        return dict.fromkeys(conversations, True)
    verdicts: dict[str, bool] = {}
    asked: list[str] = []
    for conversation in conversations:
        if newest[conversation][0] == cursor.moment and conversation <= cursor.conversation:
            verdicts[conversation] = False
        else:
            asked.append(conversation)
    later = [f"receivedDateTime gt {graph_time(cursor.moment)}"]
    if listing.before is not None:
        later.append(f"receivedDateTime lt {graph_time(listing.before)}")
    requests = [
        SubRequest(
            "GET",
            listing.messages_path,
            {
                "$filter": " and ".join(
                    [*later, f"conversationId eq {odata_text(c)}", *listing.conditions()]
                ),
                "$top": "1",
                "$select": "id",
            },
        )
        for c in asked
    ]
    for conversation, answer in zip(asked, api.batch("list messages", requests), strict=True):
        raise_for("list messages", answer.status, answer.headers, answer.body, api.who)
        verdicts[conversation] = not answer.body.get("value")
    return verdicts
