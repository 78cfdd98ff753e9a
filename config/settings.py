"""The one `Settings` model: each field is an environment variable of the same name."""

from __future__ import annotations

import re
from functools import lru_cache
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import (
    Field,
    IPvAnyAddress,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.broker import (
    EMBEDDED_BROKER_URL,
    BrokerKind,
    broker_kind,
    broker_options_problem,
    checked_broker_url,
    rabbitmq_horizon,
)
from config.env_file import unreadable_lines
from config.environment import EnvironmentSettings
from config.inngest_keys import inngest_problems
from config.provider import Provider
from config.qstash_keys import WHERE_FROM, missing_qstash_variables, qstash_problems
from config.sqlite_library import sqlite_problem
from config.switches import FALSY, check_signing_key, checked_inngest_dev
from config.urls import checked_database_url, checked_redis_url, is_sqlite, with_driver

ApiDocs = Literal["public", "private", "off"]

_AnySettings = TypeVar("_AnySettings", bound=BaseSettings)


# Where every settings model reads its variables, the shim's and an app's own alike: the
# environment first, then .env in the working folder; names in any case; others ignored.
ENVIRONMENT_SOURCES = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
)


class ConfigError(Exception):
    """A bad environment: the message names each variable and how to fix it."""


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class AppLocation(EnvironmentSettings):
    """Where the app on the shim is: read alone, before the rest, because the command
    line is built from the app's commands even when the rest of the environment is bad."""

    model_config = ENVIRONMENT_SOURCES

    # The module that holds the app's `registry` (like Celery's -A): its jobs, its crons,
    # and optionally its commands, routes and audit.
    jobbridge_app: str = "tasks"

    @field_validator("jobbridge_app")
    @classmethod
    def _is_module_name(cls, value: str) -> str:
        value = value.strip()
        if not _MODULE_NAME.match(value):
            raise ValueError(
                f"must be a Python module name such as tasks or myapp.jobs, got {value!r}"
            )
        return value


# Numbers of seconds have upper bounds as well as lower ones: a value past every sensible
# use would fail only later, inside a date or a C library, without naming its variable.
DAY = 24 * 3600


class Settings(AppLocation):
    """jobbridge configuration. Unset optional values switch their feature off."""

    # Inngest (production provider)
    inngest_event_key: SecretStr | None = None
    inngest_signing_key: SecretStr | None = None
    inngest_signing_key_fallback: SecretStr | None = None
    inngest_base_url: str | None = None
    inngest_dev: str | None = None
    inngest_serve_origin: str | None = None
    inngest_app_id: str = "inbox-zero"
    # Inngest's calls carry the event twice (event, events) and the steps' memos: a few
    # MiB is room for any of this app's runs; anything larger is refused unread.
    inngest_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, le=256 * 1024 * 1024)

    # Upstash QStash (legacy provider, draining)
    qstash_token: SecretStr | None = None
    qstash_url: str | None = None
    qstash_current_signing_key: SecretStr | None = None
    qstash_next_signing_key: SecretStr | None = None
    qstash_max_delay_seconds: int = Field(default=7 * DAY, gt=0, le=10 * 366 * DAY)
    webhook_url: str | None = None

    # Direct HTTP fallback and the routes' own secrets
    internal_api_url: str | None = None
    internal_api_key: SecretStr | None = None
    cron_secret: SecretStr | None = None
    # Who sees /docs, /redoc and /openapi.json: everyone, INTERNAL_API_KEY holders, nobody.
    api_docs: ApiDocs = "public"
    # Log lines as text, or one JSON object a line (bridge/logs.py).
    log_format: Literal["text", "json"] = "text"
    # Bearer token Prometheus sends to GET /metrics; unset, /metrics is not served (404).
    metrics_token: SecretStr | None = None
    # A Celery worker on another host than the web serves its own /metrics on this port,
    # without a token, on METRICS_ADDR (0.0.0.0 in a container scraped from another).
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)
    metrics_addr: IPvAnyAddress = IPv4Address("127.0.0.1")

    # Celery, storage
    # The Celery broker: amqp:// (RabbitMQ) or redis://; unset, the Redis of REDIS_URL,
    # else the embedded filesystem broker. Read back, it is always the broker in use.
    broker_url: str = ""
    # RabbitMQ's consumer_timeout (rabbitmq.conf has it in ms; 30 minutes by default),
    # which the ETA horizon must stay under on RabbitMQ (see _settle_broker).
    rabbitmq_consumer_timeout_seconds: int = Field(default=1800, gt=0, le=30 * DAY)
    redis_url: str | None = None
    redis_key_prefix: str = ""
    database_url: str | None = Field(default=None, validate_default=True)
    # true: `db upgrade` may add jobbridge's tables to a schema that holds other tables.
    database_allow_other_tables: bool = False
    data_dir: Path = Path(".jobbridge")
    celery_eta_horizon_seconds: int = Field(default=3600, gt=0, le=7 * DAY)
    celery_hard_time_limit_seconds: int = Field(default=600, gt=0, le=DAY)

    # Provider choice
    job_provider: str = "auto"  # "auto" or a Provider name
    job_failover: bool = False
    sweep_grace_seconds: int = Field(default=600, gt=0, le=7 * DAY)

    @field_validator("job_provider")
    @classmethod
    def _is_provider_name(cls, value: str) -> str:
        names = ["auto", *(provider.value for provider in Provider)]
        if value not in names:
            quoted = [repr(name) for name in names]
            raise ValueError(f"should be {', '.join(quoted[:-1])} or {quoted[-1]}, not {value!r}")
        return value

    @field_validator(
        "inngest_base_url",
        "inngest_serve_origin",
        "qstash_url",
        "webhook_url",
        "internal_api_url",
    )
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("inngest_dev")
    @classmethod
    def _is_a_switch_or_a_dev_server(cls, value: str | None) -> str | None:
        return None if value is None else checked_inngest_dev(value)

    @field_validator("broker_url")
    @classmethod
    def _is_broker_url(cls, value: str) -> str:
        return checked_broker_url(value)

    @field_validator("redis_url")
    @classmethod
    def _is_redis_url(cls, value: str | None) -> str | None:
        return None if value is None else checked_redis_url(value)

    @field_validator("database_url")
    @classmethod
    def _is_usable_database(cls, value: str | None) -> str | None:
        url = None if value is None else checked_database_url(value)
        if (url is None or is_sqlite(url)) and (problem := sqlite_problem()):
            given = "names a SQLite database" if url else "unset, so SQLite under DATA_DIR"
            raise ValueError(
                f"{given}; jobbridge {problem}: set DATABASE_URL to PostgreSQL "
                "(postgresql://user:password@host:5432/db), or run jobbridge on a Python "
                "built with a newer SQLite"
            )
        return url

    @field_validator("inngest_signing_key", "inngest_signing_key_fallback")
    @classmethod
    def _signing_key_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        check_signing_key(value)  # named by the error's field
        return value

    @field_validator(
        "inngest_event_key",
        "qstash_token",
        "qstash_current_signing_key",
        "qstash_next_signing_key",
        "internal_api_key",
        "cron_secret",
        "metrics_token",
    )
    @classmethod
    def _secret_without_whitespace(cls, value: SecretStr | None) -> SecretStr | None:
        """A secret without the whitespace around it (a key pasted with its newline); one
        of whitespace alone is already unset (EnvironmentSettings): a blank key would sign
        or admit anything. Bytes that are not UTF-8 (Python keeps them as lone
        surrogates) could sign or compare nothing."""
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        try:
            secret.encode()
        except UnicodeEncodeError:
            raise ValueError("holds bytes that are not UTF-8 text") from None
        return SecretStr(secret)

    @model_validator(mode="after")
    def _settle_broker(self) -> Settings:
        """BROKER_URL becomes the broker in use; on RabbitMQ the ETA horizon is capped to
        fit its consumer timeout (config/broker.py). Runs before the checks below."""
        named = "BROKER_URL" if self.broker_url else "REDIS_URL"
        if not self.broker_url:
            self.broker_url = self.redis_url or EMBEDDED_BROKER_URL
        if problem := broker_options_problem(self.broker_url):
            raise ValueError(f"{named}: {problem}")
        if self.broker_kind == "rabbitmq":
            self.celery_eta_horizon_seconds = rabbitmq_horizon(
                self.celery_eta_horizon_seconds,
                self.rabbitmq_consumer_timeout_seconds,
                self.celery_hard_time_limit_seconds,
            )
        return self

    @model_validator(mode="after")
    def _combinations_make_sense(self) -> Settings:
        problems = [*inngest_problems(self), *qstash_problems(self), *self._other_problems()]
        if problems:
            raise ValueError("\n".join(problems))  # one line each (_explain)
        return self

    def _other_problems(self) -> list[str]:
        problems = []
        if self.job_provider == "http" and not self.http_configured:
            problems.append(
                "JOB_PROVIDER=http needs INTERNAL_API_URL and INTERNAL_API_KEY "
                "(the base URL of this app and the key its routes accept)"
            )
        if self.api_docs == "private" and self.internal_api_key is None:
            problems.append(
                "API_DOCS=private needs INTERNAL_API_KEY (the key that opens the docs), "
                "or set API_DOCS=off"
            )
        if self.job_provider == "inngest" and not self.inngest_publishes:
            problems.append("JOB_PROVIDER=inngest needs INNGEST_EVENT_KEY (or INNGEST_DEV=1)")
        if self.job_provider == "qstash" and self.qstash_token is None:
            # Most often a rollback after the migration removed QStash's keys: say all
            # that must come back, not only the first.
            missing = ", ".join(missing_qstash_variables(self))
            problems.append(
                f"JOB_PROVIDER=qstash needs QSTASH_TOKEN: to publish to QStash again, put "
                f"back {missing} ({WHERE_FROM}); `jobbridge config`, run with the "
                "current settings, prints the whole rollback"
            )
        return problems

    # Derived facts: one definition each.
    @property
    def inngest_is_dev(self) -> bool:
        return self.inngest_dev is not None and self.inngest_dev.strip().lower() not in FALSY

    @property
    def inngest_publishes(self) -> bool:
        """Jobs may be sent to Inngest: an event key (or a dev server, which needs none)."""
        return self.inngest_is_dev or self.inngest_event_key is not None

    @property
    def inngest_serves(self) -> bool:
        """/api/inngest is served: a signing key to verify calls (or a dev server).

        Separate from publishing on purpose: after a rollback (INNGEST_EVENT_KEY removed)
        the runs Inngest already has must still reach this app and be verified.
        """
        return self.inngest_is_dev or self.inngest_signing_key is not None

    @property
    def http_configured(self) -> bool:
        return self.internal_api_url is not None and self.internal_api_key is not None

    @property
    def broker_kind(self) -> BrokerKind:
        """Which broker `broker_url` names: RabbitMQ, Redis, or the embedded one."""
        return broker_kind(self.broker_url)

    @property
    def broker_folder(self) -> Path:
        return self.data_dir.resolve() / "broker"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return with_driver(self.database_url)
        return f"sqlite:///{self.data_dir.resolve() / 'jobbridge.db'}"

    @property
    def visibility_timeout_seconds(self) -> int:
        # kombu #337: an ETA beyond the visibility timeout is redelivered again and again.
        return self.celery_eta_horizon_seconds + self.celery_hard_time_limit_seconds + 600


def _explain(error: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "environment"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.extend(f"  {name}: {line}" for line in message.splitlines())
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the environment now; raise ConfigError naming each bad variable."""
    return read_settings(Settings, **overrides)


def read_settings(model: type[_AnySettings], **overrides: object) -> _AnySettings:
    """Read the environment (and .env) into `model` now; raise ConfigError naming each bad
    variable. For Settings and for an app's own settings models alike, so every
    configuration error reads the same way."""
    try:
        if unreadable := unreadable_lines():
            raise ConfigError("invalid configuration:\n" + "\n".join(unreadable))
        return model(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"invalid configuration: {Path('.env').resolve()} is not UTF-8 text; "
            "save it as UTF-8, or remove it and set the variables in the environment"
        ) from None
    except OSError as error:
        if not _is_the_env_file(error):
            raise
        raise ConfigError(
            f"invalid configuration: cannot read {Path('.env').resolve()} ({error.strerror}); "
            "make it readable by this user, or remove it and set the variables in the "
            "environment"
        ) from None


def _is_the_env_file(error: OSError) -> bool:
    return error.filename is not None and Path(str(error.filename)).name == ".env"


def app_module_name() -> str:
    """JOBBRIDGE_APP alone; raise ConfigError when it is not a module name."""
    try:
        return AppLocation().jobbridge_app
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None
    except UnicodeDecodeError:
        return AppLocation(_env_file=None).jobbridge_app  # load_settings reports the file
    except OSError as error:
        if not _is_the_env_file(error):
            raise
        return AppLocation(_env_file=None).jobbridge_app  # as for a file that is not UTF-8


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
