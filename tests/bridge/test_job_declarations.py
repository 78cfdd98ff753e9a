"""`@job` checks each declaration at import, and every provider reads its limits from it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from bridge.inngest.functions import job_function
from bridge.outcome import done
from bridge.payload import Payload
from bridge.publisher import Message
from bridge.qstash.publisher import QStashPublisher
from bridge.registry import JobDeclarationError, JobSpec, Registry, Throttle
from config import load_settings
from tasks import JOBS, registry
from tests.support import env


class PerAccount(Payload):
    email_account_id: str


class Delayed(Payload):
    scheduled_for: datetime | None = None


def body(payload: Any, delivery: Any) -> Any:
    return done()


def declare(**options: Any) -> Any:
    settings = {"event": "inbox-zero/test.thing", "route": "/api/test/thing", "payload": PerAccount}
    return registry.job(**{**settings, **options})(body)


def test_unknown_option_fails_at_declaration() -> None:
    with pytest.raises(TypeError, match="concurency"):
        declare(concurency=3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"event": "scheduled-action.execute"}, "inbox-zero/area.action"),
        ({"route": "api/no-slash"}, "/api/"),
        ({"route": "/api/scheduled-actions/execute"}, "already belongs"),
        ({"event": "inbox-zero/scheduled-action.execute"}, "declared twice"),
        ({"retries": 21}, "retries must be 0..20"),
        ({"concurrency": 0}, "at least 1"),
        ({"concurrency": 2, "payload": Delayed}, "emailAccountId"),
        ({"delayable": True}, "scheduled_for"),
        ({"payload": dict}, "Payload subclass"),
        ({"throttle": Throttle(limit=0, period_seconds=1)}, "throttle needs"),
        ({"legacy_routes": ("/api/clean/gmail",)}, "already belongs"),
        ({"route": "/api/inngest"}, "Inngest's endpoint"),
        ({"legacy_routes": ("/api/inngest",)}, "Inngest's endpoint"),
        ({"concurrency": 1, "flow_key_prefix": "with space-"}, "flow-control key alphabet"),
        ({"flow_key_prefix": "unlimited-"}, "needs per-key limits"),
        ({"event": "inbox-zero/cleanup.scheduled-actions"}, "already triggers a cron"),
        ({"cancel_key": "actionId"}, "cancel_key 'actionId' is not a payload field"),
    ],
)
def test_invalid_declaration_fails_with_its_reason(options: dict[str, Any], message: str) -> None:
    before = dict(JOBS)
    with pytest.raises(JobDeclarationError, match=message):
        declare(**options)
    assert before == JOBS  # nothing half-registered


def limited_spec() -> JobSpec[PerAccount]:
    return JobSpec(
        event="inbox-zero/test.limited",
        name="test.limited",
        route="/api/test/limited",
        payload=PerAccount,
        body=body,
        retries=5,
        concurrency=3,
        throttle=Throttle(limit=6, period_seconds=1),
    )


def test_inngest_function_gets_retries_and_per_account_limits() -> None:
    from bridge.inngest.client import make_inngest_client

    client = make_inngest_client(
        load_settings(**{k.lower(): v for k, v in env.INNGEST_ENV.items()})
    )
    config = job_function(client, limited_spec()).get_config("http://app.test/api/inngest").main
    assert config.id == "inbox-zero-test-limited"
    retries = config.steps["step"].retries
    assert retries is not None and retries.attempts == 5
    assert config.concurrency is not None
    (concurrency,) = config.concurrency
    assert (concurrency.limit, concurrency.key) == (3, "event.data.emailAccountId")
    throttle = config.throttle
    assert throttle is not None
    assert (throttle.limit, throttle.period, throttle.key) == (
        6,
        timedelta(seconds=1),
        "event.data.emailAccountId",
    )


def test_qstash_flow_control_is_keyed_per_job_and_account() -> None:
    settings = load_settings(**{k.lower(): v for k, v in env.QSTASH_ENV.items()})
    message = Message(limited_spec(), {"emailAccountId": "acc-1"}, None, None)
    options = QStashPublisher(settings).options(message)
    assert options["flow_control"] == {
        "key": "test-limited.acc-1",
        "parallelism": 3,
        "rate": 6,
        "period": 1,
    }
    assert options["retries"] == 5


def test_inngest_finish_timeout_comes_from_the_declaration_except_for_delayable_jobs() -> None:
    from bridge.inngest.client import make_inngest_client
    from tasks.scheduled_actions import execute_scheduled_action

    client = make_inngest_client(
        load_settings(**{k.lower(): v for k, v in env.INNGEST_ENV.items()})
    )
    url = "http://app.test/api/inngest"
    limited = job_function(client, limited_spec()).get_config(url).main
    delayable = job_function(client, execute_scheduled_action).get_config(url).main
    assert limited.timeouts is not None and limited.timeouts.finish == timedelta(seconds=300)
    assert delayable.timeouts is None


def test_qstash_flow_control_key_takes_the_jobs_own_prefix() -> None:
    settings = load_settings(**{k.lower(): v for k, v in env.QSTASH_ENV.items()})
    spec = dataclasses.replace(limited_spec(), flow_key_prefix="old-app-key-")
    options = QStashPublisher(settings).options(Message(spec, {"emailAccountId": "a1"}, None, None))
    assert options["flow_control"]["key"] == "old-app-key-a1"


def test_a_job_is_served_at_its_legacy_routes_and_each_path_with_the_alias_suffixes() -> None:
    local = Registry(event_prefix="app/", alias_suffixes=("/simple",))
    spec = local.job(
        event="app/area.act",
        route="/api/area/act",
        payload=PerAccount,
        legacy_routes=("/api/area-act",),
    )(body)
    assert spec.aliases == ("/api/area-act", "/api/area/act/simple", "/api/area-act/simple")


def test_a_cron_may_also_run_on_events_but_not_on_a_jobs() -> None:
    local = Registry(event_prefix="app/")
    local.job(event="app/area.act", route="/api/area/act", payload=PerAccount)(body)
    with pytest.raises(JobDeclarationError, match="already triggers another"):
        local.cron(
            name="area.sweep", cron="* * * * *", route="/api/sweep", events=("app/area.act",)
        )(dict)
    sweep = local.cron(
        name="area.tidy", cron="* * * * *", route="/api/tidy", events=("app/area.tidy-now",)
    )(dict)
    assert sweep.events == ("app/area.tidy-now",)


def test_a_route_with_a_newline_at_its_end_is_refused() -> None:
    # A regex's "$" matches before a final newline: routes are matched whole.
    local = Registry(event_prefix="app/")

    with pytest.raises(JobDeclarationError, match="must look like"):
        local.job(event="app/area.act", route="/api/area/act\n", payload=PerAccount)(body)
