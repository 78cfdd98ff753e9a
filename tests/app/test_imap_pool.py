"""A process keeps the IMAP connections its jobs logged in with, for its next jobs of the
same login (`tasks.mail.imap_pool`), on a real Dovecot. Each job still gets a provider of
its own, with nothing selected or cached from the one before."""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from imapclient import IMAPClient

from tasks.mail import imap, imap_pool
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_session import MailLoginRefused, ServerSettings, open_imap


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    imap_pool.close_all()
    yield
    imap_pool.close_all()


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> list[ServerSettings]:
    """Every login the adapter makes, in order."""
    made: list[ServerSettings] = []
    real: Callable[[ServerSettings], IMAPClient] = open_imap

    def counted(server: ServerSettings) -> IMAPClient:
        made.append(server)
        return real(server)

    monkeypatch.setattr(imap, "open_imap", counted)
    return made


@pytest.fixture
def login(imap_user: Any) -> ServerSettings:
    return ServerSettings(
        imap_user.host, imap_user.port, "none", imap_user.username, imap_user.password
    )


def in_use(login: ServerSettings, *, folder: str = "INBOX") -> ImapProvider:
    """A job's own provider, having used the server."""
    provider = ImapProvider(login, None, "me@example.test")
    provider.list_threads(folder=folder, page_size=1)
    return provider


def a_job(login: ServerSettings, *, folder: str = "INBOX") -> None:
    """What a job does with a mailbox: its own provider, used, then let go."""
    provider = in_use(login, folder=folder)
    del provider
    gc.collect()


def other_session(user: Any) -> IMAPClient:
    client = IMAPClient(user.host, port=user.port, ssl=False)
    client.login(user.username, user.password)
    return client


def test_jobs_one_after_another_share_one_login(
    login: ServerSettings, logins: list[ServerSettings]
) -> None:
    a_job(login)
    a_job(login)
    a_job(login)
    assert len(logins) == 1


def test_jobs_at_the_same_time_each_get_a_connection(
    login: ServerSettings, logins: list[ServerSettings]
) -> None:
    first = in_use(login)
    second = in_use(login)
    assert first.client is not second.client
    assert len(logins) == 2


def test_a_connection_gone_while_kept_is_replaced(
    login: ServerSettings, logins: list[ServerSettings]
) -> None:
    provider = in_use(login)
    provider.client.socket().shutdown(socket.SHUT_RDWR)  # as an idle timeout leaves it
    del provider
    gc.collect()
    a_job(login)  # the NOOP fails: a new login, and the job goes on
    assert len(logins) == 2


def test_a_job_sees_the_mailbox_as_it_is_now(imap_user: Any, login: ServerSettings) -> None:
    other = other_session(imap_user)
    try:
        other.create_folder("Work")
        a_job(login, folder="Work")  # its connection is kept with Work selected
        other.delete_folder("Work")
        other.create_folder("Project")
        provider = ImapProvider(login, None, "me@example.test")
        assert "Project" in provider.list_labels()
        assert provider.list_threads(page_size=1).thread_ids == []  # INBOX, selected anew
    finally:
        other.logout()


def test_a_connection_unused_past_keep_seconds_is_closed(
    login: ServerSettings, logins: list[ServerSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_job(login)
    monkeypatch.setattr(imap_pool, "KEEP_SECONDS", -1.0)
    a_job(login)
    assert len(logins) == 2


def test_close_logs_out_rather_than_keep_the_connection(
    login: ServerSettings, logins: list[ServerSettings]
) -> None:
    provider = in_use(login)
    provider.close()
    a_job(login)
    assert len(logins) == 2


def test_another_password_is_another_login(
    login: ServerSettings, logins: list[ServerSettings]
) -> None:
    a_job(login)
    rotated = ServerSettings(login.host, login.port, "none", login.username, login.password)
    a_job(rotated)  # equal settings: the kept one
    changed = ServerSettings(login.host, login.port, "none", login.username, "other")
    with pytest.raises(MailLoginRefused):
        a_job(changed)
    assert len(logins) == 2  # the first login, and the refused one
