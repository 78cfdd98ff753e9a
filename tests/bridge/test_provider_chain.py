"""The provider chain is a pure function of Settings: order, failover and reasons.

The session environment sets REDIS_URL and INTERNAL_API_KEY but no INNGEST_*,
QSTASH_* or INTERNAL_API_URL, so "nothing configured" means Celery on Redis.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Provider, ProviderChain, load_settings, resolve_chain
from tests.support import env as test_env

INNGEST: dict[str, object] = {name.lower(): value for name, value in test_env.INNGEST_ENV.items()}
QSTASH: dict[str, object] = {name.lower(): value for name, value in test_env.QSTASH_ENV.items()}
HTTP: dict[str, object] = {
    "internal_api_url": "http://web:8000",
    "internal_api_key": test_env.INTERNAL_API_KEY,
}

CELERY_ONLY = (Provider.CELERY,)
ALL_FOUR = (Provider.INNGEST, Provider.QSTASH, Provider.CELERY, Provider.HTTP)

COMBINATIONS: dict[str, dict[str, object]] = {
    "nothing": {},
    "qstash": QSTASH,
    "inngest": INNGEST,
    "inngest-dev": {"inngest_dev": "1"},
    "inngest+qstash": {**INNGEST, **QSTASH},
    "inngest+qstash+failover": {**INNGEST, **QSTASH, "job_failover": True},
    "everything+failover": {**INNGEST, **QSTASH, **HTTP, "job_failover": True},
    "http": HTTP,
    "explicit-celery+inngest": {**INNGEST, "job_provider": "celery"},
    "explicit-http+everything+failover": {
        **INNGEST,
        **QSTASH,
        **HTTP,
        "job_provider": "http",
        "job_failover": True,
    },
}


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read `.env` from the working directory: run where there is none."""
    monkeypatch.chdir(tmp_path)


def chain(**overrides: object) -> ProviderChain:
    return resolve_chain(load_settings(**overrides))


def reason(chain_: ProviderChain, provider: Provider) -> str:
    return next(link.reason for link in chain_.links if link.provider is provider)


# Auto mode


def test_nothing_configured_publishes_with_celery_alone() -> None:
    assert chain().providers == CELERY_ONLY


def test_nothing_configured_with_failover_is_still_celery_alone() -> None:
    assert chain(job_failover=True).providers == CELERY_ONLY


def test_qstash_only_publishes_with_qstash() -> None:
    assert chain(**QSTASH).providers == (Provider.QSTASH,)


def test_inngest_dev_server_publishes_with_inngest() -> None:
    assert chain(inngest_dev="1").providers == (Provider.INNGEST,)


def test_inngest_and_qstash_without_failover_publishes_with_inngest_alone() -> None:
    assert chain(**INNGEST, **QSTASH).providers == (Provider.INNGEST,)


def test_inngest_and_qstash_with_failover_falls_back_to_qstash_then_celery() -> None:
    result = chain(**INNGEST, **QSTASH, job_failover=True)

    assert result.providers == (Provider.INNGEST, Provider.QSTASH, Provider.CELERY)
    assert result.failover


def test_direct_http_comes_last_when_internal_api_url_and_key_are_set() -> None:
    assert chain(**INNGEST, **QSTASH, **HTTP, job_failover=True).providers == ALL_FOUR


def test_internal_api_key_without_url_leaves_direct_http_out() -> None:
    result = chain(**INNGEST, **QSTASH, job_failover=True)

    assert Provider.HTTP not in result.providers
    assert reason(result, Provider.HTTP) == "needs INTERNAL_API_URL and INTERNAL_API_KEY"


def test_direct_http_alone_never_goes_before_celery() -> None:
    assert chain(**HTTP, job_failover=True).providers == (Provider.CELERY, Provider.HTTP)


# Explicit JOB_PROVIDER


def test_explicit_celery_goes_first_even_with_inngest_configured() -> None:
    result = chain(**INNGEST, job_provider="celery")

    assert result.providers == CELERY_ONLY
    assert reason(result, Provider.CELERY).startswith("explicit JOB_PROVIDER: ")


def test_explicit_provider_with_failover_keeps_the_others_in_preference_order() -> None:
    result = chain(**INNGEST, **QSTASH, **HTTP, job_provider="http", job_failover=True)

    assert result.providers == (Provider.HTTP, Provider.INNGEST, Provider.QSTASH, Provider.CELERY)


def test_explicit_qstash_goes_before_configured_inngest() -> None:
    assert chain(**INNGEST, **QSTASH, job_provider="qstash").primary is Provider.QSTASH


# Reasons


@pytest.mark.parametrize("overrides", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_provider_has_exactly_one_link_with_a_reason(overrides: dict[str, object]) -> None:
    result = chain(**overrides)

    assert sorted(link.provider for link in result.links) == sorted(Provider)
    assert all(link.reason.strip() for link in result.links)


@pytest.mark.parametrize("overrides", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_used_links_come_first_in_publish_order(overrides: dict[str, object]) -> None:
    result = chain(**overrides)
    used = tuple(link.provider for link in result.links if link.used)

    assert used == result.providers
    assert all(link.used for link in result.links[: len(used)])


def test_primary_reason_says_it_was_the_first_configured() -> None:
    result = chain(**INNGEST, **QSTASH)

    assert reason(result, Provider.INNGEST) == (
        "first configured: INNGEST_EVENT_KEY or INNGEST_DEV set (cloud/self-hosted)"
    )


def test_inngest_reason_tells_dev_server_from_cloud() -> None:
    assert "(dev server)" in reason(chain(inngest_dev="1"), Provider.INNGEST)


def test_failover_links_say_failover() -> None:
    result = chain(**INNGEST, **QSTASH, job_failover=True)

    assert reason(result, Provider.QSTASH) == "failover: QSTASH_TOKEN set"
    assert reason(result, Provider.CELERY) == "failover: REDIS_URL set"


@pytest.mark.parametrize("provider", [Provider.QSTASH, Provider.CELERY, Provider.HTTP])
def test_configured_but_unused_provider_says_failover_is_off(provider: Provider) -> None:
    result = chain(**INNGEST, **QSTASH, **HTTP)
    link = next(link for link in result.links if link.provider is provider)

    assert not link.used
    assert link.reason.startswith("configured but JOB_FAILOVER is off: ")


def test_unconfigured_provider_names_the_variables_it_needs() -> None:
    result = chain()

    assert reason(result, Provider.INNGEST) == ("no INNGEST_EVENT_KEY or INNGEST_DEV")
    assert reason(result, Provider.QSTASH) == "no QSTASH_TOKEN"


def test_celery_without_redis_url_says_it_uses_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL")

    assert reason(chain(), Provider.CELERY) == (
        "first configured: embedded filesystem broker (no REDIS_URL)"
    )


# Rollback during the migration is an environment change


@pytest.fixture
def both_configured(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in {**test_env.INNGEST_ENV, **test_env.QSTASH_ENV}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_with_inngest_and_qstash_in_the_environment_inngest_is_primary(
    both_configured: pytest.MonkeyPatch,
) -> None:
    assert chain().primary is Provider.INNGEST


def test_removing_inngest_variables_rolls_back_to_qstash(
    both_configured: pytest.MonkeyPatch,
) -> None:
    for name in test_env.INNGEST_ENV:
        both_configured.delenv(name)

    assert chain().primary is Provider.QSTASH


def test_removing_qstash_variables_too_falls_back_to_celery(
    both_configured: pytest.MonkeyPatch,
) -> None:
    for name in [*test_env.INNGEST_ENV, *test_env.QSTASH_ENV]:
        both_configured.delenv(name)

    assert chain().providers == CELERY_ONLY


def test_signing_key_alone_serves_but_does_not_publish() -> None:
    # A rollback removes INNGEST_EVENT_KEY: runs Inngest already has still reach the app.
    result = chain(
        inngest_signing_key=INNGEST["inngest_signing_key"],
        inngest_serve_origin=INNGEST["inngest_serve_origin"],
        **QSTASH,
    )

    assert result.primary is Provider.QSTASH
    assert reason(result, Provider.INNGEST) == "no INNGEST_EVENT_KEY or INNGEST_DEV"
