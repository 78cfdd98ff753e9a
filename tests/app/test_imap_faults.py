"""Faults on the IMAP adapter and what each one means to a job: a permanent failure that
names the server or the folder and why, or a transient one that is retried; never the
password in a message. Against real Dovecots: the session's (plain text) and one of this
module's with a TLS listener whose self-signed certificate is made here."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from typer.testing import CliRunner

from bridge.cli import app
from bridge.core import run_job
from bridge.outcome import Delivery, PermanentError
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_folders import ensure_folder
from tasks.mail.imap_session import MailLoginRefused, Security, ServerSettings
from tasks.mail.port import MessageNotFound
from tasks.models import ActionType
from tasks.scheduled_actions import execute_scheduled_action
from tests.support.actions import insert_action
from tests.support.dovecot import Dovecot, TlsFiles, start_dovecot


def certificate(directory: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobbridge test IMAP")])
    now = datetime.now(UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[tuple[Dovecot, TlsFiles]]:
    base = Path(tempfile.mkdtemp(prefix="jobbridge-dovecot-tls-"))
    files = certificate(base)
    server = start_dovecot(base / "dovecot", tls=files)
    yield server, files
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tls_user(tls_dovecot: tuple[Dovecot, TlsFiles]) -> tuple[Dovecot, str, str]:
    server, _ = tls_dovecot
    name, password = f"t-{secrets.token_hex(6)}", secrets.token_urlsafe(12)
    server.add_user(name, password)
    return server, name, password


def provider(host: str, port: int, security: Security, user: str, password: str) -> ImapProvider:
    return ImapProvider(ServerSettings(host, port, security, user, password), None, "me@x.test")


def fails(mail: ImapProvider, kind: type[Exception]) -> str:
    with pytest.raises(kind) as caught:
        mail.list_threads()
    return str(caught.value)


# TLS --------------------------------------------------------------------------------


def test_tls_against_a_plain_text_port_is_permanent_and_says_so(
    tls_user: tuple[Dovecot, str, str],
) -> None:
    server, name, password = tls_user

    text = fails(provider(server.host, server.port, "tls", name, password), PermanentError)

    assert text.startswith(f"IMAP {server.host}:{server.port}: TLS failed: ")
    assert "did not answer in TLS (WRONG_VERSION_NUMBER): a plain-text port?" in text
    assert password not in text


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_that_does_not_verify_is_permanent_and_says_why(
    tls_user: tuple[Dovecot, str, str], security: Security
) -> None:
    server, name, password = tls_user
    port = server.tls_port if security == "tls" else server.port
    assert port is not None

    text = fails(provider(server.host, port, security, name, password), PermanentError)

    assert text.startswith(f"IMAP {server.host}:{port}: TLS failed: ")
    assert "certificate does not verify (self-signed certificate)" in text
    assert password not in text


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_this_host_trusts_logs_in(
    tls_dovecot: tuple[Dovecot, TlsFiles],
    tls_user: tuple[Dovecot, str, str],
    security: Security,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, name, password = tls_user
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_dovecot[1].cert))  # its issuer, installed
    port = server.tls_port if security == "tls" else server.port
    assert port is not None
    mail = provider("localhost", port, security, name, password)
    try:
        assert mail.list_threads().thread_ids == []
    finally:
        mail.close()


def test_starttls_where_the_server_offers_none_is_permanent(imap_user: Any) -> None:
    user = imap_user  # the session's Dovecot: plain text only

    text = fails(
        provider(user.host, user.port, "starttls", user.username, user.password), PermanentError
    )

    assert text == (
        f"IMAP {user.host}:{user.port}: TLS failed: the server offers no STARTTLS; use "
        "`security: tls` with its TLS port (usually 993)"
    )


@contextlib.contextmanager
def closing_server() -> Iterator[int]:
    """A port that accepts connections and closes them at once (an overloaded server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = listener.accept()
                connection.close()

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize(
    ("security", "expected"),
    [("none", "closed the connection"), ("tls", "closed the connection during the TLS")],
)
def test_a_connection_closed_at_once_is_transient(security: Security, expected: str) -> None:
    with closing_server() as port:
        text = fails(provider("127.0.0.1", port, security, "ana", "secret-pw"), ConnectionError)

    assert text.startswith(f"IMAP 127.0.0.1:{port}") and expected in text


runner = CliRunner()


@pytest.mark.parametrize("port_kind", ["plain", "self-signed"])
def test_accounts_check_reports_a_tls_failure_as_a_problem_without_the_password(
    tmp_path: Path,
    tls_user: tuple[Dovecot, str, str],
    monkeypatch: pytest.MonkeyPatch,
    port_kind: str,
) -> None:
    server, name, password = tls_user
    port = server.port if port_kind == "plain" else server.tls_port
    monkeypatch.setenv("TLS_TEST_PASSWORD", password)
    entry = f"{{host: {server.host}, port: {port}, security: tls, username: {name}, "
    entry += "password_env: TLS_TEST_PASSWORD}"
    accounts = tmp_path / "accounts.yaml"
    email = f"{name}@example.test"
    accounts.write_text(f"accounts:\n  - email: {email}\n    provider: imap\n    imap: {entry}\n")
    imported = runner.invoke(app, ["accounts", "import", str(accounts)], catch_exceptions=False)
    assert imported.exit_code == 0, imported.output

    result = runner.invoke(app, ["accounts", "check", email], catch_exceptions=False)

    assert result.exit_code == 1
    assert f"PROBLEM: IMAP {server.host}:{port}: TLS failed:" in result.stdout
    why = "a plain-text port?" if port_kind == "plain" else "certificate does not verify"
    assert why in result.stdout
    assert password not in result.output


# Logins ------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_for_good_and_never_shown(imap_user: Any) -> None:
    user = imap_user
    wrong = "Wrong-" + secrets.token_urlsafe(8)

    with pytest.raises(MailLoginRefused) as caught:
        provider(user.host, user.port, "none", user.username, wrong).list_threads()

    assert f"IMAP {user.host}:{user.port}: login refused for user" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value.args)


@pytest.mark.parametrize(
    "answer",
    [
        "[UNAVAILABLE] Temporary authentication failure.",
        "[LIMIT] Maximum number of connections from user+IP exceeded",
        "[INUSE] Mailbox in use",
    ],
)
def test_a_login_the_server_refuses_for_now_is_transient(
    imap_user: Any, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    def unavailable(self: IMAPClient, username: str, password: str) -> None:
        raise LoginError(f"b'{answer}'")

    monkeypatch.setattr(IMAPClient, "login", unavailable)
    mail = provider(imap_user.host, imap_user.port, "none", imap_user.username, "pw")

    assert "login not possible now" in fails(mail, ConnectionError)


# Folders the server will not make ---------------------------------------------------


@pytest.fixture
def mail(imap_user: Any) -> Iterator[ImapProvider]:
    user = imap_user
    made = provider(user.host, user.port, "none", user.username, user.password)
    yield made
    made.close()


def delivered(mail: ImapProvider, key: str, subject: str = "Receipt", **headers: str) -> str:
    built = EmailMessage()
    built["From"] = "shop@example.test"
    built["To"] = "me@example.test"
    built["Subject"] = subject
    built["Date"] = format_datetime(datetime.now(UTC))
    built["Message-ID"] = f"<{key}@faults.test>"
    for name, value in headers.items():
        del built[name.replace("_", "-")]
        built[name.replace("_", "-")] = value
    built.set_content("Thanks.")
    return mail.deliver(built)


@pytest.mark.parametrize(
    ("folder", "answer"),
    [
        ("Receipts.2026", "[CANNOT] Character not allowed in mailbox name: '.'"),
        ("R" * 300, "[CANNOT] Mailbox name too long"),
        ("~shared", "[CANNOT] Invalid mailbox name: Begins with '~'"),
    ],
)
def test_a_folder_the_server_refuses_is_permanent_and_names_it(
    mail: ImapProvider, folder: str, answer: str
) -> None:
    key = delivered(mail, "refused")

    with pytest.raises(PermanentError) as caught:
        mail.move(key, folder)

    assert str(caught.value) == (
        f"IMAP folder {folder!r} cannot be created: the server answered {answer!r}"
    )
    assert mail.get_message(key).folder == "INBOX"


def test_a_label_folder_the_server_refuses_is_permanent(mail: ImapProvider) -> None:
    key = delivered(mail, "label")

    # Not an IMAP keyword (a space): such a label is a folder holding a copy.
    with pytest.raises(PermanentError, match=r"'Q1\.2026 reports' cannot be created"):
        mail.label(key, "Q1.2026 reports")


def test_a_scheduled_move_to_a_refused_folder_fails_once_not_retried(imap_mailbox: Any) -> None:
    key = imap_mailbox.keys[0]
    row = insert_action(
        imap_mailbox.account_id, ActionType.MOVE_FOLDER, key, folder_name="Receipts.2026"
    )

    result = run_job(execute_scheduled_action, {"scheduledActionId": row.id}, Delivery("t", "1", 0))

    assert result.outcome.value == "failed"
    assert "'Receipts.2026' cannot be created" in result.detail
    assert "Character not allowed" in result.detail
    assert key in imap_mailbox.folder_keys("INBOX")


class _Refusing:
    """A client whose CREATE gets the answer given."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def folder_exists(self, name: str) -> bool:
        return False

    def create_folder(self, name: str) -> None:
        raise IMAPClientError(f"create failed: {self.answer}")


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("[UNAVAILABLE] Mailbox is locked", ConnectionError),
        ("[SERVERBUG] Internal error occurred", ConnectionError),
        ("[LIMIT] Too many mailboxes", PermanentError),
        ("[NOPERM] Permission denied", PermanentError),
    ],
)
def test_create_answers_that_say_not_now_are_transient(answer: str, kind: type) -> None:
    with pytest.raises(kind, match=r"'Folder' cannot be created"):
        ensure_folder(_Refusing(answer), "Folder")


# Messages gone, or odd -----------------------------------------------------------------


def test_a_thread_deleted_between_the_listing_and_the_action_is_not_found(
    mail: ImapProvider, imap_user: Any
) -> None:
    delivered(mail, "soon-gone")
    page = mail.list_threads()
    (thread,) = page.thread_ids
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as raw:
        raw.login(imap_user.username, imap_user.password)
        raw.select_folder("INBOX")
        raw.move(raw.search(["ALL"]), "Trash")

    newest = page.newest_message_ids[thread]
    for act in (mail.mark_read, mail.archive, lambda key: mail.label(key, "Done")):
        with pytest.raises(MessageNotFound):
            act(newest)
    with pytest.raises(MessageNotFound):
        mail.get_thread(thread)
    assert mail.list_threads().thread_ids == []


def test_broken_headers_and_8bit_ids_are_listed_threaded_and_acted_on(mail: ImapProvider) -> None:
    raw = (
        b"From: =?bogus?q?x?= <odd@example.test>\r\nSubject: caf\xe9\r\n"
        b"Message-ID: <caf\xe9@faults.test>\r\nReferences: not-an-id \xff <root@faults.test>\r\n"
        b"Date: the day after tomorrow\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
    )
    mail.client.append("INBOX", raw)
    delivered(mail, "root", "Root", Date=format_datetime(datetime.now(UTC) - timedelta(days=1)))

    page = mail.list_threads()
    (thread,) = page.thread_ids
    odd, root = mail.get_thread(thread)[::-1]

    assert thread == "<root@faults.test>" == root.id
    # No usable Message-ID (8-bit): the message's place is its id; its date is its arrival.
    assert odd.id.startswith("uid:") and page.newest_message_ids[thread] == odd.id
    assert odd.subject.startswith("caf") and odd.sender.endswith("<odd@example.test>")
    mail.mark_read(odd.id)
    assert mail.get_message(odd.id).read
