"""The operator routes (`/metrics`, `/status`, `/status.json`) as HTTP sees them: which
tokens turn them on and open them (bridge.web.operator_auth), HEAD as well as GET, and
their trailing-slash variants, which ask for the token before anything else."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.web.factory import create_app

Configure = Callable[..., Any]
TOKEN = "operator-routes-token-0123"
PATHS = ["/status", "/status.json", "/metrics"]
FOREIGN_HOST = "attacker.example"


def basic(password: bytes, user: bytes = b"operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(configure: Configure) -> Iterator[Callable[[], TestClient]]:
    """A web app made from the settings in force when it is asked for."""
    opened: list[TestClient] = []

    def make() -> TestClient:
        from config import get_settings

        opened.append(TestClient(create_app(get_settings()), follow_redirects=False))
        return opened[-1]

    yield make
    for made in opened:
        made.close()


# Which tokens turn the routes on, and open them --------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_token_of_only_whitespace_serves_no_route(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN="   ")

    response = client().get(path, headers=basic(b"   "))

    assert response.status_code == 404


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_bearer_and_basic_both_ignore_the_whitespace_around_the_secret(
    configure: Configure, client: Callable[[], TestClient], scheme: str
) -> None:
    configure(METRICS_TOKEN=f" {TOKEN} ")
    padded = f"  {TOKEN} "
    headers = bearer(padded) if scheme == "bearer" else basic(padded.encode())

    assert client().get("/status.json", headers=headers).status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_a_token_that_is_not_ascii_opens_with_either_scheme(
    configure: Configure, client: Callable[[], TestClient], scheme: str
) -> None:
    token = "jeton-clé-ünïcødé-0123"
    configure(METRICS_TOKEN=token)
    # curl sends a Bearer header's UTF-8 bytes as they are; a browser base64s them.
    headers: dict[str, Any] = (
        {"Authorization": b"Bearer " + token.encode()}
        if scheme == "bearer"
        else basic(token.encode())
    )

    assert client().get("/metrics", headers=headers).status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_a_wrong_token_that_is_not_ascii_is_refused(
    configure: Configure, client: Callable[[], TestClient], scheme: str
) -> None:
    configure(METRICS_TOKEN="jeton-clé-0123")
    wrong = "jeton-clè-0123".encode()
    headers: dict[str, Any] = (
        {"Authorization": b"Bearer " + wrong} if scheme == "bearer" else basic(wrong)
    )

    assert client().get("/metrics", headers=headers).status_code == 401


@pytest.mark.parametrize("path", PATHS)
def test_basic_credentials_that_are_not_ascii_are_refused_not_an_error(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path, headers={b"Authorization": "Basic é".encode()})

    assert response.status_code == 401


def test_the_refusal_says_what_needs_the_token(
    configure: Configure, client: Callable[[], TestClient]
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get("/status")

    assert response.status_code == 401
    assert response.text.startswith("the status page needs METRICS_TOKEN: ")


# HEAD, and the trailing slash ------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_head_is_refused_without_the_token(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    assert client().head(path).status_code == 401


@pytest.mark.parametrize("path", PATHS)
def test_head_answers_like_get_with_the_token(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)
    web = client()

    head = web.head(path, headers=bearer(TOKEN))

    assert head.status_code == 200
    assert (
        head.headers["content-type"] == web.get(path, headers=bearer(TOKEN)).headers["content-type"]
    )


@pytest.mark.parametrize("path", PATHS)
def test_the_slash_variant_asks_for_the_token_before_redirecting(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path + "/", headers={"Host": FOREIGN_HOST})

    assert response.status_code == 401
    assert "location" not in response.headers


@pytest.mark.parametrize("path", PATHS)
def test_the_slash_variant_redirects_by_path_alone(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path + "/", headers={"Host": FOREIGN_HOST, **bearer(TOKEN)})

    assert response.status_code == 307
    assert response.headers["location"] == path


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
def test_a_slash_redirect_of_another_route_ignores_a_forged_host(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path + "/?x=1", headers={"Host": FOREIGN_HOST})

    assert response.status_code == 307
    assert response.headers["location"] == path + "?x=1"
