"""Threads on the IMAP adapter, against a real Dovecot, on each way it finds them: the
server's THREAD=REFS, THREAD=REFERENCES (its subject-only merges split back), and the
References/In-Reply-To headers where the server has no THREAD (hidden from the adapter).
Every path must give the same threads, the same ids, and the same pages.

Also the page walk itself (`thread_pages.walk_page`) against the ranking it must equal
(`thread_page`), on generated folders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient import IMAPClient

from tasks.mail import imap_index
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_messages import fetch_headers
from tasks.mail.imap_session import ServerSettings
from tasks.mail.port import MessageNotFound
from tasks.mail.thread_pages import Listed, ListedFolder, thread_page, walk_page

PATHS = {
    "REFS": (),
    "REFERENCES": ("THREAD=REFS",),
    "headers": ("THREAD=REFS", "THREAD=REFERENCES"),
}


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def provider(user: Any, smtp: Any, path: str) -> ImapProvider:
    login = ServerSettings(user.host, user.port, "none", user.username, user.password)
    relay = ServerSettings(smtp.host, smtp.port, "none", "", "")
    return ImapProvider(login, relay, user.address, hide_capabilities=PATHS[path])


@pytest.fixture
def mail(imap_user: Any, smtp_server: Any, path: str) -> Iterator[ImapProvider]:
    made = provider(imap_user, smtp_server, path)
    assert made.threading == path
    yield made
    made.close()


def message(
    key: str,
    subject: str,
    *,
    minutes_ago: int,
    references: str = "",
    in_reply_to: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    now = now or datetime.now(UTC).replace(microsecond=0)
    built = EmailMessage()
    built["From"] = "ann@example.test"
    built["To"] = "me@example.test"
    built["Subject"] = subject
    built["Date"] = format_datetime(now - timedelta(minutes=minutes_ago))
    built["Message-ID"] = f"<{key}@threads.test>"
    if references:
        built["References"] = references
    if in_reply_to:
        built["In-Reply-To"] = in_reply_to
    built.set_content(f"Body of {subject}.")
    return built


def mid(key: str) -> str:
    return f"<{key}@threads.test>"


def deliver(user: Any, folder: str, *messages: EmailMessage) -> None:
    """Put messages in a folder as another client would (the user's, or a server's)."""
    with IMAPClient(user.host, port=user.port, ssl=False) as raw:
        raw.login(user.username, user.password)
        for built in messages:
            raw.append(folder, built.as_bytes())


def test_a_thread_spans_inbox_sent_and_archive_oldest_first(
    mail: ImapProvider, imap_user: Any
) -> None:
    root = message("root", "Plans", minutes_ago=30)
    deliver(imap_user, "INBOX", root)
    # The user's reply, sent from their phone: in Sent only.
    mine = message("mine", "Re: Plans", minutes_ago=20, references=mid("root"))
    mine.replace_header("From", imap_user.address)
    deliver(imap_user, "Sent", mine)
    theirs = message(
        "theirs",
        "Re: Plans",
        minutes_ago=10,
        references=f"{mid('root')} {mid('mine')}",
        in_reply_to=mid("mine"),
    )
    deliver(imap_user, "INBOX", theirs)
    mail.archive(mid("root"))

    (inbox_thread,) = mail.list_threads().thread_ids
    (sent_thread,) = mail.list_threads(folder="Sent").thread_ids
    thread = mail.get_thread(inbox_thread)

    assert inbox_thread == sent_thread == mid("root")
    assert [(m.id, m.folder) for m in thread] == [
        (mid("root"), "Archive"),
        (mid("mine"), "Sent"),
        (mid("theirs"), "INBOX"),
    ]
    assert {m.thread_id for m in thread} == {inbox_thread}
    assert thread[1].sent_by_me


def test_replies_by_in_reply_to_alone_and_through_a_missing_parent_are_one_thread(
    mail: ImapProvider, imap_user: Any
) -> None:
    deliver(
        imap_user,
        "INBOX",
        message("a", "Budget", minutes_ago=50),
        message("b", "Re: Budget", minutes_ago=40, references=mid("a"), in_reply_to=mid("a")),
        message("c", "Re: Budget", minutes_ago=30, in_reply_to=mid("b")),  # no References
        # Two replies to a message no folder holds, citing it in different chains:
        message("x", "Re: Offsite", minutes_ago=20, references=f"{mid('gone1')} {mid('p')}"),
        message("y", "Re: Offsite", minutes_ago=10, references=f"{mid('gone2')} {mid('p')}"),
    )

    page = mail.list_threads()

    assert page.thread_ids == [mid("gone1"), mid("a")]
    assert page.newest_message_ids == {mid("gone1"): mid("y"), mid("a"): mid("c")}
    assert [m.id for m in mail.get_thread(mid("a"))] == [mid("a"), mid("b"), mid("c")]
    assert [m.id for m in mail.get_thread(mid("gone1"))] == [mid("x"), mid("y")]
    # Any id of the thread finds all of it.
    assert [m.id for m in mail.get_thread(mid("gone2"))] == [mid("x"), mid("y")]


def test_mail_that_only_shares_a_subject_is_not_one_thread(
    mail: ImapProvider, imap_user: Any
) -> None:
    # THREAD=REFERENCES would merge these by subject (RFC 5256 step 5).
    deliver(
        imap_user,
        "INBOX",
        message("r1", "Your receipt", minutes_ago=30),
        message("r2", "Your receipt", minutes_ago=20),
        message("lunch", "Lunch", minutes_ago=15),
        message("re-lunch", "Re: Lunch", minutes_ago=10),  # a reply without any header
    )

    assert mail.list_threads().thread_ids == [mid("re-lunch"), mid("lunch"), mid("r2"), mid("r1")]
    assert [m.id for m in mail.get_thread(mid("r1"))] == [mid("r1")]


def test_thread_ids_stay_as_a_thread_grows_and_in_a_new_session(
    mail: ImapProvider, imap_user: Any, smtp_server: Any, path: str
) -> None:
    deliver(imap_user, "INBOX", message("start", "Kickoff", minutes_ago=60))
    deliver(imap_user, "INBOX", message("other", "Other", minutes_ago=50))
    first = mail.list_threads().thread_ids

    for number in range(3):
        deliver(
            imap_user,
            "INBOX",
            message(
                f"reply{number}",
                "Re: Kickoff",
                minutes_ago=40 - number,
                references=mid("start") if number == 0 else f"{mid('start')} {mid('reply0')}",
                in_reply_to=mid("start") if number == 0 else mid(f"reply{number - 1}"),
            ),
        )
    later = mail.list_threads()
    again = provider(imap_user, smtp_server, path)
    try:
        fresh = again.list_threads().thread_ids
    finally:
        again.close()

    assert first == [mid("other"), mid("start")]
    assert later.thread_ids == fresh == [mid("start"), mid("other")]
    assert later.newest_message_ids[mid("start")] == mid("reply2")
    assert len(mail.get_thread(mid("start"))) == 4


def test_pages_neither_skip_nor_repeat_threads_archived_between_them(
    mail: ImapProvider, imap_user: Any
) -> None:
    messages = []
    for number in range(9):
        messages.append(message(f"t{number}", f"Topic {number}", minutes_ago=100 - 10 * number))
        if number % 3 == 0:  # some threads have a reply, older than the next thread
            reply = message(
                f"t{number}r",
                "Re",
                minutes_ago=99 - 10 * number,
                references=mid(f"t{number}"),
            )
            messages.append(reply)
    deliver(imap_user, "INBOX", *messages)
    expected = [mid(f"t{number}") for number in reversed(range(9))]

    listed: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_size=2, page_token=token)
        listed += page.thread_ids
        for thread in page.thread_ids:  # what the clean job does with a page
            for found in mail.get_thread(thread):
                mail.archive(found.id)
        token = page.next_page_token
        if token is None:
            break

    assert listed == expected
    assert mail.list_threads().thread_ids == []


def test_equal_dates_page_by_thread_id(mail: ImapProvider, imap_user: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tied = (message(f"same{n:02}", "Tie", minutes_ago=5, now=now) for n in range(12))
    deliver(imap_user, "INBOX", *tied)
    deliver(imap_user, "INBOX", message("newer", "New", minutes_ago=1, now=now))

    listed: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_size=5, page_token=token)
        listed += page.thread_ids
        token = page.next_page_token
        if token is None:
            break

    assert listed == [mid("newer"), *sorted(mid(f"same{n:02}") for n in range(12))]


def test_a_window_and_filters_deep_in_a_folder(mail: ImapProvider, imap_user: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    deliver(
        imap_user,
        "INBOX",
        *(message(f"m{n:03}", f"Note {n}", minutes_ago=n, now=now) for n in range(120)),
    )
    mail.mark_read(mid("m050"))
    # [after, before): m040 is dated `before` exactly, so left out; m060 is in.
    after, before = now - timedelta(minutes=60, seconds=30), now - timedelta(minutes=40)

    page = mail.list_threads(after=after, before=before, unread_only=True, page_size=5)
    rest = mail.list_threads(
        after=after, before=before, unread_only=True, page_token=page.next_page_token
    )

    assert page.thread_ids == [mid(f"m{n:03}") for n in (41, 42, 43, 44, 45)]
    assert rest.thread_ids == [mid(f"m{n:03}") for n in range(46, 61) if n != 50]
    assert rest.next_page_token is None


def test_a_message_gone_while_a_page_is_read_is_left_out(
    mail: ImapProvider, imap_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver(imap_user, "INBOX", *(message(f"g{n}", f"G {n}", minutes_ago=n) for n in range(6)))
    mail.list_threads(page_size=1)  # the folder's order is kept from here on
    imap_index.forget_headers()  # ... and its messages' headers are fetched again
    fetch = fetch_headers
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as raw:
        raw.login(imap_user.username, imap_user.password)
        raw.select_folder("INBOX")
        gone = raw.search(["HEADER", "Message-ID", mid("g3")])

        def expunged_meanwhile(client: Any, uids: Any, *args: Any) -> Any:
            found = fetch(client, uids, *args)
            if gone[0] in found:  # expunged by another session as this page read it
                raw.move(gone, "Trash")
                del found[gone[0]]
            return found

        monkeypatch.setattr(imap_index, "fetch_headers", expunged_meanwhile)
        page = mail.list_threads()

    assert page.thread_ids == [mid(f"g{n}") for n in (0, 1, 2, 4, 5)]
    with pytest.raises(MessageNotFound):
        mail.get_thread(mid("g3"))


# The page walk against the definition ------------------------------------------------

stamps = st.integers(min_value=0, max_value=12)  # few distinct dates: many ties
messages = st.lists(
    st.tuples(stamps, st.integers(0, 6), st.booleans(), st.sets(st.sampled_from("ab"))),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    messages,
    st.integers(1, 5),
    st.one_of(st.none(), stamps),
    st.one_of(st.none(), stamps),
    st.booleans(),
    st.lists(st.sampled_from("ab"), max_size=1),
)
def test_walked_pages_are_the_ranked_pages(
    drawn: list[tuple[int, int, bool, set[str]]],
    page_size: int,
    after: int | None,
    before: int | None,
    unread_only: bool,
    excluded: list[str],
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def moment(minute: int | None) -> datetime | None:
        return None if minute is None else start + timedelta(minutes=minute)

    listed = [
        Listed(f"t{thread}", start + timedelta(minutes=minute), f"m{n}", read, frozenset(labels))
        for n, (minute, thread, read, labels) in enumerate(drawn)
    ]
    options: dict[str, Any] = {
        "after": moment(after),
        "before": moment(before),
        "unread_only": unread_only,
        "exclude_labels": excluded,
        "page_size": page_size,
    }
    folder = ListedFolder(listed)
    token: str | None = None
    for _ in range(len(listed) + 2):
        expected = thread_page(listed, page_token=token, **options)
        assert walk_page(folder, page_token=token, **options) == expected
        token = expected.next_page_token
        if token is None:
            break
