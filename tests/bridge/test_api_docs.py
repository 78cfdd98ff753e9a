"""The API docs work offline, can be closed or kept for key holders, and show every job
route's request body."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from bridge.web.factory import create_app
from tasks import JOBS
from tests.support import env

Client = Callable[..., TestClient]


@pytest.fixture
def client(configure: Any) -> Iterator[Client]:
    opened: list[TestClient] = []

    def make(**variables: str | None) -> TestClient:
        test_client = TestClient(create_app(configure(**variables)))
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.close()


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"anyone:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_swagger_ui_loads_its_assets_from_the_app_not_a_cdn(client: Client) -> None:
    app = client()

    page = app.get("/docs")
    script = app.get("/static-offline-docs/swagger-ui-bundle.js")

    assert page.status_code == 200
    assert "/static-offline-docs/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    assert script.status_code == 200 and len(script.content) > 100_000


def test_redoc_loads_its_script_from_the_app(client: Client) -> None:
    app = client()

    page = app.get("/redoc")

    assert page.status_code == 200
    assert "/static-offline-docs/redoc.standalone.js" in page.text
    assert app.get("/static-offline-docs/redoc.standalone.js").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_off_serves_none_of_them(client: Client, path: str) -> None:
    assert client(API_DOCS="off").get(path).status_code == 404


@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/openapi.json", "/static-offline-docs/swagger-ui.css"]
)
def test_private_docs_refuse_a_caller_without_the_key(client: Client, path: str) -> None:
    response = client(API_DOCS="private").get(path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": env.INTERNAL_API_KEY},
        {"Authorization": f"Bearer {env.INTERNAL_API_KEY}"},
        basic(env.INTERNAL_API_KEY),
    ],
    ids=["x-api-key", "bearer", "basic"],
)
def test_private_docs_open_with_the_internal_key(client: Client, headers: dict[str, str]) -> None:
    assert client(API_DOCS="private").get("/openapi.json", headers=headers).status_code == 200


def test_private_docs_refuse_a_wrong_password(client: Client) -> None:
    response = client(API_DOCS="private").get("/docs", headers=basic("guess"))

    assert response.status_code == 401


def test_private_docs_refuse_basic_credentials_that_are_not_ascii(client: Client) -> None:
    response = client(API_DOCS="private").get(
        "/docs", headers={b"Authorization": "Basic é".encode()}
    )

    assert response.status_code == 401


def test_private_docs_leave_the_job_routes_alone(client: Client) -> None:
    response = client(API_DOCS="private").get("/healthz")

    assert response.status_code == 200


def wire_name(name: str, field: FieldInfo) -> str:
    """The name the schema gives a field: the first it is read by, e.g. `pageCount`
    (also read as `page`)."""
    if isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return field.alias or name


def test_every_job_route_declares_its_payload_as_request_body(client: Client) -> None:
    schema = client().get("/openapi.json").json()

    for spec in JOBS.values():
        operation = schema["paths"][spec.route]["post"]
        reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
        wire_names = {wire_name(name, field) for name, field in spec.payload.model_fields.items()}
        assert set(body["properties"]) == wire_names, spec.event
        assert {"200", "401", "489", "503"} <= set(operation["responses"]), spec.event


def test_the_schemas_references_all_resolve(client: Client) -> None:
    schema = client().get("/openapi.json").json()
    names = set(schema["components"]["schemas"])

    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    for reference in references(schema):
        assert reference.rsplit("/", 1)[1] in names, reference


def test_every_operation_has_an_id_of_its_own(client: Client) -> None:
    # Generated clients name their functions by it.
    schema = client().get("/openapi.json").json()

    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]

    assert len(ids) == len(set(ids))
