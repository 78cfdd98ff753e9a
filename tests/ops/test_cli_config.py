"""`jobbridge config`: the chain with its reasons, secrets masked, bad env exits 2."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bridge.cli import app
from config import ConfigError, load_settings
from tests.support import env as test_env
from tests.support.command_tree import command_names

Configure = Callable[..., Any]

SECRET_TOKEN = "qstash-secret-token-value-123"


@pytest.fixture(autouse=True)
def wide_console_without_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Rich wraps table cells at COLUMNS (80 when not on a terminal); Settings read `.env`
    from the working directory: a wide console, in a directory without one. (The tables
    are parsed here; errors are plain lines on stderr, never wrapped.)"""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


def run_config() -> Result:
    return CliRunner().invoke(app, ["config"])


def chain_rows(output: str) -> list[tuple[str, str, str, str]]:
    """(#, provider, used, why) of each row of the chain table, top to bottom."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 4:
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def setting_value(output: str, variable: str) -> str:
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 2 and cells[0] == variable:
            return cells[1]
    raise AssertionError(f"{variable} is not in the settings table:\n{output}")


def test_config_exits_zero_with_a_valid_environment(configure: Configure) -> None:
    configure()

    result = run_config()

    assert result.exit_code == 0, result.output


def test_config_prints_the_chain_in_publish_order_with_reasons(configure: Configure) -> None:
    configure(**test_env.INNGEST_ENV, **test_env.QSTASH_ENV, JOB_FAILOVER="true")

    rows = chain_rows(run_config().output)

    assert rows == [
        (
            "1",
            "inngest",
            "yes",
            "first configured: INNGEST_EVENT_KEY or INNGEST_DEV set (cloud/self-hosted)",
        ),
        ("2", "qstash", "yes", "failover: QSTASH_TOKEN set"),
        ("3", "celery", "yes", "failover: REDIS_URL set"),
        ("", "http", "no", "needs INTERNAL_API_URL and INTERNAL_API_KEY"),
    ]


def test_config_says_why_configured_providers_are_unused_without_failover(
    configure: Configure,
) -> None:
    configure(**test_env.INNGEST_ENV, **test_env.QSTASH_ENV)

    rows = {provider: (used, why) for _, provider, used, why in chain_rows(run_config().output)}

    assert rows["qstash"] == ("no", "configured but JOB_FAILOVER is off: QSTASH_TOKEN set")
    assert rows["celery"] == ("no", "configured but JOB_FAILOVER is off: REDIS_URL set")


def test_config_shows_an_explicit_job_provider_first(configure: Configure) -> None:
    configure(**test_env.INNGEST_ENV, JOB_PROVIDER="celery")

    first = chain_rows(run_config().output)[0]

    assert first == ("1", "celery", "yes", "explicit JOB_PROVIDER: REDIS_URL set")


def test_config_never_prints_the_qstash_token(configure: Configure) -> None:
    configure(**{**test_env.QSTASH_ENV, "QSTASH_TOKEN": SECRET_TOKEN})

    output = run_config().output

    assert SECRET_TOKEN not in output
    assert setting_value(output, "QSTASH_TOKEN") == f"qsta…({len(SECRET_TOKEN)} chars)"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INNGEST_EVENT_KEY", "event-key-secret-value-1"),
        ("INNGEST_SIGNING_KEY", "signkey-prod-" + "c0ffee" * 8),
        ("INNGEST_SIGNING_KEY_FALLBACK", "signkey-prod-" + "beef" * 8),
        ("QSTASH_CURRENT_SIGNING_KEY", "sig_current-secret-value"),
        ("QSTASH_NEXT_SIGNING_KEY", "sig_next-secret-value"),
        ("INTERNAL_API_KEY", "internal-key-secret-value"),
        ("CRON_SECRET", "cron-secret-value-123"),
    ],
)
def test_config_masks_every_secret_variable(
    configure: Configure, variable: str, value: str
) -> None:
    configure(**{**test_env.INNGEST_ENV, **test_env.QSTASH_ENV, variable: value})

    output = run_config().output

    assert value not in output
    assert variable in output


def test_config_masks_short_secrets_entirely(configure: Configure) -> None:
    configure(CRON_SECRET="short")

    assert setting_value(run_config().output, "CRON_SECRET") == "****"


def test_config_masks_a_password_in_a_url(configure: Configure) -> None:
    configure(REDIS_URL="redis://default:hunter2-redis-password@redis.example.com:6379/0")

    output = run_config().output

    assert "hunter2-redis-password" not in output
    assert "hunter2" not in setting_value(output, "(broker)")


def test_config_masks_a_password_given_as_a_url_query_option(configure: Configure) -> None:
    configure(
        DATABASE_URL="postgresql://app@127.0.0.1:5432/app?password=hunter2-db&sslmode=prefer",
        REDIS_URL="redis://redis.example.com:6379/0?password=hunter2-redis",
        BROKER_URL="amqp://jobs:p@rabbitmq.example.com:5672/jobbridge",
    )

    output = run_config().output

    assert "hunter2" not in output
    assert "password=***&sslmode=prefer" in setting_value(output, "DATABASE_URL")


def test_config_shows_an_unset_broker_url_as_unset_beside_the_broker_in_use(
    configure: Configure,
) -> None:
    configure(BROKER_URL=None, REDIS_URL=None)

    output = run_config().output

    assert setting_value(output, "BROKER_URL") == "-"
    assert setting_value(output, "(broker)").startswith("filesystem ")


def test_config_shows_flower_basic_auth_masked(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:hunter2-flower")
    configure()

    output = run_config().output

    assert setting_value(output, "FLOWER_BASIC_AUTH") == "set (20 chars)"
    assert "hunter2" not in output


def test_config_with_a_bad_variable_exits_2_naming_it(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INNGEST_DEV", "1")
    with pytest.raises(ConfigError):  # configure re-reads Settings; the cache stays empty
        configure(INNGEST_SIGNING_KEY="signkey-prod-xyz")

    result = run_config()

    assert result.exit_code == 2
    assert "INNGEST_SIGNING_KEY" in result.stderr
    assert "signkey-prod-xyz" not in result.output


def test_config_with_a_bad_variable_prints_no_chain(configure: Configure) -> None:
    with pytest.raises(ConfigError):
        configure(JOB_PROVIDER="rabbitmq")

    result = run_config()

    assert result.exit_code == 2
    assert "JOB_PROVIDER" in result.stderr
    assert chain_rows(result.output) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"inngest_dev": "1", "inngest_signing_key": "signkey-prod-xyz"},
        {"inngest_event_key": "k"},
        {"qstash_token": "t"},
        {"job_provider": "http"},
        {"job_provider": "qstash"},
        {"webhook_url": "example.com"},
    ],
    ids=["signing-key", "cloud-inngest", "qstash", "http", "explicit-qstash", "webhook-url"],
)
def test_config_errors_only_suggest_commands_that_exist(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)

    suggested = set(re.findall(r"`jobbridge ([a-z-]+)", str(caught.value)))

    assert suggested <= command_names()


def test_a_bad_variable_is_reported_plainly_by_the_installed_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "INNGEST_SIGNING_KEY": "zz"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jobbridge"), "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "INNGEST_SIGNING_KEY" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_config_prints_the_rollback_for_the_phase_the_settings_are_in(
    configure: Configure,
) -> None:
    without_token = {**test_env.QSTASH_ENV, "QSTASH_TOKEN": None}
    configure(**test_env.INNGEST_ENV, **without_token)

    output = run_config().output

    assert "rollback to QStash (now: phase 4, part way: QSTASH_TOKEN removed" in output
    assert "1. put back QSTASH_TOKEN:" in output
    assert "2. set JOB_PROVIDER=qstash" in output


def test_config_on_a_narrow_terminal_folds_a_long_path_instead_of_cutting_it(
    configure: Configure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / ("a-data-directory-with-a-rather-long-name-" * 3).rstrip("-")
    configure(DATA_DIR=str(data_dir), DATABASE_URL=None)
    monkeypatch.setenv("COLUMNS", "80")

    result = run_config()

    assert result.exit_code == 0, result.output
    unfolded = re.sub(r"[\s│]", "", result.output)
    assert f"(database)sqlite:///{data_dir}/jobbridge.db" in unfolded


def test_a_dotenv_line_that_cannot_be_read_is_named_without_its_value(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        'REDIS_KEY_PREFIX=ok:\nDATABASE_URL="postgresql://user:s3cret@db/app\nnot a line\n'
    )

    result = run_config()

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "invalid configuration:"
    assert lines[1].startswith(f"{tmp_path / '.env'} line 2 (DATABASE_URL) cannot be read")
    assert "s3cret" not in result.stderr
