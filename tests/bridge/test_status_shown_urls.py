"""URLs as the `/status` page (and every probe) shows them (bridge.ops.probes.shown_url):
scheme, host, port and path, never a user, a password, a query or a fragment, even
from a URL that is not well formed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.ops.probes import check_database, shown_url
from bridge.web.factory import create_app
from tests.support import env
from tests.support.qstash_console_double import QStashConsole

Configure = Callable[..., Any]
TOKEN = "shown-urls-token-0123"
SECRETS = ("svc-user", "svc-pw-1", "query-secret-2")


@pytest.fixture
def status(router: Any, configure: Configure) -> Iterator[Callable[[], str]]:
    """GET /status.json and /status of a fresh app, both texts together."""
    opened: list[TestClient] = []

    def read() -> str:
        from config import get_settings

        opened.append(TestClient(create_app(get_settings())))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        return (
            opened[-1].get("/status.json", headers=auth).text
            + opened[-1].get("/status", headers=auth).text
        )

    configure(**env.QSTASH_ENV, **env.INNGEST_ENV, METRICS_TOKEN=TOKEN)
    yield read
    for made in opened:
        made.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@inngest.test:8288", "http://inngest.test:8288"),
        ("https://u:p@ss/w:rd@qstash.test/v2?token=t#frag", "https://qstash.test/v2"),
        ("postgresql+psycopg://u:p@ss@db.test:5432/app", "postgresql+psycopg://db.test:5432/app"),
        ("redis://:pw@redis.test:6379/0", "redis://redis.test:6379/0"),
        ("https://qstash.upstash.io", "https://qstash.upstash.io"),
    ],
)
def test_a_shown_url_keeps_scheme_host_port_and_path_only(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize("variable", ["INNGEST_BASE_URL", "INNGEST_DEV"])
def test_credentials_in_inngest_s_url_are_not_shown(
    configure: Configure, status: Callable[[], str], variable: str
) -> None:
    url = "http://svc-user:svc-pw-1@inngest.test:8288?key=query-secret-2"
    # A dev server (INNGEST_DEV) takes no signing key.
    unset = {"INNGEST_SIGNING_KEY": None} if variable == "INNGEST_DEV" else {}
    configure(**{"INNGEST_BASE_URL": None, variable: url, **unset})

    page = status()

    assert "http://inngest.test:8288/health" in page
    assert not [secret for secret in SECRETS if secret in page]


def test_credentials_in_qstash_s_url_are_not_shown(
    router: Any, configure: Configure, status: Callable[[], str]
) -> None:
    QStashConsole(router, down=True)
    configure(QSTASH_URL="https://svc-user:svc-pw-1@qstash.test")

    page = status()

    assert "QStash at https://qstash.test is unreachable" in page
    assert not [secret for secret in SECRETS if secret in page]


def test_a_database_password_holding_an_at_sign_is_never_shown(configure: Configure) -> None:
    settings = configure(DATABASE_URL="postgresql+psycopg://svc-user:p@svc-pw-1@127.0.0.1:1/x")

    check, _ = check_database(settings, 2.0)

    assert check.detail.startswith("postgresql 127.0.0.1:1/x: ")
    assert not [secret for secret in SECRETS if secret in check.detail]
