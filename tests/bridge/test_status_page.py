"""The `/status` page and `/status.json`, in process: METRICS_TOKEN's auth (shared with
/metrics), the verdict on removing QSTASH_* (one behaviour each), the page rendered
from a migration half way through, the cache that keeps refreshes off QStash, and a
page that still renders when QStash or the database is down.

QStash's console API is played by tests/support/qstash_console_double.py (respx);
the page in a real browser is tests/bridge/test_status_page_browser.py."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.apps import load_app
from bridge.ops.status_board import Board, collect_board
from bridge.web.factory import create_app
from bridge.web.status_html import sweep_section
from tasks.models import ActionType
from tests.support import env
from tests.support.actions import insert_action
from tests.support.qstash_console_double import QStashConsole
from tests.support.status_seed import HOSTILE_ERROR, STUCK_CLAIM, seed_migration

Configure = Callable[..., Any]
TOKEN = "status-page-token-0123"
EXECUTE = f"{env.WEBHOOK_URL}/api/scheduled-actions/execute"
ELSEWHERE = "https://other-app.example.test/api/hook"


def basic(password: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def qstash(router: Any, configure: Configure) -> QStashConsole:
    """Mid-migration settings: Inngest publishes, QStash still configured (its console
    played by the test), METRICS_TOKEN set; Inngest's /health answers."""
    configure(**env.QSTASH_ENV, **env.INNGEST_ENV, METRICS_TOKEN=TOKEN)
    router.get(f"{env.INNGEST_API}/health").respond(200, json={"status": 200})
    return QStashConsole(router)


@pytest.fixture
def client(configure: Configure) -> Iterator[Callable[[], TestClient]]:
    """A web app made from the settings in force when it is asked for."""
    opened: list[TestClient] = []

    def make() -> TestClient:
        from config import get_settings

        opened.append(TestClient(create_app(get_settings())))
        return opened[-1]

    yield make
    for made in opened:
        made.close()


def board() -> Board:
    from config import get_settings

    return collect_board(get_settings(), load_app("tasks"))


# Auth: the same rule as /metrics -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/status", "/status.json"])
def test_without_a_token_the_page_is_not_served(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=None)

    assert client().get(path, headers=bearer("anything")).status_code == 404


@pytest.mark.parametrize("path", ["/status", "/status.json"])
def test_a_wrong_bearer_token_is_refused(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    assert client().get(path, headers=bearer(TOKEN + "x")).status_code == 401


def test_the_right_bearer_token_opens_the_json(
    configure: Configure, client: Callable[[], TestClient]
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get("/status.json", headers=bearer(TOKEN))

    assert response.status_code == 200
    assert response.json()["verdict"]["line"].startswith("safe to remove QSTASH_*:")


@pytest.mark.parametrize("path", ["/status", "/metrics"])
def test_basic_auth_with_the_token_as_password_opens_the_page_and_the_metrics(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path, headers=basic(TOKEN, user="anyone-at-all"))

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/status", "/metrics"])
def test_a_wrong_basic_password_is_refused_with_a_basic_challenge(
    configure: Configure, client: Callable[[], TestClient], path: str
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get(path, headers=basic("guess"))

    assert response.status_code == 401
    challenges = response.headers.get_list("www-authenticate")
    assert 'Basic realm="jobbridge", charset="UTF-8"' in challenges


def test_basic_credentials_that_are_not_base64_are_refused(
    configure: Configure, client: Callable[[], TestClient]
) -> None:
    configure(METRICS_TOKEN=TOKEN)

    response = client().get("/status", headers={"Authorization": "Basic %%%not-base64"})

    assert response.status_code == 401


# The verdict: one behaviour each ----------------------------------------------------------


def test_an_action_pending_on_qstash_means_no(qstash: QStashConsole) -> None:
    insert_action("acct", ActionType.ARCHIVE, "m1", scheduled_provider="qstash")

    verdict = board().verdict

    assert verdict.answer == "no"
    assert "scheduled actions still pending on QStash: 1" in verdict.reasons


def test_a_message_qstash_still_holds_for_the_app_means_no(qstash: QStashConsole) -> None:
    qstash.log("msg_late", "CREATED", EXECUTE)
    qstash.log("msg_other_app", "CREATED", ELSEWHERE)

    verdict = board().verdict

    assert verdict.answer == "no"
    assert verdict.reasons == ("QStash still holds 1 message for this app (CREATED 1)",)


def test_a_dead_letter_of_the_app_means_no(qstash: QStashConsole) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    verdict = board().verdict

    assert verdict.answer == "no"
    assert verdict.reasons[0].startswith("QStash's DLQ holds 1 message for this app")


def test_qstash_unreachable_means_no_with_the_reason(qstash: QStashConsole) -> None:
    qstash.down = True

    verdict = board().verdict

    assert verdict.answer == "no"
    assert verdict.line.startswith("safe to remove QSTASH_*: no, because QStash could not be asked")
    assert "unreachable" in verdict.line and env.QSTASH_API in verdict.line


def test_everything_drained_with_inngest_publishing_means_yes(qstash: QStashConsole) -> None:
    qstash.log("msg_done", "DELIVERED", EXECUTE)
    qstash.dead_letter("dlq_other", ELSEWHERE, {"not": "ours"})  # another app's dead letter

    verdict = board().verdict

    assert verdict.answer == "yes", verdict.reasons
    assert verdict.line == (
        "safe to remove QSTASH_*: yes, because new jobs go to inngest, not QStash; Inngest is "
        "up; no scheduled actions pending on QStash; QStash holds no message for this app; "
        "its DLQ holds none of this app's messages"
    )


def test_inngest_down_means_no_naming_it(qstash: QStashConsole, router: Any) -> None:
    router.get(f"{env.INNGEST_API}/health").respond(503)  # everything else drained

    verdict = board().verdict

    assert verdict.answer == "no"
    assert verdict.reasons == (
        f"Inngest is DOWN ({env.INNGEST_API}/health: HTTP 503): removing QStash's keys while "
        "Inngest is down removes the fallback",
    )


def test_qstash_first_in_the_chain_means_no(qstash: QStashConsole, configure: Configure) -> None:
    configure(JOB_PROVIDER="qstash")

    assert board().verdict.reasons == (
        "QStash is first in the chain (JOB_PROVIDER=qstash): new jobs are published to it",
    )


def test_qstash_alone_before_the_switch_means_no(
    qstash: QStashConsole, configure: Configure
) -> None:
    configure(**dict.fromkeys(env.INNGEST_ENV))  # phase 0: QStash only, auto mode

    reasons = board().verdict.reasons

    assert reasons == (
        "QStash is first in the chain (no INNGEST_EVENT_KEY or INNGEST_DEV): new jobs are "
        "published to it",
    )


def test_without_any_qstash_variable_there_is_nothing_to_remove(configure: Configure) -> None:
    configure(**dict.fromkeys(env.QSTASH_ENV))

    verdict = board().verdict

    assert verdict.line == "safe to remove QSTASH_*: nothing to remove, QSTASH_* are not set"


def test_without_the_token_qstash_cannot_be_asked(
    qstash: QStashConsole, configure: Configure
) -> None:
    configure(QSTASH_TOKEN=None)  # phase 4: the signing keys stay

    verdict = board().verdict

    assert verdict.answer == "no"
    assert verdict.reasons[0].startswith("QStash could not be asked: QSTASH_TOKEN is not set")


# The page, from a migration half way through ----------------------------------------------


def test_the_page_shows_the_migration_with_every_value_escaped(
    qstash: QStashConsole, client: Callable[[], TestClient]
) -> None:
    seeded = seed_migration()
    qstash.log("msg_late", "RETRY", EXECUTE)
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    response = client().get("/status", headers=basic(TOKEN))

    page = response.text
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert '<meta http-equiv="refresh" content="30">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # The hostile error is shown as text, never as markup.
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "<script" not in page and "<b>" not in page
    assert seeded.failed_id in page and seeded.stuck_id in page and STUCK_CLAIM in page
    assert '<svg class="chart"' in page and page.count("<rect ") > 100
    assert "safe to remove QSTASH_*: no, because scheduled actions still pending on QStash: 3" in (
        page
    )
    # Nothing is fetched: no src attribute at all, and links stay on the page's own host.
    assert not re.search(r"\bsrc=", page)
    assert set(re.findall(r'href="([^"]*)"', page)) == {"data:,", "status.json"}


def test_the_json_counts_executions_by_provider_as_the_drain_goes(
    qstash: QStashConsole,
) -> None:
    seeded = seed_migration()
    from config import get_settings

    found = collect_board(get_settings(), load_app("tasks"), now=seeded.now).as_json()

    series = found["app"]["activity"]["series"]
    assert series["minutes"] == 180
    assert series["totals"] == seeded.executed
    first = {k: sum(v[:60]) for k, v in series["counts"].items()}
    last = {k: sum(v[-60:]) for k, v in series["counts"].items()}
    assert (first, last) == (seeded.first_hour, seeded.last_hour)
    assert first["qstash"] > first["inngest"] and last["inngest"] > last["qstash"]
    failures, stuck = found["app"]["activity"]["tables"]
    assert failures["total"] == 1 and failures["rows"][0]["error"] == HOSTILE_ERROR
    assert stuck["total"] == 1 and stuck["rows"][0]["claimed by"] == STUCK_CLAIM
    assert found["app"]["pendingByProvider"] == seeded.pending


def test_refreshing_reuses_the_board_instead_of_asking_qstash_again(
    qstash: QStashConsole, client: Callable[[], TestClient]
) -> None:
    web = client()

    for _ in range(3):
        assert web.get("/status.json", headers=bearer(TOKEN)).status_code == 200
    assert web.get("/status", headers=bearer(TOKEN)).status_code == 200

    assert len(qstash.log_queries) == 1 and qstash.dlq_pages_served == 1


def test_the_page_renders_with_qstash_down(
    qstash: QStashConsole, client: Callable[[], TestClient]
) -> None:
    qstash.down = True

    response = client().get("/status", headers=basic(TOKEN))

    assert response.status_code == 200
    assert "unknown: QStash: QStash at https://qstash.test is unreachable" in response.text


def test_the_page_renders_with_the_database_down(
    qstash: QStashConsole, configure: Configure, client: Callable[[], TestClient]
) -> None:
    configure(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")

    response = client().get("/status.json", headers=bearer(TOKEN))

    found = response.json()
    assert response.status_code == 200
    assert found["services"][0]["state"] == "DOWN"
    assert found["verdict"]["reasons"][0].startswith("the database could not be asked:")
    page = client().get("/status", headers=bearer(TOKEN)).text
    assert "unknown: scheduled actions pending:" in page


# The last sweep ------------------------------------------------------------------------


def test_no_sweep_yet_with_a_shared_metrics_directory_is_no_alarm() -> None:
    shown = sweep_section(replace(board(), last_sweep=None, metrics_shared=True))

    assert "no sweep recorded yet (the sweep runs every minute)" in shown
    assert "unknown" not in shown and "PROMETHEUS_MULTIPROC_DIR" not in shown


def test_no_sweep_without_a_shared_metrics_directory_names_the_variable() -> None:
    shown = sweep_section(replace(board(), last_sweep=None, metrics_shared=False))

    assert '<p class="unknown">unknown: no sweep recorded by this process' in shown
    assert "set PROMETHEUS_MULTIPROC_DIR" in shown


def test_a_sweep_older_than_five_minutes_is_shown_stale() -> None:
    found = board()

    shown = sweep_section(replace(found, last_sweep=found.checked_at - timedelta(seconds=301)))

    assert '<p class="stale">' in shown and "(301 s ago): stale" in shown


def test_a_sweep_within_five_minutes_is_not_stale() -> None:
    found = board()

    shown = sweep_section(replace(found, last_sweep=found.checked_at - timedelta(seconds=299)))

    assert "stale" not in shown and "(299 s ago)" in shown
