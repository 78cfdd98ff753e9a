"""What every command guarantees when the configuration or a service is bad: one or two
plain lines on stderr naming the variable or the service and the fix, exit status 2
(usage or configuration) or 1 (runtime), and a traceback only with `--debug`.

Each command runs as a real process, as an operator would run it, from a directory with
a long name, in a 40-column CI environment without a terminal: nothing here may depend
on how Rich would wrap a line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.commands import assert_plain, jobbridge, run
from tests.support.services import create_database, drop_database, free_port

BAD_QSTASH = {"QSTASH_TOKEN": "qstash-token-without-its-signing-keys"}
BAD_INNGEST = {"JOB_PROVIDER": "inngest"}


def closed_url(scheme: str, path: str) -> tuple[str, str]:
    """A URL where nothing listens, and its host:port as an error names it."""
    where = f"127.0.0.1:{free_port()}"  # bound then released
    return f"{scheme}://{where}{path}", where


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with a name long enough that any wrapped line would be split."""
    path = tmp_path / ("a-directory-with-a-long-name-" * 4).rstrip("-")
    path.mkdir()
    (path / "accounts.yaml").write_text("accounts:\n  - {email: a@example.test, maildir: m}\n")
    return path


COMMANDS = {
    "enqueue": ["enqueue", "scheduled-action.execute", "--data", '{"scheduledActionId": "a1"}'],
    "digest": ["digest", "--account", "demo@localhost"],
    "actions schedule": [
        "actions",
        *("schedule", "--account", "demo@localhost", "--type", "ARCHIVE", "--message", "m1"),
    ],
    "actions show": ["actions", "show", "a1"],
    "bulk start": ["bulk", "start", "--account", "demo@localhost"],
    "bulk show": ["bulk", "show", "j1"],
    "categorize": ["categorize", "--account", "demo@localhost"],
    "clean": ["clean", "--account", "demo@localhost"],
    "sweep": ["sweep"],
    "accounts import": ["accounts", "import", "accounts.yaml"],
    "db upgrade": ["db", "upgrade"],
    "demo": ["demo"],
    "dev": ["dev"],
    "audit": ["audit"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_bad_configuration_ends_every_command_with_exit_2_naming_the_variables(
    command: list[str], workdir: Path
) -> None:
    done = jobbridge(*command, workdir=workdir, **BAD_QSTASH)

    # `invalid configuration:`, then one line each: the signing keys, WEBHOOK_URL.
    lines = assert_plain(done, 2, most_lines=3)
    assert "QSTASH_CURRENT_SIGNING_KEY" in lines[-2] and "WEBHOOK_URL" in lines[-1]


def test_job_provider_inngest_without_its_key_is_named(workdir: Path) -> None:
    done = jobbridge(*COMMANDS["enqueue"], workdir=workdir, **BAD_INNGEST)

    lines = assert_plain(done, 2)
    assert "JOB_PROVIDER=inngest needs INNGEST_EVENT_KEY" in lines[-1]


def test_debug_adds_the_traceback_to_a_configuration_error(workdir: Path) -> None:
    done = jobbridge("--debug", "sweep", workdir=workdir, **BAD_QSTASH)

    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().endswith("https://app.example.com")  # the plain lines last


DATABASE_COMMANDS = ["sweep", "actions show", "bulk show", "accounts import", "db upgrade", "demo"]


@pytest.mark.parametrize("name", DATABASE_COMMANDS)
def test_an_unreachable_database_ends_with_exit_1_naming_it_and_the_fix(
    name: str, workdir: Path
) -> None:
    url, where = closed_url("postgresql", "/jobbridge")

    done = jobbridge(*COMMANDS[name], workdir=workdir, DATABASE_URL=url)

    first, fix = assert_plain(done, 1)
    assert f"cannot use the database at postgresql+psycopg://{where}/jobbridge" in first
    assert "DATABASE_URL" in fix


def test_a_database_without_the_schema_is_told_to_run_db_upgrade(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'empty.db'}"

    done = jobbridge("actions", "show", "a1", workdir=workdir, DATABASE_URL=url)

    assert assert_plain(done, 1)[-1] == "fix: run `jobbridge db upgrade`"


@pytest.mark.parametrize("name", ["actions show", "bulk show", "sweep", "accounts import", "audit"])
def test_a_mistyped_data_dir_is_named_and_nothing_is_made_there(name: str, workdir: Path) -> None:
    typo = workdir / "no-such-data-dir"
    command = COMMANDS.get(name, [name])

    done = jobbridge(*command, workdir=workdir, DATA_DIR=str(typo), DATABASE_URL="")

    assert done.returncode == 1
    assert str(typo) in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not typo.exists()


def test_status_reports_a_mistyped_data_dir_without_making_it(workdir: Path) -> None:
    typo = workdir / "no-such-data-dir"

    done = jobbridge("status", workdir=workdir, DATA_DIR=str(typo), DATABASE_URL="")

    assert done.returncode == 1
    assert "DOWN (required): database" in done.stdout
    assert not typo.exists()


def test_a_sqlite_url_in_a_folder_that_does_not_exist_names_the_folder(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'no-such-folder' / 'x.db'}"

    done = jobbridge("db", "upgrade", workdir=workdir, DATABASE_URL=url)

    first, fix = assert_plain(done, 1)
    assert first.startswith(f"there is no folder {workdir / 'no-such-folder'} for the database")
    assert fix == "fix: correct it, or create that folder"


def test_a_sqlite_url_naming_no_file_is_told_to_run_db_upgrade(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'mistyped.db'}"

    done = jobbridge("actions", "show", "a1", workdir=workdir, DATABASE_URL=url)

    first, fix = assert_plain(done, 1)
    assert first.startswith(f"there is no database at {workdir / 'mistyped.db'}")
    assert fix == "fix: run `jobbridge db upgrade`"
    assert not (workdir / "mistyped.db").exists()


def test_an_unreachable_redis_ends_enqueue_with_exit_1_said_once(workdir: Path) -> None:
    url, where = closed_url("redis", "/0")

    done = jobbridge(*COMMANDS["enqueue"], workdir=workdir, REDIS_URL=url)

    first, fix = assert_plain(done, 1)
    assert first.startswith("could not publish: celery: broker refused or unreachable")
    assert where in first
    assert fix.startswith("fix: start Redis, or correct REDIS_URL")


def test_an_unreachable_inngest_dev_server_is_named_by_its_address_and_inngest_dev(
    workdir: Path,
) -> None:
    url, where = closed_url("http", "")

    done = jobbridge(*COMMANDS["enqueue"], workdir=workdir, INNGEST_DEV=url)

    first, fix = assert_plain(done, 1)
    assert first.startswith("could not publish: inngest:")
    assert fix.startswith(f"fix: check that the Inngest dev server at {url} is up (INNGEST_DEV)")
    assert "INNGEST_BASE_URL" not in fix and where in fix


def test_a_data_dir_that_is_a_file_is_said_to_be_no_folder(workdir: Path) -> None:
    not_a_folder = workdir / "data"
    not_a_folder.write_text("")

    done = jobbridge("db", "upgrade", workdir=workdir, DATA_DIR=str(not_a_folder), DATABASE_URL="")

    first, fix = assert_plain(done, 1)
    assert first == f"cannot use {not_a_folder}: it exists and is not a folder"
    assert fix.endswith("(DATA_DIR)")


def test_debug_adds_the_traceback_to_a_service_error(workdir: Path) -> None:
    url, _ = closed_url("postgresql", "/jobbridge")

    done = jobbridge("--debug", "sweep", workdir=workdir, DATABASE_URL=url)

    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("fix: ")


def test_a_long_error_stays_on_one_line_at_40_columns(workdir: Path) -> None:
    bad = workdir / "broken.yaml"
    bad.write_text("accounts: [a, b\n")

    done = jobbridge("accounts", "import", str(bad), workdir=workdir)

    (line,) = assert_plain(done, 1)
    assert line.startswith(f"{bad}: not valid YAML: line 2, column 1: ")
    assert line.endswith("expected ',' or ']', but got '<stream end>'")


def test_a_usage_error_is_plain_lines_without_a_terminal(workdir: Path) -> None:
    done = jobbridge("enqueue", "scheduled-action.execute", "--data", "{", workdir=workdir)

    assert done.returncode == 2
    assert "Error: Invalid value for --data: not JSON: " in done.stderr.splitlines()[-1]
    assert "╭" not in done.stderr  # not typer's Rich panel, which wraps at COLUMNS


PROCESSES = {
    "web": [sys.executable, "-m", "uvicorn", "bridge.web:app", "--port", "0"],
    "worker": [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo"],
    "beat": [sys.executable, "-m", "celery", "-A", "tasks", "beat"],
}


@pytest.mark.parametrize("command", PROCESSES.values(), ids=PROCESSES.keys())
def test_a_process_started_with_a_bad_configuration_ends_with_the_same_plain_message(
    command: list[str], workdir: Path
) -> None:
    from_cli = jobbridge("sweep", workdir=workdir, **BAD_QSTASH)

    done = run(command, workdir, **BAD_QSTASH)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == from_cli.stderr


@pytest.mark.parametrize("command", PROCESSES.values(), ids=PROCESSES.keys())
def test_a_process_whose_data_dir_cannot_hold_the_broker_names_data_dir(
    command: list[str], workdir: Path
) -> None:
    not_a_folder = workdir / "a-file"
    not_a_folder.write_text("")
    embedded = {"REDIS_URL": "", "BROKER_URL": "", "DATA_DIR": str(not_a_folder / "data")}

    (first, detail) = assert_plain(run(command, workdir, **embedded), 2)

    assert first == "invalid configuration:"
    assert detail.strip().startswith("DATA_DIR: cannot use ") and "embedded broker" in detail


def test_a_web_server_whose_metrics_folder_cannot_be_made_names_it(workdir: Path) -> None:
    not_a_folder = workdir / "a-file"
    not_a_folder.write_text("")
    metrics = {"METRICS_TOKEN": "t", "PROMETHEUS_MULTIPROC_DIR": str(not_a_folder / "m")}

    (_, detail) = assert_plain(run(PROCESSES["web"], workdir, **metrics), 2)

    assert detail.strip().startswith("PROMETHEUS_MULTIPROC_DIR: cannot use ")


# Input values out of range: plain lines, the right exit status ------------------------


def test_a_delay_too_far_ahead_is_a_usage_error(workdir: Path) -> None:
    done = jobbridge(
        "actions",
        *("schedule", "--account", "a@example.test", "--type", "ARCHIVE", "--message", "m1"),
        *("--in", "99999999999d"),
        workdir=workdir,
    )

    assert done.returncode == 2
    assert "Invalid value for --in: too far ahead" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_delay_and_a_time_together_are_a_usage_error(workdir: Path) -> None:
    done = jobbridge(
        "actions",
        *("schedule", "--account", "a@example.test", "--type", "ARCHIVE", "--message", "m1"),
        *("--in", "2s", "--at", "2030-01-01T00:00:00Z"),
        workdir=workdir,
    )

    assert done.returncode == 2
    assert "give --in or --at, not both" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("enqueue", "scheduled-action.execute", "--data", '{"scheduledActionId": "a1"}'),
        ("actions", "schedule", "--account", "a@example.test", "--type", "ARCHIVE"),
    ],
)
def test_a_time_utc_cannot_hold_is_a_usage_error(workdir: Path, command: tuple[str, ...]) -> None:
    extra = ("--message", "m1") if command[0] == "actions" else ()
    done = jobbridge(*command, *extra, "--at", "0001-01-01T00:00:00+05:00", workdir=workdir)

    assert done.returncode == 2
    assert "Invalid value for --at: not a time UTC can hold" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_migration_since_that_is_no_time_names_since(workdir: Path) -> None:
    done = jobbridge("migrate", "qstash-to-inngest", "--since", "garbage", workdir=workdir)

    assert done.returncode == 2
    assert "Invalid value for --since" in done.stderr and "--at" not in done.stderr


@pytest.mark.parametrize("seconds", ["-1", "0"])
def test_status_refuses_a_timeout_that_is_no_wait(workdir: Path, seconds: str) -> None:
    done = jobbridge("status", "--timeout", seconds, workdir=workdir)

    assert done.returncode == 2
    assert "--timeout" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("days", ["0", "-5", "99999999"])
def test_bulk_start_refuses_a_window_of_days_out_of_range(workdir: Path, days: str) -> None:
    done = jobbridge(
        "bulk", "start", "--account", "a@example.test", "--days", days, workdir=workdir
    )

    assert done.returncode == 2
    assert "--days" in done.stderr and "Traceback" not in done.stderr


def test_a_dotenv_that_is_not_utf8_is_named(workdir: Path) -> None:
    (workdir / ".env").write_bytes(b"REDIS_URL=\xff\xfe\n")

    lines = assert_plain(jobbridge("config", workdir=workdir), 2)

    assert ".env" in lines[0] and "UTF-8" in lines[0]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("digest: {every_days: 1, next_at: '0001-01-01T00:00:00+14:00'}", "next_at"),
        ("digest: {every_days: 100000000000}", "every_days"),
    ],
)
def test_an_accounts_file_value_out_of_range_names_its_entry(
    workdir: Path, entry: str, field: str
) -> None:
    (workdir / "range.yaml").write_text(
        f"accounts:\n  - email: a@example.test\n    maildir: m\n    {entry}\n"
    )

    lines = assert_plain(jobbridge("accounts", "import", "range.yaml", workdir=workdir), 1)

    assert f"accounts[0].digest.{field}" in "\n".join(lines)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


def test_db_upgrade_refuses_a_table_under_one_of_its_names_that_it_did_not_create(
    workdir: Path, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database.replace("+psycopg", ""), autocommit=True) as c:
        c.execute("CREATE TABLE category (id text PRIMARY KEY)")

    lines = assert_plain(
        jobbridge("db", "upgrade", workdir=workdir, DATABASE_URL=fresh_database), 2
    )

    assert '"category"' in lines[0]


def test_db_upgrade_refuses_another_apps_migration_history(
    workdir: Path, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database.replace("+psycopg", ""), autocommit=True) as c:
        c.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        c.execute("INSERT INTO alembic_version VALUES ('abc123someone')")

    lines = assert_plain(
        jobbridge(
            "db",
            "upgrade",
            workdir=workdir,
            DATABASE_URL=fresh_database,
            DATABASE_ALLOW_OTHER_TABLES="true",
        ),
        2,
    )

    assert "migration history" in lines[0]


def test_keys_into_a_folder_that_does_not_exist_names_the_file_asked_for(workdir: Path) -> None:
    target = workdir / "missing" / "prod.env"

    lines = assert_plain(jobbridge("keys", "--env-file", str(target), workdir=workdir), 1)

    assert f"cannot use {target}: " in lines[0] and ".tmp" not in lines[0]


def test_keys_into_a_file_that_is_not_utf8_is_a_usage_error_naming_it(workdir: Path) -> None:
    target = workdir / "binary.env"
    target.write_bytes(b"\xff\xfe not text")

    done = jobbridge("keys", "--env-file", str(target), workdir=workdir)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"Invalid value for --env-file: {target} is not UTF-8 text" in done.stderr
    assert target.read_bytes() == b"\xff\xfe not text"  # left as it was


def test_rotating_tokens_without_the_key_is_a_configuration_error(workdir: Path) -> None:
    done = jobbridge("accounts", "rotate-tokens", workdir=workdir, TOKEN_ENCRYPTION_KEY="")

    [line] = assert_plain(done, 2)
    assert line.startswith("TOKEN_ENCRYPTION_KEY is not set")


def test_a_sqlite_file_that_cannot_be_opened_names_data_dir_in_the_fix(workdir: Path) -> None:
    data_dir = workdir / "data"
    (data_dir / "jobbridge.db").mkdir(parents=True)  # a folder where the file belongs

    done = jobbridge("db", "upgrade", workdir=workdir, DATA_DIR=str(data_dir), DATABASE_URL="")

    first, fix = assert_plain(done, 1)
    assert "cannot use the database at sqlite:///" in first
    assert fix == f"fix: check that DATA_DIR ({data_dir}) is a folder this user may write in, " + (
        "or set DATABASE_URL"
    )


def test_accounts_add_with_an_unusable_data_dir_names_it_not_the_maildir(workdir: Path) -> None:
    blocked = workdir / "data-is-a-file"
    blocked.write_text("not a folder\n")
    maildir = str(workdir / "m")

    done = jobbridge(
        *("accounts", "add", "a@example.test", "--maildir", maildir),
        workdir=workdir,
        DATA_DIR=str(blocked),
        DATABASE_URL="",
    )

    first, _ = assert_plain(done, 1)
    assert str(blocked) in first and "--maildir" not in done.stderr
