"""The Maildir adapter does each mail operation for real, on disk, idempotently."""

from __future__ import annotations

import pytest

from tasks.mail.port import MessageNotFound, OutgoingMail
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
