"""The `/status` page in a real headless Chromium (Debian's `chromium`, installed here when
missing), driven by the `playwright` package, never by `playwright install`: served by a
real uvicorn process from a migration half way through (tests/support/status_seed.py),
with QStash's console played over real HTTP and a sweep recorded by the web process.

The browser logs in with Basic auth, finds the verdict and the chart, logs no console
error, fits a phone's width, and the screenshot is kept: `status-page.png` (and
`status-page-phone.png`) under $JOBBRIDGE_ARTIFACTS, else `.artifacts/`; with
JOBBRIDGE_UPDATE_SCREENSHOT=1 also `docs/status-page.png`, the README's picture."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import HttpCredentials, Page, ViewportSize, sync_playwright

from tests.conftest import METRICS_TOKEN, server_env
from tests.support import ROOT, env
from tests.support.qstash_console_double import QStashConsole
from tests.support.respx_http import RouterServer
from tests.support.services import Process, start_web
from tests.support.status_seed import HOSTILE_ERROR, SeededMigration, seed_migration

# Installing Debian's chromium on a fresh machine takes a few minutes.
pytestmark = pytest.mark.timeout(900)

CHROMIUM = Path("/usr/bin/chromium")
EXECUTE = f"{env.WEBHOOK_URL}/api/scheduled-actions/execute"
DESKTOP: ViewportSize = {"width": 1000, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed (as root, without a prompt) when missing."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (needs root)")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(
                command, env=environment, capture_output=True, text=True, check=False, timeout=800
            )
            if done.returncode != 0:
                pytest.fail(
                    f"installing Debian's chromium failed: `{' '.join(command)}` exited "
                    f"{done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
    assert CHROMIUM.exists(), f"{CHROMIUM} is still missing after apt-get install chromium"
    return str(CHROMIUM)


@dataclass(frozen=True)
class StatusWeb:
    url: str
    seeded: SeededMigration
    process: Process


@pytest.fixture
def status_web(log_dir: Path, inngest_api: Any) -> Iterator[StatusWeb]:
    """uvicorn with Inngest first (auto), QStash still configured, METRICS_TOKEN set."""
    router = respx.MockRouter(assert_all_called=False)
    console = QStashConsole(router)
    qstash = RouterServer(router, env.QSTASH_API)
    environment = {
        **server_env(inngest_api.url),
        "JOB_PROVIDER": "auto",
        "QSTASH_URL": qstash.url,
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    process, url = start_web(environment, log_dir, name="status-web")
    try:
        # A sweep in the web process (its cron route), before the rows exist: it would
        # put the stuck row back. The page then shows when it ran.
        swept = httpx.post(
            url + "/api/scheduled-actions/sweep",
            headers={"Authorization": f"Bearer {env.CRON_SECRET}"},
            timeout=30,
        )
        assert swept.status_code == 200, swept.text
        seeded = seed_migration()
        for number in range(40):
            console.log(f"msg_done_{number}", "DELIVERED", EXECUTE)
        for number in range(seeded.pending["qstash"]):
            console.log(f"msg_waiting_{number}", "CREATED", EXECUTE)
        console.log("msg_retrying", "RETRY", EXECUTE)
        console.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "gone"})
        yield StatusWeb(url, seeded, process)
    finally:
        process.stop()
        qstash.stop()


def artifacts() -> Path:
    folder = Path(os.environ.get("JOBBRIDGE_ARTIFACTS") or ROOT / ".artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watch_errors(page: Page) -> list[str]:
    """Console errors and uncaught page errors, as they happen."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    return errors


def test_the_status_page_in_a_real_chromium(chromium: str, status_web: StatusWeb) -> None:
    login: HttpCredentials = {"username": "operator", "password": METRICS_TOKEN}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            desktop = browser.new_context(http_credentials=login, viewport=DESKTOP)
            page = desktop.new_page()
            errors = watch_errors(page)
            response = page.goto(status_web.url + "/status", wait_until="load")
            assert response is not None and response.status == 200

            verdict = page.locator("#verdict .line").inner_text()
            chart_bars = page.locator("svg.chart rect").count()
            failure_text = page.locator("section", has_text="failed in the last hour").inner_text()
            title = page.title()
            sweep = page.locator("section", has_text="Sweep").inner_text()
            page.screenshot(path=str(artifacts() / "status-page.png"), full_page=True)
            if os.environ.get("JOBBRIDGE_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(artifacts() / "status-page.png", ROOT / "docs/status-page.png")

            phone = browser.new_context(http_credentials=login, viewport=PHONE)
            small = phone.new_page()
            errors += watch_errors(small)
            small.goto(status_web.url + "/status", wait_until="load")
            widths = small.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            small.screenshot(path=str(artifacts() / "status-page-phone.png"), full_page=True)
        finally:
            browser.close()

    assert verdict.startswith(
        "safe to remove QSTASH_*: no, because scheduled actions still pending on QStash: 3; "
        "QStash still holds 4 messages for this app (CREATED 3, RETRY 1); QStash's DLQ holds "
        "1 message for this app"
    ), verdict
    assert chart_bars > 100
    # The error's markup is text on the page; its script never ran.
    assert HOSTILE_ERROR in failure_text and title == "jobbridge status"
    assert "last sweep: " in sweep and "unknown" not in sweep
    assert errors == []
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px phone"


def test_the_page_asks_a_browser_to_log_in(chromium: str, status_web: StatusWeb) -> None:
    """Without credentials Chromium meets the Basic challenge and asks for them (here,
    headless with none to give, it gives up with an authentication error rather than
    showing the 401 page it shows for a challenge it cannot answer)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                page.goto(status_web.url + "/status")
        finally:
            browser.close()
