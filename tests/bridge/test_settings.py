"""Settings validation: every bad value is a ConfigError naming the variable and the fix.

Overrides passed to `load_settings` take precedence over the environment, which
conftest fills for the session (DATABASE_URL, REDIS_URL, INTERNAL_API_KEY, ...).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from config import ConfigError, Settings, load_settings
from config.broker import redacted_url
from tests.support import env as test_env
from tests.support.settings import config_error, no_dotenv  # noqa: F401 - a fixture

GOOD_SIGNING_KEY = "signkey-test-" + "ab12" * 16
CLOUD_INNGEST: dict[str, object] = {
    "inngest_event_key": test_env.INNGEST_EVENT_KEY,
    "inngest_signing_key": GOOD_SIGNING_KEY,
    "inngest_base_url": test_env.INNGEST_API,
    "inngest_serve_origin": test_env.INNGEST_SERVE_ORIGIN,
}
QSTASH: dict[str, object] = {
    "qstash_token": test_env.QSTASH_TOKEN,
    "qstash_current_signing_key": test_env.QSTASH_CURRENT_KEY,
    "qstash_next_signing_key": test_env.QSTASH_NEXT_KEY,
    "webhook_url": test_env.WEBHOOK_URL,
}
HTTP: dict[str, object] = {
    "internal_api_url": "http://web:8000",
    "internal_api_key": test_env.INTERNAL_API_KEY,
}


pytestmark = pytest.mark.usefixtures("no_dotenv")


# Inngest signing key


@pytest.mark.parametrize(
    "key",
    ["signkey-prod-xyz", "not-hex-at-all", "signkey-test-abc", "abc", "signkey-test-ab cd"],
    ids=["prefixed-non-hex", "non-hex", "prefixed-odd-length", "odd-length", "embedded-space"],
)
def test_malformed_inngest_signing_key_names_variable_and_how_to_make_one(key: str) -> None:
    message = config_error(**{**CLOUD_INNGEST, "inngest_signing_key": key})

    assert "INNGEST_SIGNING_KEY" in message
    assert "even-length hex" in message
    assert "openssl rand -hex 32" in message


def test_malformed_inngest_signing_key_from_the_environment_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INNGEST_DEV", "1")
    monkeypatch.setenv("INNGEST_SIGNING_KEY", "signkey-prod-xyz")

    assert "INNGEST_SIGNING_KEY" in config_error()


def test_malformed_fallback_signing_key_names_the_fallback_variable() -> None:
    message = config_error(**CLOUD_INNGEST, inngest_signing_key_fallback="signkey-prod-xyz")

    assert "INNGEST_SIGNING_KEY_FALLBACK" in message


def test_rejected_signing_key_is_not_echoed_in_the_error() -> None:
    secret = "signkey-prod-do-not-print-me"

    assert secret not in config_error(**{**CLOUD_INNGEST, "inngest_signing_key": secret})


@pytest.mark.parametrize(
    "key",
    [GOOD_SIGNING_KEY, "signkey-prod-" + "0F" * 32, "ab12" * 16],
    ids=["signkey-test-prefix", "signkey-prod-uppercase-hex", "bare-hex"],
)
def test_hex_signing_key_with_or_without_env_prefix_is_accepted_unchanged(key: str) -> None:
    settings = load_settings(**{**CLOUD_INNGEST, "inngest_signing_key": key})

    assert settings.inngest_signing_key is not None
    assert settings.inngest_signing_key.get_secret_value() == key


def test_empty_signing_key_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INNGEST_SIGNING_KEY", "")

    settings = load_settings()

    assert settings.inngest_signing_key is None
    assert not settings.inngest_serves


# Blank values


@pytest.mark.parametrize(
    "variable", ["INNGEST_DEV", "INNGEST_SERVE_ORIGIN", "REDIS_URL", "DATABASE_URL", "WEBHOOK_URL"]
)
def test_blank_optional_value_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "")

    assert getattr(load_settings(), variable.lower()) is None


def test_every_variable_set_blank_means_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.settings_models import settings_models

    models: list[type[BaseSettings]] = [Settings, *settings_models]
    variables = [name.upper() for model in models for name in model.model_fields]
    for variable in variables:
        monkeypatch.delenv(variable, raising=False)
    defaults = [model().model_dump() for model in models]
    for variable in variables:
        monkeypatch.setenv(variable, " ")

    assert [model().model_dump() for model in models] == defaults


SECRETS = [
    "INNGEST_EVENT_KEY",
    "QSTASH_TOKEN",
    "QSTASH_CURRENT_SIGNING_KEY",
    "QSTASH_NEXT_SIGNING_KEY",
    "INTERNAL_API_KEY",
    "CRON_SECRET",
    "METRICS_TOKEN",
]


@pytest.mark.parametrize("variable", SECRETS)
@pytest.mark.parametrize("blank", ["\n", " ", "\t \r\n"])
def test_a_secret_of_whitespace_alone_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str, blank: str
) -> None:
    monkeypatch.setenv(variable, blank)

    assert getattr(load_settings(), variable.lower()) is None


@pytest.mark.parametrize("variable", SECRETS)
def test_a_secret_of_bytes_that_are_not_utf8_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "sig_key\udcff")  # the byte 0xff in the environment

    message = config_error()

    assert variable in message and "not UTF-8" in message and "sig_key" not in message


@pytest.mark.parametrize("variable", SECRETS)
def test_a_secret_loses_the_whitespace_around_it(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name, value in {**test_env.QSTASH_ENV, **test_env.INNGEST_ENV}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(variable, " sig_pasted-with-its-newline\n")

    secret = getattr(load_settings(), variable.lower())

    assert secret.get_secret_value() == "sig_pasted-with-its-newline"


@pytest.mark.parametrize(
    ("variable", "default"), [("INNGEST_APP_ID", "inbox-zero"), ("DATA_DIR", Path(".jobbridge"))]
)
def test_a_blank_value_with_a_default_takes_the_default(
    monkeypatch: pytest.MonkeyPatch, variable: str, default: object
) -> None:
    monkeypatch.setenv(variable, " ")

    assert getattr(load_settings(), variable.lower()) == default


# Inngest cloud mode versus dev server


def test_signing_key_without_event_key_serves_but_does_not_publish() -> None:
    # What a rollback leaves: runs already in Inngest still reach /api/inngest.
    settings = load_settings(
        inngest_signing_key=GOOD_SIGNING_KEY,
        inngest_base_url=test_env.INNGEST_API,
        inngest_serve_origin=test_env.INNGEST_SERVE_ORIGIN,
    )

    assert (settings.inngest_serves, settings.inngest_publishes) == (True, False)


def test_serving_in_cloud_mode_needs_the_public_serve_origin() -> None:
    # Otherwise the SDK registers whatever origin a request's Host header names.
    message = config_error(**{**CLOUD_INNGEST, "inngest_serve_origin": None})

    assert "INNGEST_SERVE_ORIGIN is required" in message
    assert "Host header" in message


def test_a_dev_server_needs_no_serve_origin() -> None:
    assert load_settings(inngest_dev="1").inngest_serve_origin is None


@pytest.mark.parametrize("origin", ["web:8000", "ftp://web"])
def test_serve_origin_must_be_an_absolute_http_url(origin: str) -> None:
    message = config_error(**{**CLOUD_INNGEST, "inngest_serve_origin": origin})

    assert "INNGEST_SERVE_ORIGIN: must be an absolute http:// or https:// URL" in message


def test_cloud_mode_inngest_without_signing_key_asks_for_the_servers_key() -> None:
    message = config_error(inngest_event_key=test_env.INNGEST_EVENT_KEY)

    assert "INNGEST_SIGNING_KEY is required" in message
    assert "--signing-key" in message


def test_inngest_base_url_alone_asks_for_the_keys_or_dev_mode() -> None:
    message = config_error(inngest_base_url=test_env.INNGEST_API)

    assert "INNGEST_BASE_URL" in message
    assert "INNGEST_EVENT_KEY (to publish)" in message
    assert "INNGEST_SIGNING_KEY (to serve" in message
    assert "INNGEST_DEV=1" in message


def test_inngest_dev_server_needs_neither_event_key_nor_signing_key() -> None:
    settings = load_settings(inngest_dev="1", inngest_base_url="http://127.0.0.1:8288")

    assert settings.inngest_is_dev
    assert settings.inngest_publishes and settings.inngest_serves
    assert settings.inngest_event_key is None
    assert settings.inngest_signing_key is None


@pytest.mark.parametrize("value", ["0", "false", "", "FALSE", "no", "off"])
def test_falsy_inngest_dev_is_not_dev_mode(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("INNGEST_DEV", value)

    settings = load_settings()

    assert not settings.inngest_is_dev
    assert not (settings.inngest_publishes or settings.inngest_serves)


@pytest.mark.parametrize("value", ["1", "true", "http://localhost:8288", "HTTP://h:8288"])
def test_truthy_inngest_dev_or_dev_server_url_is_dev_mode(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("INNGEST_DEV", value)

    settings = load_settings()

    assert settings.inngest_is_dev
    assert settings.inngest_publishes and settings.inngest_serves


@pytest.mark.parametrize("value", ["maybe", "yes please", "localhost:8288", "2", "http://"])
def test_an_inngest_dev_that_is_neither_a_switch_nor_a_url_is_refused_naming_it(
    value: str,
) -> None:
    # Dev mode verifies no signature: a typo must not turn it on.
    message = config_error(inngest_dev=value)

    assert "INNGEST_DEV" in message and "http://" in message


def test_inngest_dev_set_to_zero_still_requires_cloud_keys() -> None:
    message = config_error(inngest_dev="0", inngest_event_key=test_env.INNGEST_EVENT_KEY)

    assert "INNGEST_SIGNING_KEY is required" in message


# QStash


@pytest.mark.parametrize(
    "missing",
    [
        ("qstash_current_signing_key", "qstash_next_signing_key"),
        ("qstash_current_signing_key",),
        ("qstash_next_signing_key",),
    ],
    ids=["both-keys", "current-key", "next-key"],
)
def test_qstash_token_without_both_signing_keys_asks_to_copy_them(
    missing: tuple[str, ...],
) -> None:
    overrides = {name: value for name, value in QSTASH.items() if name not in missing}

    message = config_error(**overrides)

    assert "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY" in message
    assert "QStash console" in message


def test_qstash_token_without_webhook_url_asks_for_the_public_base_url() -> None:
    overrides = {name: value for name, value in QSTASH.items() if name != "webhook_url"}

    message = config_error(**overrides)

    assert "WEBHOOK_URL is not" in message
    assert "WEBHOOK_URL=https://" in message


def test_qstash_token_alone_reports_every_missing_variable_at_once() -> None:
    message = config_error(qstash_token=test_env.QSTASH_TOKEN)

    assert "QSTASH_CURRENT_SIGNING_KEY" in message
    assert "WEBHOOK_URL" in message


def test_draining_qstash_keeps_its_keys_and_webhook_url_without_the_token() -> None:
    settings = load_settings(**{**QSTASH, "qstash_token": None})

    assert settings.qstash_token is None and settings.webhook_url == test_env.WEBHOOK_URL


def test_signing_keys_without_webhook_url_are_refused_while_draining() -> None:
    message = config_error(**{**QSTASH, "qstash_token": None, "webhook_url": None})

    assert "WEBHOOK_URL is not" in message and "verified against" in message


def test_one_qstash_signing_key_without_the_other_is_refused_while_draining() -> None:
    message = config_error(**{**QSTASH, "qstash_token": None, "qstash_next_signing_key": None})

    assert "QSTASH_NEXT_SIGNING_KEY" in message


def test_complete_qstash_configuration_is_accepted() -> None:
    settings = load_settings(**QSTASH)

    assert settings.qstash_token is not None
    assert settings.webhook_url == test_env.WEBHOOK_URL


@pytest.mark.parametrize("url", ["jobs.example.com", "ftp://jobs.example.com", "/api"])
def test_non_http_webhook_url_is_rejected_with_the_expected_form(url: str) -> None:
    message = config_error(webhook_url=url)

    assert "WEBHOOK_URL" in message
    assert "absolute http:// or https:// URL" in message


def test_webhook_url_loses_its_trailing_slash() -> None:
    assert load_settings(webhook_url="https://jobs.example.com/").webhook_url == (
        "https://jobs.example.com"
    )


# Explicit JOB_PROVIDER


@pytest.mark.parametrize("unset", ["INTERNAL_API_URL", "INTERNAL_API_KEY"])
def test_job_provider_http_without_internal_api_url_and_key_names_both(
    monkeypatch: pytest.MonkeyPatch, unset: str
) -> None:
    monkeypatch.setenv("INTERNAL_API_URL", "http://web:8000")
    monkeypatch.setenv("INTERNAL_API_KEY", test_env.INTERNAL_API_KEY)
    monkeypatch.delenv(unset)

    message = config_error(job_provider="http")

    assert "JOB_PROVIDER=http needs INTERNAL_API_URL and INTERNAL_API_KEY" in message


def test_job_provider_http_with_internal_api_url_and_key_is_accepted() -> None:
    assert load_settings(job_provider="http", **HTTP).job_provider == "http"


def test_job_provider_qstash_without_token_asks_for_it() -> None:
    message = config_error(job_provider="qstash")

    assert "JOB_PROVIDER=qstash needs QSTASH_TOKEN" in message


def test_job_provider_inngest_without_inngest_asks_for_it() -> None:
    message = config_error(job_provider="inngest")

    assert "JOB_PROVIDER=inngest needs INNGEST_EVENT_KEY" in message


def test_unknown_job_provider_lists_the_accepted_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_PROVIDER", "rabbitmq")

    message = config_error()

    assert "JOB_PROVIDER" in message
    for name in ("auto", "inngest", "qstash", "celery", "http"):
        assert f"'{name}'" in message


def test_config_error_hides_pydantic_validation_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(job_provider="rabbitmq")

    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# Derived values


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:pw@db.example.com:5432/inbox",
        "postgresql://app:pw@db.example.com:5432/inbox",
    ],
    ids=["postgres", "postgresql"],
)
def test_driverless_postgres_url_uses_psycopg(url: str) -> None:
    settings = load_settings(database_url=url)

    assert settings.sqlalchemy_url == "postgresql+psycopg://app:pw@db.example.com:5432/inbox"


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://app@db/inbox", "sqlite:////var/lib/jobbridge.db"]
)
def test_database_url_naming_a_driver_is_kept_as_is(url: str) -> None:
    assert load_settings(database_url=url).sqlalchemy_url == url


def test_without_database_url_sqlite_file_lives_in_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL")

    settings = load_settings(data_dir=tmp_path)

    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'jobbridge.db'}"


@pytest.mark.parametrize(("horizon", "hard_limit"), [(3600, 600), (120, 600), (86_400, 3600)])
def test_redis_visibility_timeout_exceeds_eta_horizon_plus_hard_time_limit(
    horizon: int, hard_limit: int
) -> None:
    settings = load_settings(
        celery_eta_horizon_seconds=horizon, celery_hard_time_limit_seconds=hard_limit
    )

    assert settings.visibility_timeout_seconds > horizon + hard_limit


def test_every_field_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

    settings = load_settings()

    assert settings.job_provider == "auto"
    assert settings.broker_url == "filesystem://localhost//"


# The Celery broker (BROKER_URL)

RABBITMQ_URL = "amqp://jobs:rabbit-secret@rabbitmq.example.com:5672/jobbridge"


def test_broker_url_naming_rabbitmq_is_the_broker_in_use() -> None:
    settings = load_settings(broker_url=RABBITMQ_URL)

    assert (settings.broker_url, settings.broker_kind) == (RABBITMQ_URL, "rabbitmq")


def test_broker_url_takes_precedence_over_redis_url_which_stays_for_the_ledger() -> None:
    settings = load_settings(broker_url=RABBITMQ_URL, redis_url="redis://redis:6379/0")

    assert (settings.broker_kind, settings.redis_url) == ("rabbitmq", "redis://redis:6379/0")


def test_without_broker_url_redis_url_is_the_broker() -> None:
    settings = load_settings(broker_url="", redis_url="redis://redis:6379/0")

    assert (settings.broker_url, settings.broker_kind) == ("redis://redis:6379/0", "redis")


@pytest.mark.parametrize("scheme", ["AMQP", "amqps", "pyamqp", "redis", "rediss"])
def test_broker_url_accepts_rabbitmq_and_redis_schemes(scheme: str) -> None:
    path = "/1" if scheme.startswith("redis") else "/x"  # a database number, or a vhost
    settings = load_settings(broker_url=f"{scheme}://broker.example.com:1234{path}")

    assert settings.broker_url == f"{scheme.lower()}://broker.example.com:1234{path}"


@pytest.mark.parametrize(
    "url",
    ["http://broker.example.com", "filesystem://localhost//", "sqs://", "broker.example.com:5672"],
    ids=["http", "filesystem", "sqs", "no-scheme"],
)
def test_broker_url_of_another_kind_is_refused_naming_the_variable_and_the_forms(url: str) -> None:
    message = config_error(broker_url=url)

    assert "BROKER_URL" in message
    assert "amqp://" in message and "redis://" in message


def test_refused_broker_url_is_not_echoed_in_the_error() -> None:
    message = config_error(broker_url="http://jobs:rabbit-secret@rabbitmq.example.com")

    assert "rabbit-secret" not in message


def test_broker_url_with_a_port_that_is_not_a_number_is_refused() -> None:
    message = config_error(broker_url="amqp://rabbitmq.example.com:fivesixseventwo/")

    assert "BROKER_URL" in message and "port" in message


def test_on_rabbitmq_the_eta_horizon_is_capped_under_the_consumer_timeout() -> None:
    # 1800 s consumer_timeout - 600 s hard time limit - 300 s margin.
    settings = load_settings(broker_url=RABBITMQ_URL, celery_eta_horizon_seconds=3600)

    assert settings.celery_eta_horizon_seconds == 900


def test_on_rabbitmq_a_raised_consumer_timeout_keeps_the_configured_horizon() -> None:
    settings = load_settings(
        broker_url=RABBITMQ_URL,
        rabbitmq_consumer_timeout_seconds=86_400,
        celery_eta_horizon_seconds=3600,
    )

    assert settings.celery_eta_horizon_seconds == 3600


def test_on_redis_the_eta_horizon_is_not_capped_by_the_rabbitmq_timeout() -> None:
    settings = load_settings(redis_url="redis://redis:6379/0", celery_eta_horizon_seconds=3600)

    assert settings.celery_eta_horizon_seconds == 3600


def test_on_rabbitmq_a_hard_time_limit_leaving_no_room_for_etas_is_refused() -> None:
    message = config_error(broker_url=RABBITMQ_URL, celery_hard_time_limit_seconds=1500)

    assert "CELERY_HARD_TIME_LIMIT_SECONDS=1500" in message
    assert "RABBITMQ_CONSUMER_TIMEOUT_SECONDS=1800" in message
    assert "consumer_timeout in rabbitmq.conf" in message


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        (RABBITMQ_URL, "amqp://jobs:***@rabbitmq.example.com:5672/jobbridge"),
        ("redis://:rabbit-secret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("amqp://jobs:rabbit@secret@host/vhost", "amqp://jobs:***@host/vhost"),
        ("amqp://jobs:rabbit/secret@host/vhost", "amqp://jobs:***@host/vhost"),
        ("amqp://jobs@host:5672/vhost", "amqp://jobs@host:5672/vhost"),
        ("redis://r:6379/0?password=secret", "redis://r:6379/0?password=***"),
        (
            "postgresql://u:p@db/app?sslmode=require&sslpassword=s#x",
            "postgresql://u:***@db/app?sslmode=require&sslpassword=***#x",
        ),
    ],
    ids=[
        "amqp",
        "redis-password-only",
        "unencoded-at",
        "unencoded-slash",
        "no-password",
        "password-option",
        "options-and-fragment",
    ],
)
def test_a_printed_broker_url_never_shows_the_password(url: str, printed: str) -> None:
    assert redacted_url(url) == printed


# The worker's metrics address


def test_a_metrics_addr_that_is_no_ip_address_names_the_variable() -> None:
    assert "METRICS_ADDR" in config_error(metrics_addr="everywhere")


def test_an_empty_metrics_addr_means_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_ADDR", "")
    assert str(load_settings().metrics_addr) == "127.0.0.1"


# A .env this user cannot read


def test_a_dotenv_that_cannot_be_read_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("REDIS_URL=\n")
    monkeypatch.chdir(tmp_path)

    def unreadable(path: object, **_: object) -> dict[str, str]:
        raise PermissionError(13, "Permission denied", str(path))  # as open() would, not root

    monkeypatch.setattr("pydantic_settings.sources.providers.dotenv.dotenv_values", unreadable)

    with pytest.raises(ConfigError) as refused:
        load_settings()

    assert f"cannot read {dotenv} (Permission denied)" in str(refused.value)


# Numbers past every sensible use


@pytest.mark.parametrize(
    "variable",
    [
        "CELERY_ETA_HORIZON_SECONDS",
        "CELERY_HARD_TIME_LIMIT_SECONDS",
        "SWEEP_GRACE_SECONDS",
        "RABBITMQ_CONSUMER_TIMEOUT_SECONDS",
        "QSTASH_MAX_DELAY_SECONDS",
        "INNGEST_MAX_BODY_BYTES",
    ],
)
def test_a_number_too_large_to_use_is_refused_naming_its_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "99999999999999999999999")

    message = config_error()

    assert variable in message
    assert "less than or equal to" in message


def test_dev_mode_beside_a_signing_key_is_refused_naming_both() -> None:
    message = config_error(inngest_dev="1", inngest_signing_key=GOOD_SIGNING_KEY)

    assert "INNGEST_DEV and INNGEST_SIGNING_KEY are both set" in message
    assert "verifies no signature" in message


def test_dev_mode_switched_off_beside_a_signing_key_is_cloud_mode() -> None:
    settings = load_settings(**{**CLOUD_INNGEST, "inngest_dev": "0"})

    assert not settings.inngest_is_dev
