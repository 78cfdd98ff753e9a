"""A thread keeps the IMAP connection its last job of an account opened, for the next job
of that account (`tasks.mail.imap_keeper`), on a real Dovecot: logins are counted in its
log."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tasks.mail import imap_keeper
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_accounts import imap_provider
from tests.support.dovecot import Dovecot
from tests.support.wait import wait_for

PASSWORD_ENV = "KEEPER_TEST_PASSWORD"


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    imap_keeper.close_kept()
    yield
    imap_keeper.close_kept()


@pytest.fixture
def stored(imap_user: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The account's settings as the database stores them; its password in the env."""
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    login = {"security": "none", "username": imap_user.username, "password_env": PASSWORD_ENV}
    return {"imap": {"host": imap_user.host, "port": imap_user.port, **login}}


def logins(dovecot: Dovecot, user: Any, at_least: int) -> int:
    """The user's logins in Dovecot's log, once it shows at least `at_least` (its log
    process writes a moment after the login)."""

    def count() -> int:
        text = dovecot.log_path.read_text(errors="replace")
        return text.count(f"Login: user=<{user.username}>")

    wait_for(lambda: count() >= at_least, what=f"{at_least} logins in Dovecot's log")
    return count()


def a_job(user: Any, stored: dict[str, Any]) -> ImapProvider:
    """What a job does with its account's mailbox: get the provider, use the server."""
    provider = imap_provider(user.address, stored)
    provider.list_threads(page_size=1)
    return provider


def test_jobs_of_one_account_on_one_thread_log_in_once(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any]
) -> None:
    first = a_job(imap_user, stored)
    second = a_job(imap_user, stored)
    assert second is first
    assert logins(dovecot, imap_user, 1) == 1


def test_a_connection_gone_while_kept_is_replaced(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any]
) -> None:
    first = a_job(imap_user, stored)
    first.client.socket().shutdown(socket.SHUT_RDWR)  # as a server's idle timeout leaves it
    a_job(imap_user, stored)  # the NOOP fails, the job's first command logs in again
    assert logins(dovecot, imap_user, 2) == 2


def test_another_thread_opens_its_own_connection(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any]
) -> None:
    here = a_job(imap_user, stored)
    there: list[ImapProvider] = []
    thread = threading.Thread(target=lambda: there.append(a_job(imap_user, stored)))
    thread.start()
    thread.join()
    assert there and there[0] is not here
    assert logins(dovecot, imap_user, 2) == 2


def test_a_connection_idle_past_keep_seconds_is_logged_out(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = a_job(imap_user, stored)
    monkeypatch.setattr(imap_keeper, "KEEP_SECONDS", -1.0)
    second = a_job(imap_user, stored)
    assert second is not first
    assert first._client is None  # logged out, not left open
    assert logins(dovecot, imap_user, 2) == 2


def test_a_changed_password_opens_another_connection(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = a_job(imap_user, stored)
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password + "-rotated")
    assert imap_provider(imap_user.address, stored) is not first


def test_a_thread_keeps_at_most_kept_per_thread_accounts(
    dovecot: Dovecot, imap_user: Any, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imap_keeper, "KEPT_PER_THREAD", 1)
    first = a_job(imap_user, stored)
    imap_provider("someone-else@example.test", stored)  # another key: the first goes
    assert first._client is None
