"""The IMAP adapter against a real Dovecot (and its SMTP server): the mail port's
behaviours, as the Maildir adapter shows them, on a standards mailbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from bridge.outcome import PermanentError
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_session import MailLoginRefused, ServerSettings
from tasks.mail.port import MessageNotFound, OutgoingMail


def settings(user: Any, port: int | None = None, password: str | None = None) -> ServerSettings:
    return ServerSettings(
        host=user.host,
        port=port or user.port,
        security="none",
        username=user.username,
        password=password or user.password,
    )


@pytest.fixture
def mail(imap_user: Any, smtp_server: Any) -> Iterator[ImapProvider]:
    smtp = ServerSettings(smtp_server.host, smtp_server.port, "none", "", "")
    provider = ImapProvider(settings(imap_user), smtp, imap_user.address)
    yield provider
    provider.close()


def message(
    subject: str, *, minutes_ago: int = 1, reply_to: EmailMessage | None = None, **headers: str
) -> EmailMessage:
    built = EmailMessage()
    built["From"] = headers.pop("sender", "ann@example.test")
    built["To"] = "me@example.test"
    built["Subject"] = subject
    built["Date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=minutes_ago))
    built["Message-ID"] = make_msgid("imap-test")
    if reply_to is not None:
        built["In-Reply-To"] = reply_to["Message-ID"]
        built["References"] = reply_to["Message-ID"]
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(f"Body of {subject}.")
    return built


def test_threads_are_listed_newest_first_and_read_whole(mail: ImapProvider) -> None:
    first = message("Lunch?", minutes_ago=30)
    mail.deliver(first)
    report = mail.deliver(message("Report", minutes_ago=20))
    answer = mail.deliver(message("Re: Lunch?", minutes_ago=10, reply_to=first))

    page = mail.list_threads()

    assert page.thread_ids == [first["Message-ID"], report]
    assert page.next_page_token is None
    assert page.newest_message_ids[first["Message-ID"]] == answer
    thread = mail.get_thread(first["Message-ID"])
    assert [m.subject for m in thread] == ["Lunch?", "Re: Lunch?"]
    assert thread[1].body.strip() == "Body of Re: Lunch?."


def test_pages_follow_their_cursor_without_repeats(mail: ImapProvider) -> None:
    for number in range(5):
        mail.deliver(message(f"Note {number}", minutes_ago=number + 1))
    seen: list[str] = []
    token: str | None = None
    while True:
        page = mail.list_threads(page_size=2, page_token=token)
        seen += page.thread_ids
        token = page.next_page_token
        if token is None:
            break
    subjects = [mail.get_thread(thread)[0].subject for thread in seen]
    assert subjects == [f"Note {number}" for number in range(5)]


def test_the_window_and_unread_filter_choose_the_threads(mail: ImapProvider) -> None:
    mail.deliver(message("Old", minutes_ago=3 * 24 * 60))
    mail.deliver(message("Recent"))
    mail.mark_read(mail.deliver(message("Recent but read", minutes_ago=2)))

    since_yesterday = datetime.now(UTC) - timedelta(days=1)
    page = mail.list_threads(after=since_yesterday, unread_only=True)

    assert [mail.get_thread(t)[0].subject for t in page.thread_ids] == ["Recent"]


def test_a_listing_sees_what_other_clients_changed_since_the_last_one(
    mail: ImapProvider, imap_user: Any
) -> None:
    first = mail.deliver(message("First", minutes_ago=3))
    second = mail.deliver(message("Second", minutes_ago=2))
    mail.label(second, "Done")
    assert mail.list_threads(unread_only=True).thread_ids == [second, first]

    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as raw:  # the user's phone
        raw.login(imap_user.username, imap_user.password)
        raw.append("INBOX", message("Third", minutes_ago=1).as_bytes())
        raw.select_folder("INBOX")
        raw.add_flags(raw.search(["HEADER", "Message-ID", first]), [b"\\Seen"])

    unread = mail.list_threads(unread_only=True, exclude_labels=["Done"])
    assert [mail.get_thread(t)[0].subject for t in unread.thread_ids] == ["Third"]


def test_an_archived_message_keeps_its_id_and_lands_in_the_archive_folder(
    mail: ImapProvider, imap_user: Any
) -> None:
    key = mail.deliver(message("Quarterly report"))

    mail.archive(key)
    mail.archive(key)  # twice is one move

    moved = mail.get_message(key)
    assert (moved.id, moved.folder) == (key, "Archive")
    assert mail.list_threads().thread_ids == []


def copies_in(user: Any, folder: str, message_id: str) -> int:
    with IMAPClient(user.host, port=user.port, ssl=False) as raw:
        raw.login(user.username, user.password)
        raw.select_folder(folder, readonly=True)
        return len(raw.search(["HEADER", "Message-ID", message_id]))


def test_mark_read_label_and_star(mail: ImapProvider, imap_user: Any) -> None:
    key = mail.deliver(message("Invoice"))
    mail.mark_read(key)
    mail.label(key, "Processed")
    mail.label(key, "Processed")

    read = mail.get_message(key)
    assert read.read and read.labels == frozenset({"Processed"})
    assert not mail.is_starred(read)
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as raw:
        raw.login(imap_user.username, imap_user.password)
        raw.select_folder("INBOX")
        (uid,) = raw.search(["HEADER", "Message-ID", key])
        raw.add_flags([uid], [b"\\Flagged"])
    assert mail.is_starred(read)


def test_move_creates_the_folder(mail: ImapProvider) -> None:
    key = mail.deliver(message("Receipts"))

    mail.move(key, "Receipts 2026")

    assert mail.get_message(key).folder == "Receipts 2026"


def test_a_message_gone_since_the_listing_is_not_found(mail: ImapProvider, imap_user: Any) -> None:
    key = mail.deliver(message("Soon deleted"))
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as raw:
        raw.login(imap_user.username, imap_user.password)
        raw.select_folder("INBOX")
        raw.move(raw.search(["ALL"]), "Trash")

    with pytest.raises(MessageNotFound):
        mail.archive(key)


def test_a_message_without_message_id_is_found_by_its_place(mail: ImapProvider) -> None:
    bare = message("No id")
    del bare["Message-ID"]
    mail.deliver(bare)

    (thread,) = mail.list_threads().thread_ids
    (found,) = mail.get_thread(thread)

    assert found.id.startswith("uid:") and found.subject == "No id"
    mail.mark_read(found.id)
    assert mail.get_message(found.id).read


def test_malformed_and_non_utf8_mail_is_read_without_a_crash(mail: ImapProvider) -> None:
    raw = (
        b"From: =?bogus?q?x?= <odd@example.test>\r\nSubject: caf\xe9\r\n"
        b"Message-ID: <odd@example.test>\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
    )
    mail.client.append("INBOX", raw)

    read = mail.get_message("<odd@example.test>")

    assert read.subject.startswith("caf") and read.sender.endswith("<odd@example.test>")


def test_send_goes_through_smtp_once_per_key_and_is_kept_in_sent(
    mail: ImapProvider, smtp_server: Any, imap_user: Any
) -> None:
    outgoing = OutgoingMail(
        to=imap_user.address, subject="Hello", body="Hi!", idempotency_key="greet-1"
    )

    first, second = mail.send(outgoing), mail.send(outgoing)

    assert first == second == "<greet-1@jobbridge>"
    assert len([m for m in smtp_server.messages if b"greet-1@jobbridge" in m.data]) == 1
    assert copies_in(imap_user, "Sent", first) == 1


def refuse_the_copy_of(
    subject: str, error: IMAPClientError, monkeypatch: pytest.MonkeyPatch
) -> list[bytes]:
    """Make APPEND fail, once, for a message with this subject; what it refused."""
    append = IMAPClient.append
    refused: list[bytes] = []

    def refusing(client: IMAPClient, folder: Any, message: bytes, *args: Any, **kw: Any) -> Any:
        if f"Subject: {subject}".encode() in message and not refused:
            refused.append(message)
            raise error
        return append(client, folder, message, *args, **kw)

    monkeypatch.setattr(IMAPClient, "append", refusing)
    return refused


def relayed(smtp_server: Any, message_id: str) -> int:
    return len([m for m in smtp_server.messages if message_id.encode() in m.data])


def test_a_send_whose_copy_sent_refuses_goes_out_once_and_succeeds(
    mail: ImapProvider, smtp_server: Any, imap_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = IMAPClientError("APPEND failed: [OVERQUOTA] Quota exceeded")
    refused = refuse_the_copy_of("Quota", full, monkeypatch)
    outgoing = OutgoingMail(
        to=imap_user.address, subject="Quota", body="Hi!", idempotency_key="quota-1"
    )

    first, again = mail.send(outgoing), mail.send(outgoing)

    assert first == again == "<quota-1@jobbridge>"
    assert len(refused) == 1
    assert relayed(smtp_server, first) == 1


def test_a_send_cut_off_before_its_copy_keeps_it_on_the_retry_without_sending_again(
    mail: ImapProvider, smtp_server: Any, imap_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_the_copy_of("Cut", IMAPClientAbortError("socket closed"), monkeypatch)
    outgoing = OutgoingMail(
        to=imap_user.address, subject="Cut", body="Hi!", idempotency_key="cut-1"
    )
    with pytest.raises(IMAPClientAbortError):
        mail.send(outgoing)

    retried = mail.send(outgoing)

    assert relayed(smtp_server, retried) == 1
    assert copies_in(imap_user, "Sent", retried) == 1


def test_a_send_whose_record_failed_after_smtp_took_it_is_not_sent_again(
    mail: ImapProvider, smtp_server: Any, imap_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.mail import send_once as records

    def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database went away")

    outgoing = OutgoingMail(to=imap_user.address, subject="Blip", body="Hi!", idempotency_key="b-1")
    with monkeypatch.context() as away:
        away.setattr(records, "_mark_sent", lost)
        with pytest.raises(ConnectionError):
            mail.send(outgoing)

    retried = mail.send(outgoing)  # its copy in Sent says it went out

    assert relayed(smtp_server, retried) == 1


def test_a_reply_carries_the_threads_references(
    mail: ImapProvider, smtp_server: Any, imap_user: Any
) -> None:
    parent = message("Question")
    key = mail.deliver(parent)

    sent = mail.send(
        OutgoingMail(to=imap_user.address, subject="Re: Question", body="Yes.", in_reply_to=key)
    )

    (relayed,) = [m for m in smtp_server.messages if sent.encode() in m.data]
    assert f"References: {key}".encode() in relayed.data
    assert [m.subject for m in mail.get_thread(key)] == ["Question", "Re: Question"]


def test_a_send_every_recipient_refuses_is_permanent(mail: ImapProvider) -> None:
    with pytest.raises(PermanentError, match="refused every recipient"):
        mail.send(OutgoingMail(to="nobody@example.test", subject="Hi", body="?"))


def test_a_wrong_password_is_a_permanent_refusal(imap_user: Any) -> None:
    provider = ImapProvider(settings(imap_user, password="wrong"), None, imap_user.address)
    with pytest.raises(MailLoginRefused, match="login refused"):
        provider.list_threads()


def test_an_unreachable_server_is_a_transient_failure(imap_user: Any) -> None:
    provider = ImapProvider(settings(imap_user, port=9), None, imap_user.address)
    with pytest.raises(ConnectionError, match="unreachable"):
        provider.list_threads()


def test_plain_text_security_is_refused_for_a_remote_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ServerSettings("mail.example.com", 143, "none", "ana", "secret")
