"""Mail connections share one TLS context per trust setting (tasks/mail/tls.py):
loading the CA certificates for each connection cost more than an IMAP job's work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.mail.tls import client_context, http_context


def test_connections_with_the_same_trust_setting_share_one_context() -> None:
    assert client_context() is client_context()


def test_another_ssl_cert_file_gets_a_context_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = client_context()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "issuer.pem"))

    assert client_context() is not before
    assert client_context() is client_context()


def test_the_shared_context_verifies_servers() -> None:
    context = client_context()

    assert context.check_hostname
    assert context.verify_mode.name == "CERT_REQUIRED"


def test_graph_clients_share_one_context_like_httpx_s_own() -> None:
    assert http_context() is http_context()
    assert http_context().verify_mode.name == "CERT_REQUIRED"
    assert http_context() is not client_context()  # certifi's roots, as httpx chooses
