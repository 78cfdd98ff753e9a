"""`jobbridge accounts connect google EMAIL`: the installed-app OAuth flow through a
loopback redirect, run as a person runs it, with this test as the browser."""

from __future__ import annotations

import os
import queue
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from bridge.store.db import session_scope
from tests.support.commands import BIN
from tests.support.oauth_server import OAuthServer

EMAIL = "ana@example.com"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer().start()
    yield server
    server.stop()


def _environment(oauth: OAuthServer, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COLUMNS="40",
        CI="true",
        GOOGLE_CLIENT_ID=oauth.client_id,
        GOOGLE_CLIENT_SECRET=oauth.client_secret,
        GOOGLE_AUTH_URL=f"{oauth.url}/o/oauth2/auth",
        GOOGLE_TOKEN_URL=f"{oauth.url}/token",
        GMAIL_API_URL=f"{oauth.url}/",
        TOKEN_ENCRYPTION_KEY=KEY,
    )
    env.update(extra)
    return env


class Connecting:
    """The command, running; its stdout read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "jobbridge"), "accounts", "connect", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def sign_in_address(self) -> str:
        while True:
            line = self.lines.get(timeout=30)
            self.seen.append(line)
            if line.startswith("http"):
                return line.strip()

    def finish(self) -> tuple[int, str, str]:
        # communicate() reads stdout too, beside the reader: what it got comes last.
        rest, stderr = self.process.communicate(timeout=60)
        self._reader.join(timeout=30)  # it ends at the output's end
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.process.returncode, "".join(self.seen) + rest, stderr


def _stored(email: str) -> Any:
    from tasks.models import EmailAccount

    with session_scope() as session:
        return session.scalars(select(EmailAccount).where(EmailAccount.email == email)).first()


def _browse(address: str, ca_bundle: str | None = None) -> httpx.Response:
    """What a browser does: open the sign-in page, follow its redirect to the loopback."""
    verify = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
    return httpx.get(address, follow_redirects=True, timeout=30, verify=verify)


def test_connect_google_stores_the_refresh_token_encrypted(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    page = _browse(command.sign_in_address())
    code, stdout, stderr = command.finish()

    assert (code, page.status_code) == (0, 200), stdout + stderr
    stored = _stored(EMAIL).provider_settings["refresh_token_encrypted"]
    assert Fernet(KEY).decrypt(stored.encode()).decode() == oauth.issued_refresh_tokens[0]
    assert oauth.violations == []


def test_connect_never_prints_the_tokens(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    _browse(command.sign_in_address())
    _, stdout, stderr = command.finish()

    assert oauth.issued_refresh_tokens
    assert oauth.issued_refresh_tokens[0] not in stdout + stderr
    assert "ya29." not in stdout + stderr


def test_connect_asks_for_offline_access_with_pkce_for_the_gmail_scope(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    _browse(command.sign_in_address())
    command.finish()

    asked = oauth.authorize_requests[0]
    assert asked["access_type"] == "offline"
    assert asked["scope"] == "https://www.googleapis.com/auth/gmail.modify"
    assert asked["code_challenge_method"] == "S256"
    assert asked["login_hint"] == EMAIL


def test_connect_clears_a_recorded_reconnect(oauth: OAuthServer) -> None:
    from tasks.models import EmailAccount, MailProviderKind

    with session_scope() as session:
        session.add(
            EmailAccount(email=EMAIL, provider=MailProviderKind.GOOGLE, connection_error="refused")
        )
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    _browse(command.sign_in_address())
    code, stdout, stderr = command.finish()

    assert code == 0, stdout + stderr
    assert _stored(EMAIL).connection_error is None


def test_connect_in_another_case_updates_the_same_account(oauth: OAuthServer) -> None:
    from tasks.models import EmailAccount, MailProviderKind

    with session_scope() as session:
        session.add(EmailAccount(email=EMAIL, provider=MailProviderKind.GOOGLE))
    command = Connecting(_environment(oauth), "google", EMAIL.upper(), "--no-browser")
    _browse(command.sign_in_address())
    code, stdout, stderr = command.finish()

    assert code == 0, stdout + stderr
    assert f"connected google account {EMAIL} " in stdout
    with session_scope() as session:
        same = func.lower(EmailAccount.email) == EMAIL.lower()
        accounts = session.scalars(select(EmailAccount.email).where(same)).all()
    assert accounts == [EMAIL]
    assert "refresh_token_encrypted" in _stored(EMAIL).provider_settings


def test_connect_refused_by_the_person_says_so_and_stores_nothing(oauth: OAuthServer) -> None:
    oauth.refuse = True
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    _browse(command.sign_in_address())
    code, stdout, stderr = command.finish()

    assert code == 1
    assert "access_denied" in stderr
    assert "Traceback" not in stdout + stderr
    assert _stored(EMAIL) is None


def test_connect_without_an_encryption_key_stops_before_signing_in(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth, TOKEN_ENCRYPTION_KEY=""), "google", EMAIL)
    code, _, stderr = command.finish()

    assert code == 2
    assert "TOKEN_ENCRYPTION_KEY" in stderr
    assert oauth.authorize_requests == []


def test_connect_without_a_client_id_names_the_variable(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth, GOOGLE_CLIENT_ID=""), "google", EMAIL)
    code, _, stderr = command.finish()

    assert code == 2
    assert "GOOGLE_CLIENT_ID is not set" in stderr


def test_connect_on_a_port_in_use_names_the_port_option_and_exits_2(oauth: OAuthServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser", "--port", port)
        code, stdout, stderr = command.finish()

    assert code == 2
    assert "--port" in stderr and f"127.0.0.1:{port}" in stderr
    assert "Traceback" not in stdout + stderr
    assert oauth.authorize_requests == []


def test_connect_gives_up_when_nobody_signs_in(oauth: OAuthServer) -> None:
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser", "--timeout", "1")
    code, stdout, stderr = command.finish()

    assert code == 1
    assert "Traceback" not in stdout + stderr
    assert _stored(EMAIL) is None


def test_connect_google_as_someone_else_stores_nothing(oauth: OAuthServer) -> None:
    oauth.signed_in_as = "bob@example.com"
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    _browse(command.sign_in_address())
    code, _, stderr = command.finish()

    assert code == 1
    assert "the sign-in was as bob@example.com, not ana@example.com" in stderr
    assert _stored(EMAIL) is None


# Microsoft ------------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[Any]:
    from tests.support.graph_double import GraphDouble

    with GraphDouble(email=EMAIL, client_secret=None) as double:  # a public client
        yield double


def _microsoft_environment(graph: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(graph.env(), COLUMNS="40", CI="true", TOKEN_ENCRYPTION_KEY=KEY)
    return env


def test_connect_microsoft_stores_the_refresh_token_encrypted(graph: Any) -> None:
    command = Connecting(_microsoft_environment(graph), "microsoft", EMAIL, "--no-browser")
    page = _browse(command.sign_in_address(), ca_bundle=str(graph.ca_bundle))
    code, stdout, stderr = command.finish()

    assert (code, page.status_code) == (0, 200), stdout + stderr
    stored = _stored(EMAIL).provider_settings["refresh_token_encrypted"]
    assert Fernet(KEY).decrypt(stored.encode()).decode() == graph.issued_refresh_tokens[0]
    assert graph.issued_refresh_tokens[0] not in stdout + stderr
    assert stderr == ""  # no warning from msal either
    assert graph.violations == []


def test_connect_microsoft_asks_for_mail_and_offline_access(graph: Any) -> None:
    command = Connecting(_microsoft_environment(graph), "microsoft", EMAIL, "--no-browser")
    _browse(command.sign_in_address(), ca_bundle=str(graph.ca_bundle))
    command.finish()

    scopes = set(graph.authorize_requests[0]["scope"].split())
    assert {
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Mail.Send",
        "offline_access",
    } <= scopes


def test_connect_microsoft_declined_says_so_and_stores_nothing(graph: Any) -> None:
    graph.refuse_sign_in = True
    command = Connecting(_microsoft_environment(graph), "microsoft", EMAIL, "--no-browser")
    _browse(command.sign_in_address(), ca_bundle=str(graph.ca_bundle))
    code, stdout, stderr = command.finish()

    assert code == 1
    assert "access_denied" in stderr
    assert "Traceback" not in stdout + stderr
    assert _stored(EMAIL) is None


def test_a_stray_request_to_the_loopback_does_not_end_the_sign_in(graph: Any) -> None:
    command = Connecting(_microsoft_environment(graph), "microsoft", EMAIL, "--no-browser")
    address = command.sign_in_address()
    redirect = dict(parse_qsl(urlsplit(address).query))["redirect_uri"]
    stray = httpx.get(redirect + "favicon.ico?code=forged", timeout=30)
    _browse(address, ca_bundle=str(graph.ca_bundle))
    code, stdout, stderr = command.finish()

    assert (stray.status_code, code) == (200, 0), stdout + stderr


def test_a_plain_http_microsoft_login_url_is_refused_by_name(tmp_path: Path) -> None:
    from tests.support.commands import jobbridge

    done = jobbridge(
        "accounts", "connect", "microsoft", EMAIL, "--no-browser",
        workdir=tmp_path, MICROSOFT_LOGIN_URL="http://login.example.test",
    )  # fmt: skip

    assert done.returncode == 2
    assert "MICROSOFT_LOGIN_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_connect_microsoft_as_someone_else_stores_nothing(graph: Any) -> None:
    graph.signed_in_as = "bob@example.com"
    command = Connecting(_microsoft_environment(graph), "microsoft", EMAIL, "--no-browser")
    _browse(command.sign_in_address(), ca_bundle=str(graph.ca_bundle))
    code, _, stderr = command.finish()

    assert code == 1
    assert "the sign-in was as bob@example.com, not ana@example.com" in stderr
    assert _stored(EMAIL) is None


def test_a_stray_request_to_the_google_loopback_does_not_end_the_sign_in(
    oauth: OAuthServer,
) -> None:
    command = Connecting(_environment(oauth), "google", EMAIL, "--no-browser")
    address = command.sign_in_address()
    redirect = dict(parse_qsl(urlsplit(address).query))["redirect_uri"]
    stray = httpx.get(redirect + "favicon.ico", timeout=30)
    _browse(address)
    code, stdout, stderr = command.finish()

    assert (stray.status_code, code) == (200, 0), stdout + stderr
    assert oauth.violations == []
