"""The rollback to QStash is read off the settings: each phase of the migration gets the
exact steps back, and following them gives a valid configuration that publishes to
QStash."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Provider, load_settings, resolve_chain
from config.rollback import rollback_plan
from tests.support import env as test_env

INNGEST = {name.lower(): value for name, value in test_env.INNGEST_ENV.items()}
QSTASH = {name.lower(): value for name, value in test_env.QSTASH_ENV.items()}
PHASE_4 = {**INNGEST, **{k: v for k, v in QSTASH.items() if k != "qstash_token"}}
PHASE_5 = {**INNGEST, "qstash_url": QSTASH["qstash_url"]}


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def steps(**settings: object) -> tuple[str, ...]:
    return rollback_plan(load_settings(**settings)).steps


def test_with_both_providers_configured_the_rollback_is_job_provider_qstash() -> None:
    plan = rollback_plan(load_settings(**INNGEST, **QSTASH))

    assert plan.phase.startswith("phases 1-3")
    assert plan.steps[0] == "set JOB_PROVIDER=qstash"


def test_with_only_the_token_removed_the_rollback_puts_it_back_first() -> None:
    plan = rollback_plan(load_settings(**PHASE_4))

    assert plan.phase.startswith("phase 4, part way")
    assert plan.steps[0].startswith("put back QSTASH_TOKEN:")
    assert plan.steps[1] == "set JOB_PROVIDER=qstash"


def test_after_phase_4_the_rollback_puts_back_every_qstash_variable() -> None:
    assert rollback_plan(load_settings(**PHASE_5)).phase.startswith("phases 4-5")
    first = steps(**PHASE_5)[0]

    assert first.startswith(
        "put back QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY, QSTASH_NEXT_SIGNING_KEY, WEBHOOK_URL:"
    )


def test_every_rollback_keeps_the_inngest_signing_key() -> None:
    for phase in (INNGEST | QSTASH, PHASE_4, PHASE_5):
        assert any("keep INNGEST_SIGNING_KEY" in step for step in steps(**phase))


@pytest.mark.parametrize("phase", ["1-3", "4", "5"])
def test_following_the_rollback_publishes_to_qstash(phase: str) -> None:
    before = {"1-3": INNGEST | QSTASH, "4": PHASE_4, "5": PHASE_5}[phase]
    put_back = {k: v for k, v in QSTASH.items() if k not in before}

    after = load_settings(**before, **put_back, job_provider="qstash")

    assert resolve_chain(after).primary is Provider.QSTASH
    assert rollback_plan(after).steps[0].startswith("nothing to roll back")


def test_job_provider_qstash_after_phase_5_names_everything_that_must_come_back() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**PHASE_5, job_provider="qstash")

    assert (
        "JOB_PROVIDER=qstash needs QSTASH_TOKEN: to publish to QStash again, put back "
        "QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY, QSTASH_NEXT_SIGNING_KEY, WEBHOOK_URL"
    ) in str(raised.value)


def test_a_deployment_on_celery_alone_has_no_rollback() -> None:
    assert steps()[0].startswith("no rollback applies")
