"""The IMAP adapter finds a message by its Message-ID through the process's index of each
folder's Message-IDs (`imap_lookup`), against a real Dovecot: no SEARCH HEADER (which
reads every message of the folder), and a message another client moved or deleted is
found where it is now, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from imapclient import IMAPClient

from tasks.mail.imap import ImapProvider
from tasks.mail.imap_session import ServerSettings
from tasks.mail.port import MessageNotFound


@pytest.fixture
def mail(imap_user: Any) -> Iterator[ImapProvider]:
    settings = ServerSettings(
        imap_user.host, imap_user.port, "none", imap_user.username, imap_user.password
    )
    provider = ImapProvider(settings, None, imap_user.address)
    yield provider
    provider.close()


@pytest.fixture
def phone(imap_user: Any) -> Iterator[IMAPClient]:
    """Another client of the same account (the user's phone), on its own connection."""
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        yield client


def message(subject: str) -> EmailMessage:
    built = EmailMessage()
    built["From"], built["To"], built["Subject"] = "ann@example.test", "me@example.test", subject
    built["Date"] = format_datetime(datetime.now(UTC))
    built["Message-ID"] = make_msgid("lookup")
    built.set_content(f"Body of {subject}.")
    return built


def commands(mail: ImapProvider, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The SEARCH and FETCH commands the provider sends from here on, with their arguments."""
    sent: list[tuple[str, Any]] = []
    client = mail.client
    for name in ("search", "fetch"):
        real = getattr(client, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            sent.append((_name, args))
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, name, spy)
    return sent


def test_a_known_message_is_found_without_searching_its_header(
    mail: ImapProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [mail.deliver(message(f"Note {number}")) for number in range(3)]
    mail.get_message(keys[0])  # the INBOX's index is made
    sent = commands(mail, monkeypatch)

    mail.get_message(keys[1])
    mail.mark_read(keys[2])

    searches = [args[0] for name, args in sent if name == "search"]
    assert all(criteria[0] == "UID" for criteria in searches)
    assert not any("HEADER" in str(criteria) for criteria in searches)


def test_the_index_fetches_only_the_messages_that_arrived_since(
    mail: ImapProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(3):
        mail.get_message(mail.deliver(message(f"Old {number}")))
    sent = commands(mail, monkeypatch)

    new = mail.deliver(message("New"))
    assert mail.get_message(new).subject == "New"

    fetched = [list(args[0]) for name, args in sent if name == "fetch"]
    assert fetched and all(uids == [4] for uids in fetched)  # the new one's UID alone


def test_a_message_another_client_moved_is_found_in_its_new_folder(
    mail: ImapProvider, phone: IMAPClient
) -> None:
    key = mail.deliver(message("Quarterly report"))
    assert mail.get_message(key).folder == "INBOX"

    phone.select_folder("INBOX")
    phone.move(phone.search(["HEADER", "Message-ID", key]), "Archive")

    assert mail.get_message(key).folder == "Archive"
    mail.mark_read(key)  # and acted on there
    assert mail.get_message(key).read


def test_a_message_another_client_deleted_is_not_found(
    mail: ImapProvider, phone: IMAPClient
) -> None:
    key = mail.deliver(message("Soon deleted"))
    mail.get_message(key)

    phone.select_folder("INBOX")
    uids = phone.search(["HEADER", "Message-ID", key])
    phone.delete_messages(uids)
    phone.expunge()

    with pytest.raises(MessageNotFound):
        mail.get_message(key)


def test_a_folder_another_client_made_is_searched(mail: ImapProvider, phone: IMAPClient) -> None:
    key = mail.deliver(message("Project plan"))
    mail.get_message(key)

    phone.create_folder("Projects")
    phone.select_folder("INBOX")
    phone.move(phone.search(["HEADER", "Message-ID", key]), "Projects")

    assert mail.get_message(key).folder == "Projects"
