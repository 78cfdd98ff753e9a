"""Session set-up: a fresh PostgreSQL database and Redis key prefix for this run only.

The environment is set in pytest_configure, before any test module imports `tasks`
(whose Celery app reads it once). Tests that need another configuration use the
`configure` fixture, which changes the environment and re-reads Settings.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import env as test_env
from tests.support.services import (
    TEST_REDIS_URL,
    Process,
    create_database,
    delete_redis_prefix,
    drop_database,
    start_web,
    start_worker,
)

if TYPE_CHECKING:  # imported by the fixtures that start them, when a test asks for one
    from config import Settings
    from tasks.mail.maildir import MaildirProvider
    from tests.support.dovecot import Dovecot
    from tests.support.smtp_server import SmtpServer

_RUN: dict[str, str] = {}
# The session's web server and worker share a Prometheus multiprocess directory (under the
# run's DATA_DIR), so the web's /metrics adds up both, as on one production host. Not in
# this process's environment: in-process tests keep prometheus-client's plain registry.
METRICS_TOKEN = secrets.token_urlsafe(16)
_METRICS: dict[str, str] = {}
# Variables the suite controls; anything inherited from the shell is removed first.
_CONTROLLED = [
    *test_env.INNGEST_ENV,
    *test_env.QSTASH_ENV,
    "INNGEST_DEV",
    "INNGEST_SIGNING_KEY_FALLBACK",
    "INNGEST_SERVE_ORIGIN",
    "JOB_PROVIDER",
    "JOB_FAILOVER",
    "INTERNAL_API_URL",
    "BROKER_URL",
    "RABBITMQ_CONSUMER_TIMEOUT_SECONDS",
]


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    if "bridge.celery.app" in sys.modules:
        raise pytest.UsageError(
            "`tasks` was imported before the test environment was set (it reads Settings "
            "once): import it lazily in conftest.py and tests/support"
        )
    for name in _CONTROLLED:
        os.environ.pop(name, None)
    data_dir = tempfile.mkdtemp(prefix="jobbridge-test-")
    database_url = create_database()
    _RUN.update(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        REDIS_KEY_PREFIX=f"jbtest-{uuid.uuid4().hex[:8]}:",
        DATA_DIR=data_dir,
        INTERNAL_API_KEY=test_env.INTERNAL_API_KEY,
        CRON_SECRET=test_env.CRON_SECRET,
        CELERY_ETA_HORIZON_SECONDS="120",
        # The password of every contract IMAP mailbox: the web server and the worker read
        # it from their environment when a job runs, as in production.
        IMAP_TEST_PASSWORD=secrets.token_urlsafe(12),
    )
    os.environ.update(_RUN)
    _METRICS.update(
        PROMETHEUS_MULTIPROC_DIR=str(Path(data_dir) / "metrics"), METRICS_TOKEN=METRICS_TOKEN
    )
    from tasks.schema import upgrade

    upgrade(database_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    if "DATABASE_URL" in _RUN:
        from bridge.store.db import engine_for

        engine_for(_RUN["DATABASE_URL"]).dispose()
        drop_database(_RUN["DATABASE_URL"])
        delete_redis_prefix(_RUN["REDIS_KEY_PREFIX"])
        shutil.rmtree(_RUN["DATA_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_tables() -> Iterator[None]:
    """Every test starts with empty tables (one database for the run, emptied per test).

    A session worker may still finish a job an earlier test left behind; where its
    transaction and the TRUNCATE deadlock and PostgreSQL picks the TRUNCATE, it is taken
    again (the worker's job, when picked, is retried by the worker)."""
    from psycopg.errors import DeadlockDetected
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from bridge.store.db import engine
    from tasks.models import Base

    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    for attempts_left in reversed(range(5)):
        try:
            with engine().begin() as connection:
                connection.execute(text(f"TRUNCATE {names}"))
            break
        except OperationalError as error:
            if not isinstance(error.orig, DeadlockDetected) or not attempts_left:
                raise
    yield


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """Set or unset (None) environment variables and re-read Settings for this test."""
    from config import get_settings

    def apply(**variables: str | None) -> Settings:
        for name, value in variables.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    yield apply
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def mail_apis() -> Iterator[tuple[Any, Any]]:
    """The session's Gmail and Microsoft Graph doubles, which the web server and the
    worker reach through the variables `mail_api_env` gives them at start."""
    from tests.support.api_mailboxes import GMAIL_EMAIL, GRAPH_EMAIL
    from tests.support.gmail_double import GmailDouble
    from tests.support.graph_double import GraphDouble

    gmail, graph = GmailDouble(GMAIL_EMAIL).start(), GraphDouble(email=GRAPH_EMAIL).start()
    yield gmail, graph
    assert gmail.violations == [] and graph.violations == []
    gmail.stop()
    graph.stop()


def _mail_env(mail_apis: tuple[Any, Any]) -> dict[str, str]:
    from tests.support.api_mailboxes import mail_api_env

    return mail_api_env(*mail_apis)


def server_env(inngest_api_url: str) -> dict[str, str]:
    """The web server receives from every provider at once: Inngest in cloud mode (signed
    requests only; its API is `inngest_api`), QStash keys, the internal API key and the
    cron secret. What its jobs publish in turn goes to Celery, so the session worker runs
    the follow-ups whichever provider delivered the first job."""
    return {
        **os.environ,
        **_RUN,
        **_METRICS,
        **test_env.INNGEST_ENV,
        **test_env.QSTASH_ENV,
        "INNGEST_BASE_URL": inngest_api_url,
        "JOB_PROVIDER": "celery",
    }


@pytest.fixture(scope="session")
def inngest_api() -> Iterator[Any]:
    from tests.support.inngest_api import InngestApi

    api = InngestApi()
    yield api
    api.stop()


@pytest.fixture(scope="session")
def web(log_dir: Path, inngest_api: Any, mail_apis: tuple[Any, Any]) -> Iterator[str]:
    process, url = start_web({**server_env(inngest_api.url), **_mail_env(mail_apis)}, log_dir)
    yield url
    process.stop()


@pytest.fixture(scope="session")
def worker(log_dir: Path, mail_apis: tuple[Any, Any]) -> Iterator[Process]:
    process = start_worker({**os.environ, **_RUN, **_METRICS, **_mail_env(mail_apis)}, log_dir)
    yield process
    process.stop()


class Mailbox:
    """An email account whose mail is a Maildir on disk, with a few inbox messages."""

    def __init__(self, account_id: str, email: str, path: Path, keys: list[str]) -> None:
        self.account_id, self.email, self.path, self.keys = account_id, email, path, keys

    def provider(self) -> MaildirProvider:
        from tasks.mail.maildir import MaildirProvider

        return MaildirProvider(self.path, self.email)

    def folder_keys(self, folder: str) -> set[str]:
        return set(self.provider().folder_keys(folder))

    def snapshot(self) -> dict[str, Any]:
        """Folder -> sorted (key, read, labels) of each message: the Maildir's visible state.

        Taken again when a job moves a message between the listing and the read, so a poll
        made while a job runs sees a whole state, never half of one."""
        from tasks.mail.port import MessageNotFound

        while True:
            try:
                return self._snapshot_once()
            except (MessageNotFound, KeyError):
                continue

    def _snapshot_once(self) -> dict[str, Any]:
        mail = self.provider()
        state: dict[str, Any] = {}
        for folder in mail.folder_names():
            entries: list[tuple[str, str] | tuple[str, bool, list[str]]] = []
            for key in sorted(mail.folder_keys(folder)):
                if folder == "Sent":
                    entries.append(("sent", mail.folder(folder)[key]["Subject"]))
                    continue
                message = mail.get_message(key)
                entries.append((key, message.read, sorted(message.labels)))
            state[folder] = sorted(entries)
        return state


@pytest.fixture
def mailbox(tmp_path: Path) -> Mailbox:
    from tasks.demo import add_account
    from tasks.mail.maildir import MaildirProvider

    email = f"user-{uuid.uuid4().hex[:6]}@example.test"
    path = tmp_path / "maildir"
    account = add_account(email, path)
    mail = MaildirProvider(path, email)
    keys = []
    for number, subject in enumerate(["Quarterly report", "Team lunch", "Your receipt"]):
        message = EmailMessage()
        message["From"] = f"sender{number}@example.test"
        message["To"] = email
        message["Subject"] = subject
        message["Message-ID"] = make_msgid("test")
        message.set_content(f"Body of {subject}.")
        keys.append(mail.deliver(message))
    # In delivery order: keys[0] is "Quarterly report". (Sorting the keys would not do:
    # their microsecond field is not zero-padded, so text order is not time order.)
    return Mailbox(account.id, email, path, keys)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot (IMAP and LMTP on 127.0.0.1) for the session; no users of its own.

    Its directory is not under pytest's temporary root: run as root, Dovecot's mail
    processes need to pass through every directory above their mail, and each pytest
    session sets that root back to mode 0700, which would lock out the Dovecot of a run
    going on at the same time."""
    from tests.support.dovecot import start_dovecot

    base = Path(tempfile.mkdtemp(prefix="jobbridge-dovecot-"))
    server = start_dovecot(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def smtp_server(dovecot: Dovecot) -> Iterator[SmtpServer]:
    """SMTP on 127.0.0.1 delivering to `dovecot`; keeps what it accepted (`messages`)."""
    from tests.support.smtp_server import start_smtp

    server = start_smtp(dovecot)
    yield server
    server.stop()


@dataclass(frozen=True)
class ImapUser:
    """An account of its own on the session's Dovecot: an IMAP login and a mail address."""

    host: str
    port: int
    username: str
    password: str
    address: str


@pytest.fixture
def imap_user(dovecot: Dovecot) -> ImapUser:
    """A fresh user for this test, with an empty INBOX and the special-use folders."""
    username = f"u-{uuid.uuid4().hex[:12]}"
    password = secrets.token_urlsafe(12)
    dovecot.add_user(username, password)
    return ImapUser(dovecot.host, dovecot.port, username, password, f"{username}@example.test")


@pytest.fixture
def imap_mailbox(dovecot: Dovecot, smtp_server: SmtpServer) -> Any:
    """The contract tests' `mailbox` as an IMAP account on the session's Dovecot."""
    from tests.support.imap_mailbox import new_imap_mailbox

    return new_imap_mailbox(dovecot, smtp_server)


@pytest.fixture
def gmail_mailbox(mail_apis: tuple[Any, Any]) -> Any:
    """The contract tests' `mailbox` as a Gmail account on the session's Gmail double."""
    from tests.support.api_mailboxes import GmailMailbox

    return GmailMailbox(mail_apis[0])


@pytest.fixture
def graph_mailbox(mail_apis: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The contract tests' `mailbox` as a Microsoft 365 account on the Graph double."""
    from tests.support.api_mailboxes import GraphMailbox

    # msal (requests) in this process trusts the double's sign-in server, as the worker does.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(mail_apis[1].ca_bundle))
    return GraphMailbox(mail_apis[1])


@pytest.fixture
def router() -> Iterator[Any]:
    """respx intercepts the SaaS APIs (QStash, Inngest); local servers pass through."""
    import respx

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        yield mock


@pytest.fixture
def fake_qstash(router: Any, configure: Callable[..., Any]) -> Any:
    """QStash is the configured provider, and its API is played by the test."""
    from tests.support.fake_qstash import FakeQStash

    configure(**test_env.QSTASH_ENV)
    return FakeQStash(router)


@pytest.fixture
def fake_inngest(router: Any, configure: Callable[..., Any]) -> Any:
    """Inngest (cloud mode) is the configured provider, and its server is played by the test."""
    from tests.support.fake_inngest import FakeInngest

    configure(**test_env.INNGEST_ENV)
    return FakeInngest(router)
