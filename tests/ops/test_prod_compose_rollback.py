"""docker-compose.prod.yml, rendered with a deployment's environment and with the
rollback's (every INNGEST_* removed from .env, docs/MIGRATION.md "Rollback"): the file
renders, the app's settings are valid and publish where they should, the Inngest server
runs only with its keys, and the sync step syncs on every `up` unless rolled back. The
services' shell scripts are run here with /bin/sh, the programs they start replaced by
stand-ins that print their arguments."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from config import Provider, Settings, load_settings, resolve_chain
from tests.support import ROOT
from tests.support import env as test_env
from tests.support.compose_render import render, service_environment, shell_script

PROD = ROOT / "docker-compose.prod.yml"
SETTINGS_VARIABLES = frozenset(name.upper() for name in Settings.model_fields)
SERVICES_OWN = {
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
    "FLOWER_BASIC_AUTH": "admin:secret",
}
QSTASH = {k: v for k, v in test_env.QSTASH_ENV.items() if k != "QSTASH_URL"}
INNGEST_KEYS = {
    "INNGEST_EVENT_KEY": test_env.INNGEST_EVENT_KEY,
    "INNGEST_SIGNING_KEY": test_env.INNGEST_SIGNING_KEY,
}
DEPLOYED = {**SERVICES_OWN, **QSTASH, **INNGEST_KEYS}
ROLLED_BACK = {**SERVICES_OWN, **QSTASH}  # the literal rollback: INNGEST_* removed


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def app_settings(env: Mapping[str, str]) -> Settings:
    """Settings as web reads them from the rendered file (empty is unset, as in compose)."""
    web = service_environment(render(PROD, env), "web")
    fields = {k.lower(): v for k, v in web.items() if k in SETTINGS_VARIABLES and v != ""}
    return load_settings(**fields)


def stand_in(folder: Path, program: str) -> None:
    """`program` on PATH, printing its arguments instead of running."""
    path = folder / program
    path.write_text(f'#!/bin/sh\necho "{program} $*"\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_script(env: Mapping[str, str], service: str, tmp_path: Path) -> subprocess.Popen[str]:
    document = render(PROD, env)
    for program in ("inngest", "jobbridge"):
        stand_in(tmp_path, program)
    container_env = {
        **service_environment(document, service),
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
    }
    return subprocess.Popen(
        ["/bin/sh", "-c", shell_script(document, service)],
        env=container_env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: whatever it leaves running is killed
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = process.communicate(timeout=30)
    return process.returncode, out.strip()


def test_the_deployed_file_publishes_to_inngest_first() -> None:
    settings = app_settings(DEPLOYED)

    assert resolve_chain(settings).primary is Provider.INNGEST
    assert (settings.inngest_base_url, settings.inngest_serve_origin) == (
        "http://inngest:8288",
        "http://web:8000",
    )


def test_the_rolled_back_file_renders_and_publishes_to_qstash() -> None:
    settings = app_settings(ROLLED_BACK)

    assert resolve_chain(settings).primary is Provider.QSTASH
    assert settings.inngest_base_url is None and not settings.inngest_serves


def test_the_inngest_server_starts_with_its_keys(tmp_path: Path) -> None:
    code, out = finished(run_script(DEPLOYED, "inngest", tmp_path))

    assert (code, out) == (0, "inngest start --sdk-url http://web:8000/api/inngest")


def test_the_rolled_back_inngest_server_says_why_it_idles_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    process = run_script(ROLLED_BACK, "inngest", tmp_path)
    assert process.stdout is not None
    first = process.stdout.readline()
    process.terminate()

    assert "inngest: off, INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY are not set" in first
    assert finished(process)[0] == 0
    with contextlib.suppress(ProcessLookupError):  # a sleep the signal raced with
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.parametrize("env", [DEPLOYED, ROLLED_BACK], ids=["deployed", "rolled-back"])
def test_the_inngest_health_check_passes_when_idle_and_checks_the_server_otherwise(
    env: dict[str, str],
) -> None:
    document = render(PROD, env)
    test: list[str] = document["services"]["inngest"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    container_env = {**service_environment(document, "inngest"), "PATH": os.environ["PATH"]}
    # No server listens here: the check fails exactly when it asks one.
    result = subprocess.run(["/bin/sh", "-c", test[1]], env=container_env, check=False)

    assert (result.returncode == 0) is (env is ROLLED_BACK)


def test_the_sync_step_syncs_the_web_service(tmp_path: Path) -> None:
    assert finished(run_script(DEPLOYED, "sync", tmp_path)) == (
        0,
        "jobbridge sync --url http://web:8000",
    )


def test_the_rolled_back_sync_step_exits_zero_saying_why(tmp_path: Path) -> None:
    code, out = finished(run_script(ROLLED_BACK, "sync", tmp_path))

    assert code == 0 and out.startswith("sync: skipped, INNGEST_SIGNING_KEY is not set")


def test_the_sync_step_waits_for_web_and_inngest_to_be_healthy() -> None:
    depends: dict[str, Any] = render(PROD, DEPLOYED)["services"]["sync"]["depends_on"]

    assert {name: dep["condition"] for name, dep in depends.items()} == {
        "web": "service_healthy",
        "inngest": "service_healthy",
    }


def test_the_deployed_file_serves_metrics_where_the_scrape_config_looks() -> None:
    document = render(PROD, {**DEPLOYED, "METRICS_TOKEN": "a-token"})
    web, worker = (service_environment(document, name) for name in ("web", "worker"))

    assert web["METRICS_TOKEN"] == "a-token" and web["PROMETHEUS_MULTIPROC_DIR"]
    assert worker["METRICS_PORT"] == "9100" and "9100" in document["services"]["worker"]["expose"]
    assert "worker:9100" in (ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8")
