"""Prometheus metrics: /metrics behind METRICS_TOKEN, the counters the execution core,
the publishing chain and the delivery ledger keep, the multiprocess directory that adds
processes up, and the database gauges read at scrape time."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bridge.apps import AppAudit
from bridge.errors import PublishError
from bridge.ops.metrics_db import DatabaseCollector
from bridge.outcome import Delivery
from bridge.publisher import Message
from bridge.receipt import Receipt
from bridge.web.deliveries import run_once
from bridge.web.factory import create_app
from config import Provider
from tasks.audit import audit
from tasks.models import ActionStatus, ActionType, utcnow
from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action
from tests.conftest import METRICS_TOKEN, Mailbox
from tests.support import env
from tests.support.actions import insert_action, set_columns
from tests.support.wait import wait_for

EXECUTE = execute_scheduled_action
APP_AUDIT: AppAudit = audit  # the app's audit, as the shim takes it
NAMES = (
    "jobbridge_deliveries_total",
    "jobbridge_delivery_duration_seconds",
    "jobbridge_publishes_total",
    "jobbridge_publish_failures_total",
    "jobbridge_failovers_total",
    "jobbridge_ledger_duplicates_total",
    "jobbridge_replays_refused_total",
    "jobbridge_sweep_runs_total",
    "jobbridge_sweep_last_success_timestamp_seconds",
    "jobbridge_scheduled_actions",
    "jobbridge_scheduled_actions_pending",
    "jobbridge_deferred_jobs",
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format; 0 when it is not there yet."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def local(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# /metrics on the web app ----------------------------------------------------------------


@pytest.fixture
def metrics_client(configure: Callable[..., Any]) -> Iterator[TestClient]:
    with TestClient(create_app(configure(METRICS_TOKEN="s3cret-token"))) as client:
        yield client


def test_metrics_is_not_served_without_a_token(configure: Callable[..., Any]) -> None:
    with TestClient(create_app(configure(METRICS_TOKEN=None))) as client:
        response = client.get("/metrics", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 404


def test_metrics_refuses_a_wrong_token(metrics_client: TestClient) -> None:
    response = metrics_client.get("/metrics", headers={"Authorization": "Bearer s3cret-tokeN"})

    assert response.status_code == 401


def test_metrics_refuses_a_request_without_authorization(metrics_client: TestClient) -> None:
    assert metrics_client.get("/metrics").status_code == 401


def test_metrics_answers_the_token_with_every_metric(metrics_client: TestClient) -> None:
    response = metrics_client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    named = {family.name for family in text_string_to_metric_families(response.text)}
    # The text format names a counter's family without its _total.
    missing = [name for name in NAMES if name.removesuffix("_total") not in named]
    assert not missing


# The session's real processes -------------------------------------------------------------


def scrape(web: str) -> str:
    response = httpx.get(
        web + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    response.raise_for_status()
    return response.text


def skipped(text: str, provider: str) -> float:
    labels = {"job": EXECUTE.name, "provider": provider, "outcome": "skipped"}
    return sample(text, "jobbridge_deliveries_total", **labels)


def test_a_delivery_through_the_web_server_is_counted(web: str) -> None:
    before = skipped(scrape(web), "http")

    # An action that does not exist: the job runs and skips it.
    response = httpx.post(
        web + EXECUTE.route,
        json={"scheduledActionId": f"gone-{uuid.uuid4().hex}"},
        headers={"x-api-key": env.INTERNAL_API_KEY},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    assert skipped(scrape(web), "http") == before + 1


def test_the_web_adds_up_the_celery_workers_children(
    web: str, worker: Any, configure: Callable[..., Any]
) -> None:
    from bridge.publishing import enqueue

    before = skipped(scrape(web), "celery")
    payload = ExecuteScheduledAction(scheduled_action_id=f"gone-{uuid.uuid4().hex}")

    enqueue(EXECUTE, payload, settings=configure(JOB_PROVIDER="celery"))

    # Run by a prefork child of the worker; answered by the web's uvicorn process.
    wait_for(lambda: skipped(scrape(web), "celery") == before + 1, timeout=30, what="the count")


def test_counts_of_two_processes_add_up(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    script = (
        "import sys\n"
        "from bridge.core import run_job\n"
        "from bridge.outcome import Delivery\n"
        "from tasks import JOBS\n"
        f"spec = JOBS[{EXECUTE.event!r}]\n"
        "run_job(spec, {}, Delivery('qstash', 'd', 0))\n"  # invalid payload: failed
        "print('ran', flush=True)\n"
        "sys.stdin.read()\n"  # alive until the test has read the directory
    )
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ran\n"
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
        labels = {"job": EXECUTE.name, "provider": "qstash", "outcome": "failed"}

        assert registry.get_sample_value("jobbridge_deliveries_total", labels) == 2
    finally:
        for process in processes:
            process.communicate("", timeout=30)


# The execution core and the ledger --------------------------------------------------------


def test_run_job_records_its_duration(configure: Callable[..., Any]) -> None:
    labels = {"job": EXECUTE.name, "provider": "http"}
    before = local("jobbridge_delivery_duration_seconds_count", **labels)

    run_once(EXECUTE, {}, Delivery("http", f"d-{uuid.uuid4().hex}", 0), remember=False)

    assert local("jobbridge_delivery_duration_seconds_count", **labels) == before + 1


def test_a_settled_delivery_answered_from_the_ledger_is_counted() -> None:
    delivery = Delivery("qstash", f"msg-{uuid.uuid4().hex}", 0)
    data: dict[str, Any] = {}  # an invalid payload: a failure, which the ledger settles
    run_once(EXECUTE, data, delivery, remember=True)
    before = local("jobbridge_ledger_duplicates_total", provider="qstash")

    assert run_once(EXECUTE, data, delivery, remember=True) is None
    assert local("jobbridge_ledger_duplicates_total", provider="qstash") == before + 1


# Publishing along the provider chain ------------------------------------------------------


class _Publisher:
    def __init__(self, provider: Provider, fails: bool) -> None:
        self.provider, self.fails = provider, fails

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        if self.fails:
            raise PublishError(self.provider, "down")
        return [Receipt(self.provider, f"id-{uuid.uuid4().hex}") for _ in messages]


@pytest.fixture
def qstash_down_celery_up(monkeypatch: pytest.MonkeyPatch, configure: Callable[..., Any]) -> Any:
    """A chain QStash then Celery whose QStash refuses every publish."""
    from bridge import publishing

    class Chain:
        providers = (Provider.QSTASH, Provider.CELERY)

    publishers = {
        Provider.QSTASH: _Publisher(Provider.QSTASH, fails=True),
        Provider.CELERY: _Publisher(Provider.CELERY, fails=False),
    }
    monkeypatch.setattr(publishing, "resolve_chain", lambda settings: Chain())
    monkeypatch.setattr(publishing, "publisher", lambda provider, settings: publishers[provider])
    return configure()


def publish_one(settings: Any) -> Receipt:
    from bridge.publishing import enqueue

    payload = ExecuteScheduledAction(scheduled_action_id=f"a-{uuid.uuid4().hex}")
    return enqueue(EXECUTE, payload, settings=settings)


def test_a_refused_publish_is_counted_for_its_provider(qstash_down_celery_up: Any) -> None:
    before = local("jobbridge_publish_failures_total", job=EXECUTE.name, provider="qstash")

    publish_one(qstash_down_celery_up)

    after = local("jobbridge_publish_failures_total", job=EXECUTE.name, provider="qstash")
    assert after == before + 1


def test_the_failover_is_counted_from_and_to(qstash_down_celery_up: Any) -> None:
    labels = {"from_provider": "qstash", "to_provider": "celery"}
    before = local("jobbridge_failovers_total", **labels)

    publish_one(qstash_down_celery_up)

    assert local("jobbridge_failovers_total", **labels) == before + 1


def test_the_publish_is_counted_for_the_provider_that_took_it(
    qstash_down_celery_up: Any,
) -> None:
    before = local("jobbridge_publishes_total", job=EXECUTE.name, provider="celery")

    receipt = publish_one(qstash_down_celery_up)

    assert receipt.provider == Provider.CELERY
    assert local("jobbridge_publishes_total", job=EXECUTE.name, provider="celery") == before + 1


# Gauges from the database -----------------------------------------------------------------


def gauges(collector: DatabaseCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (found.name, tuple(sorted(found.labels.items()))): found.value
        for family in collector.collect()
        for found in family.samples
    }


def test_scheduled_action_gauges_match_the_database(
    mailbox: Mailbox, configure: Callable[..., Any]
) -> None:
    hour = timedelta(hours=1)
    for number in range(2):
        insert_action(
            mailbox.account_id,
            ActionType.ARCHIVE,
            mailbox.keys[number],
            scheduled_for=utcnow() + hour,
            scheduled_provider="qstash",
        )
    cancelled = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[2])
    set_columns(cancelled.id, status=ActionStatus.CANCELLED)

    found = gauges(DatabaseCollector(configure(), APP_AUDIT))

    by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in found.items()
        if name == "jobbridge_scheduled_actions"
    }
    assert by_status == {
        status.value: {"PENDING": 2, "CANCELLED": 1}.get(status.value, 0) for status in ActionStatus
    }
    assert found[("jobbridge_scheduled_actions_pending", (("provider", "qstash"),))] == 2


def test_a_provider_with_nothing_pending_has_a_zero_series(
    mailbox: Mailbox, configure: Callable[..., Any]
) -> None:
    insert_action(
        mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0], scheduled_provider="inngest"
    )

    found = gauges(DatabaseCollector(configure(), APP_AUDIT))

    pending = {
        dict(labels)["provider"]: value
        for (name, labels), value in found.items()
        if name == "jobbridge_scheduled_actions_pending"
    }
    assert pending == {"inngest": 1, "qstash": 0, "celery": 0, "http": 0}


def test_database_gauges_are_read_again_only_after_the_cache_time(
    mailbox: Mailbox, configure: Callable[..., Any]
) -> None:
    now = [1000.0]
    collector = DatabaseCollector(configure(), APP_AUDIT, ttl=15, clock=lambda: now[0])
    pending = ("jobbridge_scheduled_actions", (("status", "PENDING"),))
    assert gauges(collector)[pending] == 0
    insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])

    now[0] += 14
    cached = gauges(collector)[pending]
    now[0] += 1
    fresh = gauges(collector)[pending]

    assert (cached, fresh) == (0, 1)


def test_the_deferred_jobs_gauge_counts_the_stored_celery_jobs(
    configure: Callable[..., Any],
) -> None:
    from bridge.celery.deferred import defer

    for number in range(3):
        due = utcnow() + timedelta(days=2)
        defer(EXECUTE.event, {"scheduledActionId": f"a{number}"}, due, f"dedup-{number}")

    found = gauges(DatabaseCollector(configure(), APP_AUDIT))

    assert found[("jobbridge_deferred_jobs", ())] == 3


def test_the_database_gauges_say_when_the_database_is_down(
    configure: Callable[..., Any],
) -> None:
    settings = configure(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")

    found = gauges(DatabaseCollector(settings, APP_AUDIT))

    assert found == {("jobbridge_database_up", ()): 0}


# The sweep ---------------------------------------------------------------------------------


def test_a_successful_sweep_sets_its_timestamp_and_counts_the_run() -> None:
    from bridge.metrics import sweep_succeeded

    runs = local("jobbridge_sweep_runs_total")
    at = time.time()

    sweep_succeeded(at)

    assert local("jobbridge_sweep_last_success_timestamp_seconds") == at
    assert local("jobbridge_sweep_runs_total") == runs + 1
