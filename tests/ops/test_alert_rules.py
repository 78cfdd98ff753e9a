"""deploy/alerts.yml is valid Prometheus rules, its unit tests (deploy/alerts_test.yml)
pass, and both scrape configs load them: promtool, from Debian's `prometheus` package,
installed here when missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.geteuid() != 0:
            pytest.fail("promtool is missing: apt-get install prometheus (needs root)")
        # Installed without starting the service, as scripts/ensure-services.sh does.
        policy = Path("/usr/sbin/policy-rc.d")
        made_policy = not policy.exists()
        if made_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for command in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
            ):
                subprocess.run(command, check=True, env=environment, capture_output=True)
        finally:
            if made_policy:
                policy.unlink()
        found = shutil.which("promtool")
    assert found is not None
    return found


def run(promtool: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *arguments], check=False, cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )


def test_alert_rules_are_valid(promtool: str) -> None:
    checked = run(promtool, "check", "rules", "alerts.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    tested = run(promtool, "test", "rules", "alerts_test.yml")

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_alert_rules_alert_on_the_metrics_the_app_exposes() -> None:
    from tests.bridge.test_metrics import NAMES

    used = set(re.findall(r"\bjobbridge_[a-z_]+", (DEPLOY / "alerts.yml").read_text()))
    exposed = {
        *NAMES,
        "jobbridge_scheduled_actions_stuck_executing",
        "jobbridge_scheduled_actions_due_unexecuted",
        "jobbridge_database_up",
    }

    assert used <= exposed


# Production's (deploy/prometheus.yml) and docker-compose.yml's (deploy/prometheus-dev.yml).
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-dev.yml"])
def test_the_scrape_config_is_valid_and_loads_the_alert_rules(
    config: str, promtool: str, tmp_path: Path
) -> None:
    # Checked where it is deployed: beside the rules and the token file it names.
    for name in (config, "alerts.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / "metrics_token").write_text("a-token\n")

    checked = subprocess.run(
        [promtool, "check", "config", config],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr
