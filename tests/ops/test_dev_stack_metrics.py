"""`jobbridge dev` scrape-ready: the environment its children start with (METRICS_TOKEN,
PROMETHEUS_MULTIPROC_DIR, METRICS_PORT), the token it keeps under the data dir, the
multiprocess directory it empties, and the banner that says how to scrape. The real
stack scrapes its /metrics in tests/ops/test_dev_stack.py."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from bridge import devstack
from bridge.devstack import (
    banner,
    children_environment,
    dev_metrics,
    empty_multiproc_dir,
    flower_environment,
)
from bridge.metrics import MULTIPROC_ENV
from config import Settings, load_settings

BASE = {"PATH": "/usr/bin", "HOME": "/home/dev"}


def settings(tmp_path: Path, **overrides: object) -> Settings:
    """The stack's settings on a data dir of its own; METRICS_* unset unless given."""
    fields: dict[str, object] = {"metrics_token": None, "metrics_port": None}
    return load_settings(data_dir=tmp_path / "data", **{**fields, **overrides})


def test_children_start_with_a_metrics_token_a_multiproc_dir_and_a_worker_port(
    tmp_path: Path,
) -> None:
    metrics = dev_metrics(settings(tmp_path, metrics_port=9123), BASE)

    env = children_environment(BASE, metrics)

    assert env["METRICS_TOKEN"] == metrics.token and len(metrics.token) >= 32
    assert env[MULTIPROC_ENV] == str(tmp_path.resolve() / "data" / "metrics")
    assert env["METRICS_PORT"] == "9123"
    assert env["PATH"] == BASE["PATH"]  # the rest of the environment passes through


def test_a_metrics_token_the_user_set_wins_and_no_token_file_is_written(tmp_path: Path) -> None:
    metrics = dev_metrics(settings(tmp_path, metrics_token="users-own-token"), BASE)

    assert children_environment(BASE, metrics)["METRICS_TOKEN"] == "users-own-token"
    assert metrics.token_file is None
    assert not (tmp_path / "data" / devstack.TOKEN_FILE).exists()


def test_the_made_token_is_the_same_across_two_starts(tmp_path: Path) -> None:
    first = dev_metrics(settings(tmp_path), BASE)
    second = dev_metrics(settings(tmp_path), BASE)

    assert first.token == second.token


def test_the_made_token_is_kept_in_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    metrics = dev_metrics(settings(tmp_path), BASE)

    assert metrics.token_file == tmp_path.resolve() / "data" / devstack.TOKEN_FILE
    assert metrics.token_file.read_text(encoding="utf-8").strip() == metrics.token
    assert stat.S_IMODE(metrics.token_file.stat().st_mode) == 0o600


def test_a_kept_token_file_readable_by_others_is_made_the_owners_alone(tmp_path: Path) -> None:
    path = dev_metrics(settings(tmp_path), BASE).token_file
    assert path is not None
    path.chmod(0o644)

    dev_metrics(settings(tmp_path), BASE)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_stacks_multiproc_dir_is_emptied_at_start(tmp_path: Path) -> None:
    metrics = dev_metrics(settings(tmp_path), BASE)
    metrics.multiproc_dir.mkdir(parents=True)
    (metrics.multiproc_dir / "counter_4242.db").write_bytes(b"last run")

    empty_multiproc_dir(metrics)

    assert metrics.multiproc_dir.is_dir()
    assert list(metrics.multiproc_dir.iterdir()) == []


def test_a_multiproc_dir_the_user_set_is_used_and_not_emptied(tmp_path: Path) -> None:
    users = tmp_path / "users-metrics"
    users.mkdir()
    (users / "counter_4242.db").write_bytes(b"someone's")
    environ = {**BASE, MULTIPROC_ENV: str(users)}

    metrics = dev_metrics(settings(tmp_path), environ)
    empty_multiproc_dir(metrics)

    assert children_environment(environ, metrics)[MULTIPROC_ENV] == str(users)
    assert (users / "counter_4242.db").exists()


def test_a_metrics_port_the_user_set_wins(tmp_path: Path) -> None:
    metrics = dev_metrics(settings(tmp_path, metrics_port=9555), BASE)

    assert children_environment(BASE, metrics)["METRICS_PORT"] == "9555"


def test_a_taken_default_worker_port_gives_way_to_a_free_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(devstack, "DEV_METRICS_PORT", port)

        metrics = dev_metrics(settings(tmp_path), BASE)

    assert metrics.port != port and metrics.port > 0


def test_the_banner_shows_how_to_scrape_with_the_token_file_never_the_token(
    tmp_path: Path,
) -> None:
    stack = settings(tmp_path, metrics_port=9100)
    metrics = dev_metrics(stack, BASE)

    shown = banner(stack, metrics, port=8000, flower_port=5555, with_flower=True)

    bearer = f'curl -H "Authorization: Bearer $(cat {metrics.token_file})"'
    assert f"{bearer} http://127.0.0.1:8000/metrics" in shown
    assert f"{bearer} http://127.0.0.1:8000/status" in shown
    assert "http://127.0.0.1:9100/metrics" in shown
    assert metrics.token not in shown


def test_the_banner_names_the_users_variable_for_a_token_the_user_set(tmp_path: Path) -> None:
    stack = settings(tmp_path, metrics_token="users-own-token")
    metrics = dev_metrics(stack, {**BASE, "METRICS_TOKEN": "users-own-token"})

    shown = banner(stack, metrics, port=8000, flower_port=5555, with_flower=False)

    assert 'curl -H "Authorization: Bearer $METRICS_TOKEN" http://127.0.0.1:8000/metrics' in shown
    assert "users-own-token" not in shown


def test_the_banner_reads_a_token_set_only_in_dotenv_from_that_file(tmp_path: Path) -> None:
    stack = settings(tmp_path, metrics_token="from-dotenv")  # Settings read it from .env
    metrics = dev_metrics(stack, BASE)  # the shell has no METRICS_TOKEN

    shown = banner(stack, metrics, port=8000, flower_port=5555, with_flower=False)

    assert "Bearer $(sed -n 's/^METRICS_TOKEN=//p' .env)\" http://127.0.0.1:8000/metrics" in shown
    assert "from-dotenv" not in shown


def test_the_banner_says_where_the_workers_port_listens(tmp_path: Path) -> None:
    stack = settings(tmp_path, metrics_port=9100, metrics_addr="0.0.0.0")

    shown = banner(stack, dev_metrics(stack, BASE), port=8000, flower_port=0, with_flower=False)

    assert "http://127.0.0.1:9100/metrics  (its own; no token, on 0.0.0.0)" in shown


def test_flower_starts_without_the_metrics_directory(tmp_path: Path) -> None:
    env = children_environment(BASE, dev_metrics(settings(tmp_path), BASE))

    flower = flower_environment(env)

    assert MULTIPROC_ENV not in flower and flower["PATH"] == BASE["PATH"]
