"""A label on a Maildir message is its X-Keywords field, edited in the header block's
bytes: every other byte of the message stays as it was (a DKIM signature still holds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.outcome import PermanentError
from tasks.mail.maildir import MaildirProvider
from tasks.mail.maildir_headers import with_field

SIGNED = (
    b"Return-Path: <shop@example.test>\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test;\r\n"
    b"\tbh=abc; b=def\r\n"
    b"X-Keywords: Old,\r\n"
    b"  Folded\r\n"
    b"From: Shop <shop@example.test>\r\n"
    b"Subject: Your receipt\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <receipt@example.test>\r\n"
    b"Content-Type: text/plain; charset=latin-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Total: 12 \xe9cus\r\n"
    b"X-Keywords: a body line, not a field\r\n"
    b"From here on, the body\r\n"
)
WITHOUT_LABELS = SIGNED.replace(b"X-Keywords: Old,\r\n  Folded\r\n", b"")


@pytest.fixture
def mail(tmp_path: Path) -> MaildirProvider:
    return MaildirProvider(tmp_path / "account", "me@example.test")


def stored(mail: MaildirProvider, content: bytes, key: str = "1796000000.M1P1.test") -> str:
    """The message in the inbox's new/, byte for byte (mailbox.Maildir would rewrite its
    line endings)."""
    (mail.root / "new" / key).write_bytes(content)
    return key


def file_of(mail: MaildirProvider, key: str) -> bytes:
    [path] = [p for p in (mail.root / "new").iterdir() if p.name.startswith(key)]
    return path.read_bytes()


def test_a_label_changes_only_the_label_field(mail: MaildirProvider) -> None:
    key = stored(mail, SIGNED)

    mail.label(key, "Receipts")

    content = file_of(mail, key)
    assert content == b"X-Keywords: Old, Folded, Receipts\r\n" + WITHOUT_LABELS
    assert mail.get_message(key).labels == {"Old", "Folded", "Receipts"}


def test_a_label_keeps_the_file_of_a_message_with_bare_line_feeds_as_it_was() -> None:
    message = b"Subject: hi\nX-Keywords: A\n\nbody\n"

    assert with_field(message, "X-Keywords", "A, B") == b"X-Keywords: A, B\nSubject: hi\n\nbody\n"


def test_a_label_not_in_ascii_is_written_as_an_encoded_word_read_back_as_written(
    mail: MaildirProvider,
) -> None:
    key = stored(mail, WITHOUT_LABELS)

    mail.label(key, "Résumé")

    content = file_of(mail, key)
    assert content.startswith(b"X-Keywords: =?utf-8?")
    assert content.endswith(WITHOUT_LABELS)
    assert mail.get_message(key).labels == {"Résumé"}


def test_a_from_line_stays_first() -> None:
    message = b"From shop@example.test Mon Nov  2 10:00:00 2026\nSubject: hi\n\nbody"

    assert with_field(message, "X-Keywords", "A").split(b"\n")[:2] == [
        b"From shop@example.test Mon Nov  2 10:00:00 2026",
        b"X-Keywords: A",
    ]


@pytest.mark.parametrize(
    "label",
    [
        "A\nBcc: someone@example.test",
        "A\r\n\r\nbody",
        "A\rB",
        "A\x0bB",
        "A\x1cB",
        "A\x85B",
        "A\u2028B",
        "A\ud800",
        "=?utf-8?q?Receipts?=",
    ],
    ids=["lf", "crlf-blank", "cr", "vt", "fs", "nel", "line-separator", "surrogate", "encoded"],
)
def test_a_label_that_would_not_read_back_as_written_is_refused_for_good(
    mail: MaildirProvider, label: str
) -> None:
    key = stored(mail, WITHOUT_LABELS)

    with pytest.raises(PermanentError, match="a Maildir label has no"):
        mail.label(key, label)

    assert file_of(mail, key) == WITHOUT_LABELS


def test_labelling_again_leaves_the_file_as_it_is(mail: MaildirProvider) -> None:
    key = stored(mail, WITHOUT_LABELS)
    mail.label(key, "Receipts")
    before = os.stat(mail.root / "new" / key)

    mail.label(key, "Receipts")

    assert os.stat(mail.root / "new" / key).st_ino == before.st_ino


def test_a_label_with_a_comma_is_two_labels_each_added_once(mail: MaildirProvider) -> None:
    key = stored(mail, WITHOUT_LABELS)

    mail.label(key, "Receipts, 2026")
    mail.label(key, " 2026 ")

    assert file_of(mail, key).startswith(b"X-Keywords: Receipts, 2026\r\n")
    assert mail.get_message(key).labels == {"Receipts", "2026"}


def test_lines_ending_in_a_bare_carriage_return_are_lines() -> None:
    message = b"X-Keywords: Old\rSubject: hi\r\rbody\r"

    assert with_field(message, "X-Keywords", "Old, New") == (
        b"X-Keywords: Old, New\rSubject: hi\r\rbody\r"
    )


def test_the_header_block_ends_where_the_parser_ends_it() -> None:
    message = b"Subject: hi\r\r\nX-Keywords: in the body\n\nmore"

    assert with_field(message, "X-Keywords", "New") == b"X-Keywords: New\rSubject: hi\r" + (
        b"\r\nX-Keywords: in the body\n\nmore"
    )


def test_a_stray_folded_line_first_does_not_join_the_new_field(mail: MaildirProvider) -> None:
    key = stored(mail, b" orphan\nSubject: hi\n\nbody\n")

    mail.label(key, "New")

    assert file_of(mail, key) == b" orphan\nX-Keywords: New\nSubject: hi\n\nbody\n"
    assert mail.get_message(key).labels == {"New"}


def test_a_message_whose_labels_could_not_be_written_again_is_left_as_it_is(
    mail: MaildirProvider,
) -> None:
    message = b"X-Keywords: A\x0bB\nSubject: hi\n\nbody\n"
    key = stored(mail, message)

    with pytest.raises(PermanentError, match="cannot be written"):
        mail.label(key, "New")

    assert file_of(mail, key) == message
