"""REDIS_URL and DATABASE_URL are checked when the settings are read: a URL no client
could use fails every command at start, naming the variable, never echoing the value
(it may hold a password)."""

from __future__ import annotations

import pytest

from config import load_settings
from tests.support.settings import config_error, no_dotenv  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_dotenv")


@pytest.mark.parametrize("url", ["redis://r:6379/0", "rediss://r:6380/1"])
def test_redis_urls_the_client_and_the_broker_both_take_are_accepted(url: str) -> None:
    assert load_settings(redis_url=url).redis_url == url


def test_a_redis_url_scheme_in_capitals_is_read_in_lower_case() -> None:
    assert load_settings(redis_url="REDIS://r:6379/0").redis_url == "redis://r:6379/0"


@pytest.mark.parametrize(
    "url",
    ["nope", "localhost:6379", "http://r:6379", "unix:///run/redis.sock"],
    ids=["word", "no-scheme", "http", "unix-socket-kombu-cannot-use"],
)
def test_a_redis_url_of_another_form_is_refused_naming_the_variable(url: str) -> None:
    message = config_error(redis_url=url)

    assert "REDIS_URL" in message and "redis://" in message


def test_a_redis_url_with_a_port_that_is_not_a_number_is_refused() -> None:
    message = config_error(redis_url="redis://:hunter2@127.0.0.1:abc/0")

    assert "REDIS_URL" in message and "port" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@db:5432/app", "postgres://u@db/app", "sqlite:////tmp/jobbridge.db"],
)
def test_database_urls_sqlalchemy_knows_are_accepted(url: str) -> None:
    assert load_settings(database_url=url).database_url == url


def test_a_database_url_that_is_no_url_is_refused_naming_the_variable() -> None:
    message = config_error(database_url="nope")

    assert "DATABASE_URL" in message and "postgresql://" in message


def test_a_database_url_naming_an_unknown_database_is_refused_naming_it() -> None:
    message = config_error(database_url="foo://u:hunter2@db/app")

    assert "DATABASE_URL" in message and "(foo)" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("password", ["ab#cd", "a?b", "x/y"])
def test_a_database_password_with_url_delimiters_is_read_as_sqlalchemy_reads_it(
    password: str,
) -> None:
    url = f"postgresql://admin:{password}@db.example.com:5432/app"

    assert load_settings(database_url=url).database_url == url


def test_a_database_url_with_a_port_out_of_range_is_refused() -> None:
    message = config_error(database_url="postgresql://u@db:70000/app")

    assert "DATABASE_URL" in message and "port" in message


def test_a_database_url_with_a_port_that_is_not_a_number_is_refused() -> None:
    message = config_error(database_url="postgresql://u:hunter2@db:5x/app")

    assert "DATABASE_URL" in message and "port" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/app", "oracle://u@db/app"])
def test_a_database_url_of_a_database_jobbridge_does_not_run_on_is_refused(url: str) -> None:
    message = config_error(database_url=url)

    assert "DATABASE_URL" in message and "PostgreSQL" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://u@db/app", "postgresql+pg8000://u@db/app", "sqlite+aiosqlite:///x"],
)
def test_a_database_url_naming_a_driver_jobbridge_does_not_run_on_is_refused(url: str) -> None:
    message = config_error(database_url=url)

    assert "DATABASE_URL" in message and "leave the driver out" in message


def test_a_psycopg2_database_url_runs_on_psycopg_3() -> None:
    settings = load_settings(database_url="postgresql+psycopg2://u@db/app")

    assert settings.sqlalchemy_url == "postgresql+psycopg://u@db/app"


@pytest.mark.parametrize("variable", ["redis_url", "broker_url"])
@pytest.mark.parametrize("path", ["/abc", "/0/extra", "/-1"])
def test_a_redis_url_whose_path_is_no_database_number_is_refused(variable: str, path: str) -> None:
    message = config_error(**{variable: f"redis://:hunter2@r:6379{path}"})

    assert variable.upper() in message and "database number" in message
    assert "hunter2" not in message


def test_a_redis_url_with_a_query_option_redis_py_cannot_read_is_refused_naming_it() -> None:
    message = config_error(redis_url="redis://r:6379/0?socket_timeout=hunter2")

    assert "REDIS_URL" in message and "socket_timeout" in message
    assert "hunter2" not in message


def test_a_redis_url_option_the_broker_cannot_take_is_refused_where_it_is_the_broker() -> None:
    url = "redis://r:6379/0?socket_timeout=5"  # redis-py's option, which kombu refuses

    assert "REDIS_URL" in config_error(redis_url=url)
    assert "socket_timeout" in config_error(redis_url=url)
    assert load_settings(redis_url=url, broker_url="amqp://u:p@mq:5672/v").redis_url == url


def test_a_broker_url_option_kombu_cannot_read_is_refused_naming_it_not_its_value() -> None:
    message = config_error(broker_url="amqp://u:p@mq:5672/v?heartbeat=hunter2")

    assert "BROKER_URL" in message and "heartbeat" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url", ["amqp://u:p@mq:5672/v?heartbeat=30", "rediss://r:6380/1?ssl_cert_reqs=required"]
)
def test_broker_url_options_kombu_takes_are_accepted(url: str) -> None:
    assert load_settings(broker_url=url).broker_url == url


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:jobs?mode=memory&uri=true"]
)
def test_an_in_memory_sqlite_database_is_refused_naming_the_variable(url: str) -> None:
    message = config_error(database_url=url)

    assert "DATABASE_URL" in message and "in-memory" in message
