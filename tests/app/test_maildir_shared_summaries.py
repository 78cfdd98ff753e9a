"""Header summaries shared by the processes of one machine
(`tasks.mail.maildir_shared_summaries`): a process listing a large folder for the first
time reads no header another process has read, and never uses a stale one; and a folder
listed whole is ordered as one listed message by message."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tasks.mail import maildir_index
from tasks.mail import maildir_shared_summaries as shared
from tasks.mail.maildir_files import INBOX, File, adopt_summaries, cached_summaries, file_summary
from tasks.mail.maildir_headers import SUMMARY_VERSION, Summary
from tasks.mail.maildir_index import AccountIndex
from tasks.mail.maildir_listing import Entry, FolderListing

MESSAGES = shared.SHARE_AFTER_READING + 100
NOON = datetime(2026, 11, 2, 12, tzinfo=UTC)

# Another process: lists the folder, prints its size and how many headers it read.
LIST_IN_A_NEW_PROCESS = """
import json, sys
from tasks.mail.maildir_files import INBOX, headers_read
from tasks.mail.maildir_index import AccountIndex
from tasks.mail.maildir_listing import Entry, FolderListing
listing = AccountIndex(sys.argv[1]).listing(INBOX)
labels = sorted(label for entry in listing.entries.values() for label in entry.summary.labels)
print(json.dumps([len(listing.entries), headers_read(), labels]))
"""


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    root = tmp_path / "maildir"
    box = mailbox.Maildir(root, create=True)
    for number in range(MESSAGES):
        message = EmailMessage()
        message["From"] = f"sender{number}@example.test"
        message["Subject"] = f"message {number}"
        message["Date"] = f"Mon, 02 Nov 2026 10:{number // 60:02d}:{number % 60:02d} +0000"
        message["Message-ID"] = f"<m{number}@example.test>"
        message.set_content("hello")
        box.add(message)
    return root


def list_in_a_new_process(root: Path) -> tuple[int, int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", LIST_IN_A_NEW_PROCESS, str(root)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    size, read, labels = json.loads(done.stdout)
    return size, read, labels


def test_a_process_listing_a_folder_another_listed_reads_none_of_its_headers(
    inbox: Path,
) -> None:
    AccountIndex(str(inbox)).listing(INBOX)

    assert list_in_a_new_process(inbox)[:2] == (MESSAGES, 0)


def test_a_message_rewritten_since_it_was_shared_is_read_again(inbox: Path) -> None:
    AccountIndex(str(inbox)).listing(INBOX)
    box = mailbox.Maildir(inbox, create=False)
    key = next(iter(box.keys()))
    message = box[key]
    message["X-Keywords"] = "Receipts"
    box[key] = message  # same key, another file

    assert list_in_a_new_process(inbox) == (MESSAGES, 1, ["Receipts"])


def test_a_small_listing_shares_nothing(tmp_path: Path) -> None:
    root = tmp_path / "small"
    mailbox.Maildir(root, create=True).add(EmailMessage())

    AccountIndex(str(root)).listing(INBOX)

    assert not shared.shared_file(str(root), INBOX).exists()


def test_the_shared_file_is_for_its_owner_alone(inbox: Path) -> None:
    AccountIndex(str(inbox)).listing(INBOX)

    assert shared.shared_file(str(inbox), INBOX).stat().st_mode & 0o777 == 0o600


ROW = '["k", 1, 2, 3, "t", "2026-11-02T10:00:00+00:00", [], "", []]'


def shared_content(*rows: str, summary_version: int = SUMMARY_VERSION) -> bytes:
    return (
        f'{{"format": {shared.FORMAT}, "summary_version": {summary_version}, '
        f'"summaries": [{", ".join(rows)}]}}'
    ).encode()


def test_a_usable_shared_file_is_read(tmp_path: Path) -> None:
    shared._loaded.clear()  # as in a new process
    path = shared.shared_file(str(tmp_path), INBOX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shared_content(ROW))

    [(key, summary)] = shared.load(str(tmp_path), INBOX)

    assert key == ("k", 1, 2, 3) and summary.thread_id == "t"


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"format": 99, "summary_version": 1, "summaries": []}',
        shared_content(ROW, summary_version=SUMMARY_VERSION + 1),
        shared_content(ROW.replace("+00:00", "")),
        shared_content(ROW.replace('[], "", []', '"Receipts", "", []')),
        shared_content('["k", 1, 2]'),
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "not-json",
        "another-format",
        "summaries-of-another-version",
        "a-date-without-its-zone",
        "labels-as-a-string",
        "a-short-row",
        "nested-too-deep",
    ],
)
def test_an_unusable_shared_file_is_read_as_empty(tmp_path: Path, content: bytes) -> None:
    shared._loaded.clear()  # as in a new process
    path = shared.shared_file(str(tmp_path), INBOX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)

    assert shared.load(str(tmp_path), INBOX) == []


def test_a_folder_lists_whole_when_its_shared_file_is_unusable(inbox: Path) -> None:
    path = shared.shared_file(str(inbox), INBOX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00garbage")

    assert list_in_a_new_process(inbox)[:2] == (MESSAGES, MESSAGES)


def test_a_folder_listed_whole_is_in_the_order_of_one_listed_message_by_message() -> None:
    entries = [
        Entry(
            File(INBOX, f"k{n}", f"/m/k{n}"),
            Summary(f"t{n}", NOON + timedelta(minutes=n % 7), frozenset(), f"<{n}@x>", ()),
        )
        for n in range(50)
    ]
    one_by_one, whole = FolderListing(), FolderListing()
    for entry in entries:
        one_by_one.put(entry)
    with whole.adding_many():
        for entry in entries:
            whole.put(entry)
        whole.put(entries[3])  # a message listed twice (a rename seen mid-listing)
        whole.remove(entries[4].file.key)
    one_by_one.remove(entries[4].file.key)

    assert whole.order == one_by_one.order
    assert [whole.stamp(p) for p in range(whole.size)] == sorted(
        (whole.stamp(p) for p in range(whole.size)), reverse=True
    )


def test_sharing_makes_no_data_dir_that_does_not_exist(
    inbox: Path, tmp_path: Path, configure: Callable[..., Any]
) -> None:
    missing = tmp_path / "no-such-data-dir"
    configure(DATA_DIR=str(missing))

    listing = AccountIndex(str(inbox)).listing(INBOX)

    assert len(listing.entries) == MESSAGES
    assert not missing.exists()


def test_a_first_listing_that_failed_half_way_is_made_whole_the_next_time(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = AccountIndex(str(inbox))
    index.find("no-such-key")  # the folder's directories scanned, nothing listed yet
    calls = iter(range(MESSAGES * 2))

    def failing_once(file: File) -> Summary | None:
        if next(calls) == MESSAGES // 2:
            raise OSError("the disk went away for a moment")
        return file_summary(file)

    monkeypatch.setattr(maildir_index, "file_summary", failing_once)
    with pytest.raises(OSError):
        index.listing(INBOX)

    assert len(index.listing(INBOX).entries) == MESSAGES


def test_only_the_summary_a_listing_holds_of_a_message_is_shared() -> None:
    key = f"held-{uuid.uuid4().hex}"  # the cache is the process's
    older = Summary("t", NOON, frozenset(), "<a@x>", ())
    newer = Summary("t", NOON, frozenset({"Receipts"}), "<a@x>", ())
    adopt_summaries([((key, 1, 1, 10), older), ((key, 2, 1, 20), newer)])

    assert cached_summaries({key: newer}) == [((key, 2, 1, 20), newer)]


def test_a_partial_file_an_hour_old_is_removed_and_a_younger_one_kept(inbox: Path) -> None:
    directory = shared.shared_file(str(inbox), INBOX).parent
    directory.mkdir(parents=True, exist_ok=True)
    abandoned, writing = directory / ".partial-abandoned", directory / ".partial-writing"
    abandoned.write_bytes(b"{")
    writing.write_bytes(b"{")
    an_hour_ago = time.time() - shared.ABANDONED_AFTER_SECONDS - 60
    os.utime(abandoned, (an_hour_ago, an_hour_ago))

    AccountIndex(str(inbox)).listing(INBOX)  # reads every header: shares them

    assert (abandoned.exists(), writing.exists()) == (False, True)
    assert shared.shared_file(str(inbox), INBOX).exists()
