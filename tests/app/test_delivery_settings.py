"""Which way digests and summaries go (RESEND_API_KEY, SMTP_URL, or the own mailbox), what
an SMTP_URL means, and how a bad value is named without showing a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError
from tasks.mail.delivery_settings import Transport, load_delivery_settings
from tasks.mail.digest_mailer import digest_mailer
from tests.support.delivery import clear_delivery_environment

RESEND = {"RESEND_API_KEY": "re_test_key", "RESEND_FROM": "digest@mail.example.test"}


@pytest.fixture(autouse=True)
def no_delivery_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_delivery_environment(monkeypatch, tmp_path)


def set_env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("variables", "transport"),
    [
        ({}, Transport.MAILBOX),
        ({"RESEND_API_KEY": "", "SMTP_URL": "", "RESEND_FROM": ""}, Transport.MAILBOX),
        ({"SMTP_URL": "smtp://127.0.0.1:2525"}, Transport.SMTP),
        ({**RESEND, "SMTP_URL": "smtp://127.0.0.1:2525"}, Transport.RESEND),
    ],
    ids=["nothing set", "set empty", "SMTP_URL", "RESEND_API_KEY and SMTP_URL"],
)
def test_resend_wins_over_smtp_url_which_wins_over_the_own_mailbox(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], transport: Transport
) -> None:
    set_env(monkeypatch, **variables)

    assert digest_mailer().transport is transport


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://ana:pw@mail.example.com", ("mail.example.com", 587, "starttls", "ana", "pw")),
        ("smtps://ana:pw@mail.example.com", ("mail.example.com", 465, "tls", "ana", "pw")),
        (
            "smtp://a:b@mx.example:2587?security=starttls",
            ("mx.example", 2587, "starttls", "a", "b"),
        ),
        (
            "smtps://a%40example.com:p%40ss@mx.example",
            ("mx.example", 465, "tls", "a@example.com", "p@ss"),
        ),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, "none", "", "")),
        ("smtp://localhost:2525?security=starttls", ("localhost", 2525, "starttls", "", "")),
    ],
    ids=["smtp", "smtps", "port", "escaped", "loopback", "loopback starttls"],
)
def test_smtp_url_gives_host_port_security_user_and_password(
    monkeypatch: pytest.MonkeyPatch, url: str, server: tuple[str, int, str, str, str]
) -> None:
    set_env(monkeypatch, SMTP_URL=url)

    parsed = load_delivery_settings().smtp_server()

    assert (parsed.host, parsed.port, parsed.security, parsed.username, parsed.password) == server


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mail.example.com:587", "must start with smtp://"),
        ("http://mail.example.com", "must start with smtp://"),
        ("smtp://ana:pw@mail.example.com?security=none", "only for a loopback host"),
        ("smtp://ana@mail.example.com", "needs both a user and a password"),
        ("smtp://mail.example.com:99999", "port that is not a number"),
        ("smtps://mail.example.com?security=starttls", "smtps:// is TLS"),
        ("smtp://mail.example.com?tls=yes", "takes only the option security"),
        ("smtp://mail.example.com/inbox", "takes no path"),
    ],
)
def test_a_bad_smtp_url_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    set_env(monkeypatch, SMTP_URL=url)

    with pytest.raises(ConfigError, match=f"SMTP_URL: .*{says}"):
        digest_mailer()


def test_a_bad_smtp_url_error_does_not_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, SMTP_URL="smtp://ana:s3cret-pw@mail.example.com?security=none")

    with pytest.raises(ConfigError) as raised:
        digest_mailer()

    assert "s3cret-pw" not in str(raised.value)


def test_the_settings_do_not_show_the_password_or_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, SMTP_URL="smtp://ana:s3cret-pw@mail.example.com", **RESEND)

    shown = f"{load_delivery_settings()!r} {load_delivery_settings().smtp_server()!r}"

    assert "s3cret-pw" not in shown and "re_test_key" not in shown


def test_a_resend_key_without_resend_from_asks_for_the_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, RESEND_API_KEY="re_test_key")

    with pytest.raises(ConfigError, match="RESEND_API_KEY is set but RESEND_FROM is not"):
        digest_mailer()


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"RESEND_FROM": "digest@mail.example.test"}, "RESEND_FROM is set but RESEND_API_KEY"),
        ({"SMTP_FROM": "digest@mail.example.test"}, "SMTP_FROM is set but SMTP_URL"),
    ],
    ids=["RESEND_FROM", "SMTP_FROM"],
)
def test_a_sender_address_without_its_server_is_an_error(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], says: str
) -> None:
    set_env(monkeypatch, **variables)

    with pytest.raises(ConfigError, match=says):
        digest_mailer()


@pytest.mark.parametrize("address", ["Digest <digest@example.test>", "digest", "a@localhost"])
def test_a_sender_address_must_be_a_plain_address(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    set_env(monkeypatch, RESEND_API_KEY="re_test_key", RESEND_FROM=address)

    with pytest.raises(ConfigError, match="RESEND_FROM: must be a plain address"):
        digest_mailer()


def test_digests_through_smtp_come_from_smtp_from_else_the_accounts_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, SMTP_URL="smtp://127.0.0.1:2525")
    own = digest_mailer().sender_address("ana@example.test")
    monkeypatch.setenv("SMTP_FROM", "digest@mail.example.test")

    assert (own, digest_mailer().sender_address("ana@example.test")) == (
        "ana@example.test",
        "digest@mail.example.test",
    )
