"""Two changes to one Maildir message at once, from two providers on the same Maildir (as
two processes would be), never interleave: each holds the message file's lock while it
reads and renames it (tasks/mail/maildir_locks.py).

Each test holds the first change (a label) just before the rename that puts its new
file in place, after its check that the old one is still there, until the second has
reached the lock (or, were there no lock, finished): the second would otherwise run in
the middle of the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.mail import maildir_locks
from tasks.mail.maildir import ARCHIVE, INBOX, MaildirProvider

MESSAGE = (
    b"From: Shop <shop@example.test>\r\n"
    b"Subject: Your receipt\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <receipt@example.test>\r\n"
    b"\r\n"
    b"Total: 12\r\n"
)
KEY = "1796000000.M1P1.test"
WAIT_SECONDS = 10


class Interleaving:
    """The first change waits before its rename until the second has reached the lock
    or has finished."""

    def __init__(self) -> None:
        self.first_inside = threading.Event()
        self.second_arrived = threading.Event()
        self.first: threading.Thread | None = None
        self.second: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def run(self, first: Callable[[], None], second: Callable[[], None]) -> None:
        self.first = threading.Thread(target=self._running(first))
        self.first.start()
        assert self.first_inside.wait(WAIT_SECONDS), "the first change never came to its rename"
        self.second = threading.Thread(target=self._running(second, then=self.second_arrived))
        self.second.start()
        for thread in (self.first, self.second):
            thread.join(WAIT_SECONDS)
            assert not thread.is_alive(), "a change never finished"
        assert self.errors == []

    def _running(
        self, change: Callable[[], None], then: threading.Event | None = None
    ) -> Callable[[], None]:
        def run() -> None:
            try:
                change()
            except BaseException as error:  # reported by `run`
                self.errors.append(error)
            finally:
                if then is not None:
                    then.set()

        return run


@pytest.fixture
def interleaving(monkeypatch: pytest.MonkeyPatch) -> Iterator[Interleaving]:
    moment = Interleaving()
    real_rename, real_flock = os.rename, fcntl.flock

    def rename(source: Any, target: Any) -> None:
        if threading.current_thread() is moment.first:
            moment.first_inside.set()
            moment.second_arrived.wait(WAIT_SECONDS)
        real_rename(source, target)

    def flock(fd: int, operation: int) -> None:
        if threading.current_thread() is moment.second:
            moment.second_arrived.set()
        real_flock(fd, operation)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(fcntl, "flock", flock)
    yield moment
    moment.second_arrived.set()  # a failed test must not leave a thread waiting


def files_of(root: Path) -> list[Path]:
    return [path for path in root.rglob(f"{KEY}*") if path.parent.name in ("new", "cur")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "account"
    MaildirProvider(root)
    (root / "new" / KEY).write_bytes(MESSAGE)
    return root


def test_two_labels_at_once_both_stay(root: Path, interleaving: Interleaving) -> None:
    one, other = MaildirProvider(root), MaildirProvider(root)

    interleaving.run(lambda: one.label(KEY, "First"), lambda: other.label(KEY, "Second"))

    assert len(files_of(root)) == 1
    assert MaildirProvider(root).get_message(KEY).labels == frozenset({"First", "Second"})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        pytest.param(MaildirProvider.archive, (ARCHIVE, False), id="a move"),
        pytest.param(MaildirProvider.mark_read, (INBOX, True), id="a flag"),
    ],
)
def test_a_rename_during_a_label_leaves_one_labelled_file_where_it_put_it(
    root: Path,
    interleaving: Interleaving,
    change: Callable[[MaildirProvider, str], None],
    where: tuple[str, bool],
) -> None:
    one, other = MaildirProvider(root), MaildirProvider(root)

    interleaving.run(lambda: one.label(KEY, "First"), lambda: change(other, KEY))

    assert len(files_of(root)) == 1
    message = MaildirProvider(root).get_message(KEY)
    assert (message.folder, message.read, message.labels) == (*where, frozenset({"First"}))


@contextlib.contextmanager
def holding_while_waited_on(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
    """The block runs holding the file's lock, once `waiting` (in a thread) has come to
    take it; the waiter finishes after the block has let the lock go."""
    arrived = threading.Event()
    real_flock = fcntl.flock
    waiter = threading.Thread(target=waiting)

    def flock(fd: int, operation: int) -> None:
        if threading.current_thread() is waiter:
            arrived.set()
        real_flock(fd, operation)

    with maildir_locks.changing(str(path)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fcntl, "flock", flock)
            waiter.start()
            assert arrived.wait(WAIT_SECONDS), "the waiter never came to the lock"
        yield
    waiter.join(WAIT_SECONDS)
    assert not waiter.is_alive()


def test_a_lock_taken_after_a_rewrite_is_on_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "message"
    path.write_bytes(b"old")
    read: list[bytes] = []

    def waiting() -> None:
        with maildir_locks.changing(str(path)) as handle:
            read.append(handle.read())

    with holding_while_waited_on(path, waiting):
        (tmp_path / "new").write_bytes(b"new")
        (tmp_path / "new").rename(path)

    assert read == [b"new"]


def test_a_lock_on_a_name_renamed_meanwhile_is_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "message"
    path.write_bytes(b"old")
    outcome: list[BaseException] = []

    def waiting() -> None:
        try:
            with maildir_locks.changing(str(path)):
                pass
        except FileNotFoundError as error:
            outcome.append(error)

    with holding_while_waited_on(path, waiting):
        path.rename(tmp_path / "elsewhere")

    assert len(outcome) == 1


@pytest.fixture
def message_file(tmp_path: Path) -> Path:
    path = tmp_path / "message"
    path.write_bytes(b"content")
    return path


def test_where_a_lock_needs_the_file_open_for_writing_it_is_opened_so(
    message_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_flock = fcntl.flock

    def flock_as_on_nfs(fd: int, operation: int) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_as_on_nfs)
    with maildir_locks.changing(str(message_file)) as handle:
        assert handle.read() == b"content"


def test_a_name_that_never_agrees_with_its_open_file_is_an_error_not_a_spin(
    message_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fstat = os.fstat
    rounds: list[int] = []

    def fstat_of_another_inode(fd: int) -> os.stat_result:
        rounds.append(fd)
        found = real_fstat(fd)
        return os.stat_result((found.st_mode, found.st_ino + 1, *tuple(found)[2:]))

    monkeypatch.setattr(os, "fstat", fstat_of_another_inode)
    never = pytest.raises(OSError, match=f"rewritten {maildir_locks.MOST_ROUNDS} times")
    with never, maildir_locks.changing(str(message_file)):
        pass
    assert len(rounds) == maildir_locks.MOST_ROUNDS
