"""The Maildir adapter does each mail operation for real, on disk, idempotently."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from tasks.mail import maildir_files
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import InvalidPageToken, MessageNotFound, OutgoingMail, ThreadPage
from tests.conftest import Mailbox


def test_archive_moves_the_message_out_of_the_inbox_keeping_its_id(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    mail.archive(mailbox.keys[0])
    assert mailbox.keys[0] in mailbox.folder_keys("Archive")
    assert mailbox.keys[0] not in mailbox.folder_keys("INBOX")
    assert mail.get_message(mailbox.keys[0]).folder == "Archive"


def test_archiving_twice_is_one_archive(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    mail.archive(mailbox.keys[0])
    mail.archive(mailbox.keys[0])
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}


def test_mark_read_sets_the_seen_flag(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    assert mail.get_message(mailbox.keys[1]).read is False
    mail.mark_read(mailbox.keys[1])
    assert mail.get_message(mailbox.keys[1]).read is True


def test_label_adds_each_label_once(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    mail.label(mailbox.keys[0], "Newsletters")
    mail.label(mailbox.keys[0], "Newsletters")
    mail.label(mailbox.keys[0], "Later")
    assert mail.get_message(mailbox.keys[0]).labels == {"Newsletters", "Later"}


def test_move_creates_the_folder_and_keeps_flags(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    mail.mark_read(mailbox.keys[2])
    mail.move(mailbox.keys[2], "Receipts")
    moved = mail.get_message(mailbox.keys[2])
    assert (moved.folder, moved.read) == ("Receipts", True)


def test_send_writes_to_sent_once_per_idempotency_key(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    outgoing = OutgoingMail(to="a@example.test", subject="Hi", body="Hello", idempotency_key="k1")
    first, second = mail.send(outgoing), mail.send(outgoing)
    assert first == second
    assert len(mailbox.folder_keys("Sent")) == 1
    assert mail.get_message(first).to == "a@example.test"


def test_operations_on_a_missing_message_raise_message_not_found(mailbox: Mailbox) -> None:
    mail = mailbox.provider()
    for operation in (mail.archive, mail.mark_read, mail.get_message):
        with pytest.raises(MessageNotFound):
            operation("no-such-message")


# Reading and listing ---------------------------------------------------------------------
BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ME = "me@example.test"


@pytest.fixture
def mail(tmp_path: Path) -> MaildirProvider:
    """An empty account: listings see only the messages a test delivers."""
    return MaildirProvider(tmp_path / "account", ME)


def incoming(
    mail: MaildirProvider,
    *,
    date: datetime | None = BASE,
    message_id: str | None = None,
    references: str | None = None,
    sender: str = "someone@example.test",
    subject: str = "Hello",
    read: bool = False,
    labels: Sequence[str] = (),
) -> str:
    """Deliver a plain message to the inbox and return its key."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ME, subject
    if date is not None:
        message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id or make_msgid("test")
    if references:
        message["References"] = references
    message.set_content(f"Body of {subject}.")
    key = mail.deliver(message)
    if read:
        mail.mark_read(key)
    for label in labels:
        mail.label(key, label)
    return key


def threads(mail: MaildirProvider, count: int) -> list[str]:
    """`count` one-message threads a minute apart; their ids newest first."""
    ids = [f"<t{number:03d}@test>" for number in range(count)]
    for number, thread in enumerate(ids):
        incoming(mail, message_id=thread, date=BASE - timedelta(minutes=number))
    return ids


def all_pages(mail: MaildirProvider, **query: Any) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = mail.list_threads(page_token=token, **query)
        pages.append(page.thread_ids)
        if page.next_page_token is None:
            return pages
        token = page.next_page_token


def test_paging_returns_every_thread_once_newest_first(mail: MaildirProvider) -> None:
    expected = threads(mail, 60)
    pages = all_pages(mail, page_size=25)
    assert [len(page) for page in pages] == [25, 25, 10]
    assert [thread for page in pages for thread in page] == expected


def test_threads_archived_between_pages_are_neither_skipped_nor_repeated(
    mail: MaildirProvider,
) -> None:
    expected = threads(mail, 60)
    first = mail.list_threads(page_size=25)
    # The usual caller archives what it has processed; an offset would then skip 25.
    for thread in [*first.thread_ids, expected[30], expected[55]]:
        mail.archive(mail.get_thread(thread)[0].id)
    rest, token = [], first.next_page_token
    while token is not None:
        page = mail.list_threads(page_token=token, page_size=25)
        rest.extend(page.thread_ids)
        token = page.next_page_token
    assert rest == [
        thread for thread in expected[25:] if thread not in (expected[30], expected[55])
    ]


def test_a_thread_is_placed_by_its_newest_message_in_the_folder(mail: MaildirProvider) -> None:
    incoming(mail, message_id="<old@test>", date=BASE - timedelta(hours=3))
    incoming(mail, message_id="<middle@test>", date=BASE - timedelta(hours=2))
    incoming(mail, references="<old@test>", date=BASE - timedelta(hours=1))
    assert mail.list_threads().thread_ids == ["<old@test>", "<middle@test>"]


def test_threads_dated_alike_are_ordered_by_id_and_paged_without_loss(
    mail: MaildirProvider,
) -> None:
    for thread in ("<c@test>", "<a@test>", "<e@test>", "<b@test>", "<d@test>"):
        incoming(mail, message_id=thread, date=BASE)
    pages = all_pages(mail, page_size=2)
    assert pages == [["<a@test>", "<b@test>"], ["<c@test>", "<d@test>"], ["<e@test>"]]


def test_unread_only_lists_threads_with_an_unread_message(mail: MaildirProvider) -> None:
    incoming(mail, message_id="<read@test>", read=True)
    incoming(mail, message_id="<partly@test>", date=BASE - timedelta(hours=2), read=True)
    incoming(mail, references="<partly@test>", date=BASE - timedelta(hours=1))
    incoming(mail, message_id="<unread@test>", date=BASE - timedelta(hours=3))
    assert mail.list_threads(unread_only=True).thread_ids == ["<partly@test>", "<unread@test>"]


def test_exclude_labels_skips_threads_with_a_labelled_message(mail: MaildirProvider) -> None:
    incoming(mail, message_id="<plain@test>")
    incoming(mail, message_id="<done@test>", labels=["Done"])
    incoming(mail, message_id="<later@test>", labels=["Later", "Work"])
    incoming(mail, message_id="<work@test>", labels=["Work"])
    page = mail.list_threads(exclude_labels=["Done", "Later"])
    assert sorted(page.thread_ids) == ["<plain@test>", "<work@test>"]


def test_the_date_window_includes_after_and_excludes_before(mail: MaildirProvider) -> None:
    after, before = BASE - timedelta(days=1), BASE
    second = timedelta(seconds=1)
    for name, date in [("early", after - second), ("first", after), ("last", before - second)]:
        incoming(mail, message_id=f"<{name}@test>", date=date)
    incoming(mail, message_id="<late@test>", date=before)
    page = mail.list_threads(after=after, before=before)
    assert page.thread_ids == ["<last@test>", "<first@test>"]


def test_list_threads_reads_one_folder_and_does_not_create_a_missing_one(
    mail: MaildirProvider,
) -> None:
    archived = incoming(mail, message_id="<archived@test>")
    incoming(mail, message_id="<kept@test>")
    mail.archive(archived)
    assert mail.list_threads(folder="Archive").thread_ids == ["<archived@test>"]
    assert mail.list_threads(folder="Nowhere") == ThreadPage([], None)
    assert "Nowhere" not in mail.folder_names()


def test_a_malformed_page_token_is_rejected_for_good(mail: MaildirProvider) -> None:
    threads(mail, 2)
    nested = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    for token in (
        "not a token",
        "!!!",
        "bnVsbA==",
        base64.urlsafe_b64encode(b'["x", 1]').decode(),
        nested,
    ):
        with pytest.raises(InvalidPageToken, match="invalid page token"):
            mail.list_threads(page_token=token)


def test_listing_again_parses_only_the_headers_of_changed_files(
    mail: MaildirProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [incoming(mail, message_id=f"<c{number}@test>") for number in range(4)]
    parse = maildir_files.parse_headers
    parsed: list[int] = []

    def counting(handle: BinaryIO) -> dict[str, str]:
        parsed.append(1)
        return parse(handle)

    monkeypatch.setattr(maildir_files, "parse_headers", counting)
    mail.list_threads()
    mail.list_threads()
    assert len(parsed) == 4
    mail.label(keys[0], "Work")  # rewrites the file: its cached headers are stale
    assert mail.list_threads(exclude_labels=["Work"]).thread_ids == [
        f"<c{number}@test>" for number in (1, 2, 3)
    ]
    assert len(parsed) == 5


def test_get_message_dates_by_the_date_header_in_utc(mail: MaildirProvider) -> None:
    key = incoming(mail, date=datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))))
    date = mail.get_message(key).date
    assert date == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert date is not None and date.tzinfo is UTC


def test_get_message_without_a_date_header_is_dated_by_its_file(mail: MaildirProvider) -> None:
    key = incoming(mail, date=None)
    (path,) = (mail.root / "new").glob(f"{key}*")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert mail.get_message(key).date == datetime.fromtimestamp(1_700_000_000, UTC)


def test_get_message_gives_the_headers_rules_look_at(mail: MaildirProvider) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "News <news@example.test>", ME, "Café"
    message["List-Unsubscribe"] = "<mailto:leave@example.test>"
    message["List-ID"] = "Weekly <weekly.example.test>"
    message["Precedence"] = "bulk"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("Hi")
    headers = mail.get_message(mail.deliver(message)).headers
    assert headers["list-unsubscribe"] == "<mailto:leave@example.test>"
    assert headers["list-id"] == "Weekly <weekly.example.test>"
    assert (headers["precedence"], headers["auto-submitted"]) == ("bulk", "auto-generated")
    assert headers["content-type"].startswith("text/plain")
    assert (headers["from"], headers["to"]) == ("News <news@example.test>", ME)
    assert headers["subject"] == "Café"  # stored RFC 2047-encoded, read decoded


def test_an_html_only_message_has_its_text_as_body(mail: MaildirProvider) -> None:
    message = EmailMessage()
    message["From"], message["Subject"] = "shop@example.test", "Offer"
    message.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>Hello\n  <b>there</b>,</p><p>50% off &amp; free shipping</p>"
        "<script>track()</script></body></html>",
        subtype="html",
    )
    body = mail.get_message(mail.deliver(message)).body
    assert body == "Hello there,\n50% off & free shipping"


def test_an_attachment_is_detected_and_the_body_is_the_plain_part(
    mail: MaildirProvider,
) -> None:
    message = EmailMessage()
    message["From"], message["Subject"] = "a@example.test", "Invoice"
    message.set_content("See the invoice.")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="i.pdf")
    with_attachment = mail.get_message(mail.deliver(message))
    assert (with_attachment.has_attachment, with_attachment.body) == (True, "See the invoice.\n")
    assert mail.get_message(incoming(mail)).has_attachment is False


def test_sent_by_me_compares_the_from_address_case_insensitively(mail: MaildirProvider) -> None:
    mine = incoming(mail, sender='"Me, at work" <ME@Example.TEST>')
    theirs = incoming(mail, sender=f'"{ME}" <someone@example.test>')
    assert mail.get_message(mine).sent_by_me is True
    assert mail.get_message(theirs).sent_by_me is False


def test_get_thread_gathers_the_thread_across_folders_oldest_first(
    mail: MaildirProvider,
) -> None:
    reply = incoming(mail, references="<root@test>", date=BASE - timedelta(hours=1))
    root = incoming(mail, message_id="<root@test>", date=BASE - timedelta(hours=2))
    incoming(mail, message_id="<other@test>", date=BASE - timedelta(hours=3))
    mail.archive(reply)
    sent = mail.send(
        OutgoingMail(to="a@example.test", subject="Re", body="Ok", in_reply_to="<root@test>")
    )
    thread = mail.get_thread("<root@test>")
    assert [(m.id, m.folder) for m in thread] == [
        (root, "INBOX"),
        (reply, "Archive"),
        (sent, "Sent"),
    ]
    assert [m.sent_by_me for m in thread] == [False, False, True]


def test_a_reply_to_a_reply_stays_in_the_thread(mail: MaildirProvider) -> None:
    incoming(mail, message_id="<root@test>", date=BASE - timedelta(hours=2))
    incoming(mail, message_id="<reply@test>", references="<root@test>", date=BASE)
    sent = mail.send(
        OutgoingMail(to="a@example.test", subject="Re", body="Ok", in_reply_to="<reply@test>")
    )
    answer = mail.get_message(sent)
    assert answer.headers["references"] == "<root@test> <reply@test>"
    assert answer.thread_id == "<root@test>"


def test_get_thread_of_an_unknown_thread_raises_message_not_found(
    mail: MaildirProvider,
) -> None:
    incoming(mail)
    with pytest.raises(MessageNotFound):
        mail.get_thread("<nothing@test>")


def test_list_labels_lists_keywords_in_use_and_folders(mail: MaildirProvider) -> None:
    incoming(mail, labels=["Newsletters", "Later"])
    incoming(mail, labels=["Later", "Résumé"])
    mail.move(incoming(mail), "Receipts")
    mail.archive(incoming(mail))
    mail.send(OutgoingMail(to="a@example.test", subject="Hi", body="Hello"))
    assert mail.list_labels() == ["Archive", "Later", "Newsletters", "Receipts", "Résumé"]


def test_a_non_ascii_label_is_added_once(mail: MaildirProvider) -> None:
    key = incoming(mail)
    for label in ("Résumé", "Later", "Résumé"):
        mail.label(key, label)
    assert mail.get_message(key).labels == {"Résumé", "Later"}


def test_send_with_html_writes_plain_and_html_alternatives(mail: MaildirProvider) -> None:
    outgoing = OutgoingMail(to="a@example.test", subject="Hi", body="Hello", html="<p>Hello</p>")
    key = mail.send(outgoing)
    stored = mail.folder("Sent")[key]
    assert stored.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in stored.walk()}
    assert (parts["text/plain"], parts["text/html"]) == (b"Hello\n", b"<p>Hello</p>\n")
    assert mail.get_message(key).body == "Hello\n"


def test_listing_names_each_threads_newest_message(mailbox: Mailbox) -> None:
    from datetime import timedelta
    from email.message import EmailMessage as _Email
    from email.utils import format_datetime

    from tasks.models import utcnow

    mail = mailbox.provider()
    original = mail.get_message(mailbox.keys[0])
    reply = _Email()
    reply["From"], reply["To"], reply["Subject"] = "x@example.test", mailbox.email, "Re: it"
    reply["Date"] = format_datetime(utcnow() + timedelta(minutes=1))
    reply["Message-ID"] = "<reply-1@example.test>"
    reply["References"] = original.message_id_header
    reply.set_content("a reply")
    reply_key = mail.deliver(reply)

    page = mail.list_threads(page_size=10)

    assert page.newest_message_ids[original.thread_id] == reply_key
    assert set(page.newest_message_ids) == set(page.thread_ids)


def test_a_directory_of_dots_in_the_root_is_no_folder_and_breaks_nothing(
    mailbox: Mailbox,
) -> None:
    (mailbox.path / "...").mkdir()  # made by some tool; as a folder it would be ".."
    mail = mailbox.provider()

    mail.move(mailbox.keys[0], "Receipts")

    assert mail.get_message(mailbox.keys[0]).folder == "Receipts"
