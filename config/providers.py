"""Which providers publish jobs, in which order, and why: a pure function of Settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.provider import Provider

if TYPE_CHECKING:
    from config.settings import Settings


@dataclass(frozen=True)
class Link:
    provider: Provider
    used: bool
    reason: str


@dataclass(frozen=True)
class ProviderChain:
    """`providers` in publish order; `links` explains every provider, used or not."""

    providers: tuple[Provider, ...]
    links: tuple[Link, ...]
    failover: bool

    @property
    def primary(self) -> Provider:
        return self.providers[0]


def _inngest(settings: Settings) -> tuple[bool, str]:
    if not settings.inngest_publishes:
        return False, "no INNGEST_EVENT_KEY or INNGEST_DEV"
    mode = "dev server" if settings.inngest_is_dev else "cloud/self-hosted"
    return True, f"INNGEST_EVENT_KEY or INNGEST_DEV set ({mode})"


def _qstash(settings: Settings) -> tuple[bool, str]:
    if settings.qstash_token is None:
        return False, "no QSTASH_TOKEN"
    return True, "QSTASH_TOKEN set"


def _celery(settings: Settings) -> tuple[bool, str]:
    if settings.broker_kind == "filesystem":
        return True, "embedded filesystem broker (no REDIS_URL)"
    if settings.broker_url == settings.redis_url:
        return True, "REDIS_URL set"
    broker = "RabbitMQ" if settings.broker_kind == "rabbitmq" else "Redis"
    if settings.redis_url:
        return True, f"BROKER_URL set ({broker}), REDIS_URL for the ledger and limits"
    # What the shim does without Redis, said where the operator looks first.
    return True, (
        f"BROKER_URL set ({broker}); no REDIS_URL: ledger and replay guard in the "
        "database, per-key limits off"
    )


def _http(settings: Settings) -> tuple[bool, str]:
    if not settings.http_configured:
        return False, "needs INTERNAL_API_URL and INTERNAL_API_KEY"
    return True, "INTERNAL_API_URL and INTERNAL_API_KEY set"


# The providers, one row each, in the order auto mode prefers them: production, legacy,
# local, last resort. Each row says whether Settings configure it, and why.
PROVIDERS: tuple[tuple[Provider, Callable[[Settings], tuple[bool, str]]], ...] = (
    (Provider.INNGEST, _inngest),
    (Provider.QSTASH, _qstash),
    (Provider.CELERY, _celery),
    (Provider.HTTP, _http),
)
PREFERENCE = tuple(provider for provider, _ in PROVIDERS)


def _availability(settings: Settings) -> dict[Provider, tuple[bool, str]]:
    return {provider: available(settings) for provider, available in PROVIDERS}


def resolve_chain(settings: Settings) -> ProviderChain:
    """Auto: every configured provider in PREFERENCE order. Explicit: that one first."""
    available = _availability(settings)
    order = [p for p in PREFERENCE if available[p][0]]
    if settings.job_provider != "auto":
        chosen = Provider(settings.job_provider)
        order.remove(chosen)
        order.insert(0, chosen)
    if not settings.job_failover:
        order = order[:1]
    links = []
    for provider in PREFERENCE:
        ok, why = available[provider]
        if provider == order[0]:
            how = "explicit JOB_PROVIDER" if settings.job_provider != "auto" else "first configured"
            links.append(Link(provider, True, f"{how}: {why}"))
        elif provider in order:
            links.append(Link(provider, True, f"failover: {why}"))
        elif ok:
            links.append(Link(provider, False, f"configured but JOB_FAILOVER is off: {why}"))
        else:
            links.append(Link(provider, False, why))
    links.sort(key=lambda link: order.index(link.provider) if link.provider in order else 99)
    return ProviderChain(tuple(order), tuple(links), settings.job_failover)
