"""`jobbridge dev` checks what it needs before it starts anything: web's and Flower's ports
free, the broker reachable. When one is not, it ends with one plain line naming the port
or the variable and how to fix it, exit status 1 (2 for options or a variable that can
never work), no traceback, nothing started (not even the database migrated)."""

from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.devstack_checks import stack_blockers
from config import load_settings
from tests.ops.test_dev_stack import BIN, embedded_env
from tests.support.commands import assert_plain
from tests.support.services import free_port, taken_port


@pytest.fixture(name="taken_port")
def a_taken_port() -> Iterator[int]:
    with taken_port() as port:
        yield port


def dev(workdir: Path, *options: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`jobbridge dev` on the embedded default in `workdir`. Bounded: a stack that did
    start is stopped by the timeout (its children go with it), and the test fails."""
    return subprocess.run(
        [str(BIN / "jobbridge"), "dev", *options],
        cwd=workdir,
        env={**embedded_env(), **variables},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_nothing_started(done: subprocess.CompletedProcess[str], workdir: Path) -> None:
    assert "Ctrl-C stops everything" not in done.stdout  # no banner: no child started
    assert not (workdir / ".jobbridge" / "jobbridge.db").exists()  # nor the app prepared


def assert_nothing_left(done: subprocess.CompletedProcess[str], workdir: Path) -> None:
    """Nothing started, and no DATA_DIR made where there was none."""
    assert_nothing_started(done, workdir)
    assert not (workdir / ".jobbridge").exists()


def test_a_web_port_in_use_is_named_with_the_option_that_moves_it(
    tmp_path: Path, taken_port: int
) -> None:
    done = dev(tmp_path, "--port", str(taken_port), "--flower-port", str(free_port()))

    [line] = assert_plain(done, 1)
    assert line == (
        f"port {taken_port} (web) is in use: stop what holds it, or run jobbridge dev --port N"
    )
    assert_nothing_left(done, tmp_path)


def test_a_flower_port_in_use_is_named_with_the_options_that_move_it_or_drop_flower(
    tmp_path: Path, taken_port: int
) -> None:
    done = dev(tmp_path, "--port", str(free_port()), "--flower-port", str(taken_port))

    [line] = assert_plain(done, 1)
    assert line == (
        f"port {taken_port} (Flower) is in use: stop what holds it, "
        "or run jobbridge dev --flower-port N (or --no-flower)"
    )
    assert_nothing_started(done, tmp_path)


def test_a_flower_port_in_use_does_not_matter_without_flower(
    tmp_path: Path, taken_port: int
) -> None:
    settings = load_settings(data_dir=tmp_path / ".jobbridge", redis_url=None, broker_url="")

    found = stack_blockers(settings, port=free_port(), flower_port=taken_port, with_flower=False)

    assert found == []


def test_a_metrics_port_the_user_set_that_is_in_use_is_named_with_its_variable(
    tmp_path: Path, taken_port: int
) -> None:
    ports = ("--port", str(free_port()), "--flower-port", str(free_port()))

    done = dev(tmp_path, *ports, METRICS_PORT=str(taken_port))

    [line] = assert_plain(done, 1)
    assert line.startswith(f"port {taken_port} (the worker's metrics, METRICS_PORT) is in use")
    assert "set METRICS_PORT to a free port" in line
    assert_nothing_started(done, tmp_path)


def test_a_second_stack_on_the_same_data_dir_is_refused_naming_it_before_its_ports(
    tmp_path: Path, taken_port: int
) -> None:
    data_dir = tmp_path / ".jobbridge"
    data_dir.mkdir()
    # The first stack holds the web port too: the second is told about DATA_DIR first.
    ports = ("--port", str(taken_port), "--flower-port", str(free_port()))
    with (data_dir / "dev.lock").open("ab") as first_stack:  # held as a running stack holds it
        fcntl.flock(first_stack, fcntl.LOCK_EX | fcntl.LOCK_NB)

        done = dev(tmp_path, *ports)

    [line] = assert_plain(done, 1)
    assert line == (
        f"another jobbridge dev runs on DATA_DIR ({data_dir}): stop it, "
        "or start this one with another DATA_DIR"
    )
    assert_nothing_started(done, tmp_path)


def test_a_metrics_port_that_is_also_the_web_port_is_refused(tmp_path: Path) -> None:
    port = free_port()

    done = dev(
        tmp_path, "--port", str(port), "--flower-port", str(free_port()), METRICS_PORT=str(port)
    )

    [line] = assert_plain(done, 1)
    assert line.startswith(f"METRICS_PORT {port} is also the stack's web or Flower port")
    assert_nothing_started(done, tmp_path)


def test_web_and_flower_on_the_same_port_is_a_usage_error(tmp_path: Path) -> None:
    port = free_port()

    done = dev(tmp_path, "--port", str(port), "--flower-port", str(port))

    [line] = assert_plain(done, 2)
    assert line == (
        f"--port and --flower-port are both {port}: give Flower another (or --no-flower)"
    )
    assert_nothing_started(done, tmp_path)


@pytest.mark.parametrize("login", ["nocolon", "admin:", ":s3cret", "a:b,nocolon"])
def test_a_flower_login_without_a_user_and_a_password_is_named(tmp_path: Path, login: str) -> None:
    done = dev(
        tmp_path,
        "--port",
        str(free_port()),
        "--flower-port",
        str(free_port()),
        FLOWER_BASIC_AUTH=login,
    )

    lines = assert_plain(done, 2)
    assert "FLOWER_BASIC_AUTH" in lines[1] and "user:password" in lines[1]
    assert login not in "\n".join(lines)  # a secret: never echoed
    assert_nothing_started(done, tmp_path)


def test_an_unreachable_redis_broker_is_named_by_its_variable_with_the_fix(
    tmp_path: Path,
) -> None:
    closed = free_port()  # bound then released: nothing listens there

    done = dev(
        tmp_path,
        *("--port", str(free_port()), "--flower-port", str(free_port())),
        REDIS_URL=f"redis://:a-password@127.0.0.1:{closed}/0",
    )

    [line] = assert_plain(done, 1)
    assert line.startswith(f"the Celery broker is unreachable (redis 127.0.0.1:{closed}/0: ")
    assert line.endswith("): start Redis, or correct REDIS_URL")
    assert "a-password" not in done.stdout + done.stderr
    assert_nothing_started(done, tmp_path)


def test_an_unreachable_broker_url_is_named_as_broker_url(tmp_path: Path) -> None:
    closed = free_port()
    settings = load_settings(
        data_dir=tmp_path / ".jobbridge",
        redis_url=None,
        broker_url=f"redis://127.0.0.1:{closed}/0",
    )

    [line] = stack_blockers(settings, port=free_port(), flower_port=free_port(), with_flower=True)

    assert line.endswith("): start Redis, or correct BROKER_URL")


def test_a_database_that_cannot_be_reached_leaves_no_data_dir_behind(tmp_path: Path) -> None:
    away = f"postgresql://postgres@127.0.0.1:{free_port()}/away"

    done = dev(
        tmp_path, "--port", str(free_port()), "--flower-port", str(free_port()), DATABASE_URL=away
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert_nothing_left(done, tmp_path)
