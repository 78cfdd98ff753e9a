"""The Maildir adapter finds a message by its key through the process's index of the
Maildir: no directory is listed while the index is fresh, and a message another process
renamed, moved or rewrote is still found (and listed) as it is now."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from tasks.mail import maildir
from tasks.mail.maildir import MaildirProvider
from tasks.mail.maildir_files import File
from tasks.mail.port import MessageNotFound

ME = "me@example.test"
BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def mail(tmp_path: Path) -> MaildirProvider:
    return MaildirProvider(tmp_path / "account", ME)


def deliver(mail: MaildirProvider, subject: str = "Hello", minutes_ago: int = 0) -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ann@example.test", ME, subject
    message["Date"] = format_datetime(BASE - timedelta(minutes=minutes_ago))
    message["Message-ID"] = make_msgid("index")
    message.set_content(f"Body of {subject}.")
    return mail.deliver(message)


def path_of(mail: MaildirProvider, key: str) -> Path:
    """Where the message's file is now, by looking (as another process would)."""
    (found,) = [p for p in mail.root.glob(f"**/{key}*") if p.parent.name in ("cur", "new")]
    return found


def settle(mail: MaildirProvider) -> None:
    """Date each directory of the Maildir changed in the last 2 s back 10 s, as if its
    last change were that old: the index trusts a directory's mtime once it is 2 s old
    (so no sleep is needed)."""
    now = time.time()
    for directory in [mail.root, *mail.root.glob("**/")]:
        if now - directory.stat().st_mtime < 2:
            os.utime(directory, (now - 10, now - 10))


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every directory listed from here on (os.scandir and os.listdir)."""
    seen: list[str] = []

    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any = ".") -> Any:
            seen.append(str(path))
            return real(path)

        return call

    monkeypatch.setattr(os, "scandir", counting(os.scandir))
    monkeypatch.setattr(os, "listdir", counting(os.listdir))
    yield seen


def test_lookups_of_known_messages_list_no_directory(
    mail: MaildirProvider, listed: list[str]
) -> None:
    keys = [deliver(mail, f"Message {number}") for number in range(4)]
    mail.get_message(keys[0])  # the index is made: every folder listed once
    listed.clear()

    mail.get_message(keys[1])
    mail.mark_read(keys[1])
    mail.label(keys[2], "Later")
    mail.archive(keys[3])
    assert mail.get_message(keys[3]).folder == "Archive"

    assert listed == []


def test_a_message_renamed_by_another_process_is_found_with_its_new_flags(
    mail: MaildirProvider,
) -> None:
    key = deliver(mail)
    assert mail.get_message(key).read is False
    old = path_of(mail, key)

    os.rename(old, mail.root / "cur" / f"{key}:2,FS")  # another process: read, flagged

    found = mail.get_message(key)
    assert found.read is True
    assert mail.is_starred(found)


def test_a_message_moved_to_another_folder_by_another_process_is_found_there(
    mail: MaildirProvider,
) -> None:
    key = deliver(mail)
    mail.get_message(key)
    folder = mail.root / ".Projects"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)

    os.rename(path_of(mail, key), folder / "cur" / f"{key}:2,")

    assert mail.get_message(key).folder == "Projects"
    mail.archive(key)  # and acted on there
    assert mail.get_message(key).folder == "Archive"


def test_a_message_delivered_after_the_index_was_made_is_found(mail: MaildirProvider) -> None:
    mail.get_message(deliver(mail, "First"))
    later = deliver(mail, "Later")

    assert mail.get_message(later).subject == "Later"


def test_a_message_deleted_by_another_process_is_not_found(mail: MaildirProvider) -> None:
    key = deliver(mail)
    mail.get_message(key)
    path_of(mail, key).unlink()

    with pytest.raises(MessageNotFound):
        mail.get_message(key)
    with pytest.raises(MessageNotFound):
        mail.mark_read(key)


def test_a_message_renamed_between_lookup_and_read_is_read_at_its_new_name(
    mail: MaildirProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = deliver(mail)
    mail.get_message(key)
    read = MaildirProvider._read
    tries: list[str] = []

    def renamed_first(self: MaildirProvider, file: File) -> Any:
        if not tries:  # another process flags it after the lookup, before the read
            os.rename(file.path, self.root / "cur" / f"{key}:2,S")
        tries.append(file.path)
        return read(self, file)

    monkeypatch.setattr(MaildirProvider, "_read", renamed_first)

    assert mail.get_message(key).read is True
    assert len(tries) == 2 <= maildir.RENAMED_RETRIES


def test_a_listing_lists_again_only_the_directories_that_changed(
    mail: MaildirProvider, listed: list[str]
) -> None:
    deliver(mail, "First", minutes_ago=2)
    mail.mark_read(deliver(mail, "Second", minutes_ago=1))  # one in new/, one in cur/
    mail.list_threads()
    settle(mail)
    mail.list_threads()  # trusted mtimes from here on
    listed.clear()

    assert len(mail.list_threads().thread_ids) == 2
    assert listed == []
    deliver(mail, "Third")
    settle(mail)
    listed.clear()

    assert len(mail.list_threads().thread_ids) == 3
    assert listed == [str(mail.root / "new")]


def test_a_page_after_the_first_takes_a_listing_under_two_seconds_old_as_it_is(
    mail: MaildirProvider, listed: list[str]
) -> None:
    for number in range(3):
        deliver(mail, f"Message {number}", minutes_ago=number)
    first = mail.list_threads(page_size=2)  # directories not settled: listed each time
    listed.clear()

    second = mail.list_threads(page_size=2, page_token=first.next_page_token)

    assert listed == []
    assert len(second.thread_ids) == 1


def test_a_page_after_the_first_lists_again_once_its_listing_is_older(
    mail: MaildirProvider, listed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(3):
        deliver(mail, f"Message {number}", minutes_ago=number)
    first = mail.list_threads(page_size=2)
    listed.clear()
    monkeypatch.setattr(maildir, "CONTINUATION_MAX_AGE_SECONDS", -1.0)  # always too old

    mail.list_threads(page_size=2, page_token=first.next_page_token)

    assert listed != []


def test_a_first_page_always_brings_the_listing_up_to_date(mail: MaildirProvider) -> None:
    deliver(mail, "Old", minutes_ago=5)
    mail.list_threads()
    deliver(mail, "New")

    assert len(mail.list_threads().thread_ids) == 2


def test_a_label_another_process_wrote_is_seen_by_the_next_listing(
    mail: MaildirProvider,
) -> None:
    key = deliver(mail, "Newsletter")
    other = deliver(mail, "Personal", minutes_ago=1)
    assert len(mail.list_threads(exclude_labels=["Done"]).thread_ids) == 2
    path = path_of(mail, key)
    labelled = path.read_bytes().replace(b"Subject:", b"X-Keywords: Done\nSubject:", 1)
    partial = mail.root / "tmp" / "rewrite"
    partial.write_bytes(labelled)
    os.rename(partial, path)  # another process: the same name, a new file

    page = mail.list_threads(exclude_labels=["Done"])

    assert page.newest_message_ids == {mail.get_message(other).thread_id: other}
    assert "Done" in mail.list_labels()


def test_mark_read_renames_the_file_and_keeps_its_content(mail: MaildirProvider) -> None:
    key = deliver(mail)
    before = path_of(mail, key)
    content = before.read_bytes()

    mail.mark_read(key)

    after = path_of(mail, key)
    assert (after.parent.name, after.name) == ("cur", f"{key}:2,S")
    assert after.read_bytes() == content
