"""docker-compose.yml (local development) scrape-ready like the production file: the app
gets METRICS_TOKEN and a PROMETHEUS_MULTIPROC_DIR per container, the worker its
METRICS_PORT, and the `prometheus` service deploy/prometheus-dev.yml with the token
beside it, on 127.0.0.1 only. promtool checks that config in tests/ops/test_alert_rules.py."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.compose_render import MissingVariable, render, service_environment

DEV = ROOT / "docker-compose.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus-dev.yml"
APP_SERVICES = ("web", "worker", "beat", "flower")
TOKEN = "dev-metrics-token"
ENV = {"FLOWER_BASIC_AUTH": "dev:dev-secret", "METRICS_TOKEN": TOKEN}
CONFIG_DIR = PurePosixPath("/etc/prometheus")


def rendered() -> dict[str, Any]:
    return render(DEV, ENV)


def scrape_config() -> dict[str, Any]:
    loaded = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def scrape_job(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        job for job in scrape_config()["scrape_configs"] if job["job_name"] == name
    ]
    assert len(found) == 1, f"{SCRAPE_CONFIG.name} has no one {name} job"
    return found[0]


def prometheus_mounts() -> dict[PurePosixPath, str]:
    """What the prometheus service finds in its container: target -> source (a file of
    this repository, a named volume, or a compose config's name)."""
    spec = rendered()["services"]["prometheus"]
    mounts = {}
    for volume in spec.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        mounts[PurePosixPath(target)] = source
    for config in spec.get("configs") or []:
        mounts[PurePosixPath(config["target"])] = f"config:{config['source']}"
    return mounts


def test_the_dev_file_does_not_render_without_a_metrics_token() -> None:
    with pytest.raises(MissingVariable, match="METRICS_TOKEN"):
        render(DEV, {"FLOWER_BASIC_AUTH": "dev:dev-secret"})


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dev_app_containers_get_the_token_and_a_multiproc_dir_off_the_shared_volume(
    name: str,
) -> None:
    document = rendered()
    env = service_environment(document, name)
    volumes = [str(v).split(":")[1] for v in document["services"][name].get("volumes") or []]

    assert env["METRICS_TOKEN"] == TOKEN
    folder = PurePosixPath(env["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.is_absolute()
    assert not any(folder.is_relative_to(volume) for volume in volumes), folder


def test_the_dev_worker_serves_its_metrics_where_the_dev_scrape_config_looks() -> None:
    document = rendered()
    port = service_environment(document, "worker")["METRICS_PORT"]

    assert port in document["services"]["worker"]["expose"]
    assert scrape_job("jobbridge-worker")["static_configs"][0]["targets"] == [f"worker:{port}"]
    assert not document["services"]["worker"].get("ports"), "no token: never published"


def test_the_dev_scrape_config_sends_the_token_to_the_web_app() -> None:
    web = scrape_job("jobbridge-web")

    assert web["static_configs"][0]["targets"] == ["web:8000"]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"]["type"] == "Bearer"


def test_dev_prometheus_gets_the_apps_token_as_the_file_its_config_names() -> None:
    document = rendered()
    credentials = scrape_job("jobbridge-web")["authorization"]["credentials_file"]

    source = prometheus_mounts()[CONFIG_DIR / credentials]
    assert source.startswith("config:")
    assert document["configs"][source.removeprefix("config:")]["content"] == TOKEN


def test_dev_prometheus_runs_the_dev_config_and_the_rules_it_names() -> None:
    mounts = prometheus_mounts()

    assert mounts[CONFIG_DIR / "prometheus.yml"] == "./deploy/prometheus-dev.yml"
    for rules in scrape_config()["rule_files"]:  # beside the config, from deploy/
        assert mounts[CONFIG_DIR / rules] == f"./deploy/{rules}"
        assert (ROOT / "deploy" / rules).is_file()


def test_dev_prometheus_is_published_on_loopback_only() -> None:
    ports = rendered()["services"]["prometheus"]["ports"]

    assert ports == ["127.0.0.1:9090:9090"]
