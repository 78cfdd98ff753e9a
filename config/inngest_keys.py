"""What the Inngest variables must be together (each alone: config/switches.py)."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class InngestSettings(Protocol):
    """The settings the checks below read."""

    @property
    def inngest_is_dev(self) -> bool: ...

    inngest_event_key: SecretStr | None
    inngest_signing_key: SecretStr | None
    inngest_serve_origin: str | None
    inngest_base_url: str | None


def inngest_problems(settings: InngestSettings) -> list[str]:
    """What is wrong with the Inngest variables together: dev mode beside a key, or, in
    cloud mode, a key without what verifying or registering needs."""
    if settings.inngest_is_dev and settings.inngest_signing_key is not None:
        # A deployment's key beside dev mode: /api/inngest would run unsigned calls.
        return [
            "INNGEST_DEV and INNGEST_SIGNING_KEY are both set: in dev mode /api/inngest "
            "verifies no signature, so the key would protect nothing; unset INNGEST_DEV "
            "for a server that signs (cloud mode), or INNGEST_SIGNING_KEY for a dev server"
        ]
    if settings.inngest_is_dev:
        return []  # a dev server signs and verifies nothing
    problems = []
    if settings.inngest_event_key is not None and settings.inngest_signing_key is None:
        problems.append(
            "INNGEST_SIGNING_KEY is required when INNGEST_EVENT_KEY is set in cloud "
            "mode: the server's calls to /api/inngest must be verified; use the "
            "server's --signing-key, or set INNGEST_DEV=1 for a dev server"
        )
    if settings.inngest_signing_key is not None and settings.inngest_serve_origin is None:
        problems.append(
            "INNGEST_SERVE_ORIGIN is required when INNGEST_SIGNING_KEY is set in cloud "
            "mode: it is the origin Inngest calls this app at (e.g. "
            "https://app.example.com, or http://web:8000 inside a compose network), "
            "never taken from a request's Host header"
        )
    if settings.inngest_base_url is not None and not (
        settings.inngest_event_key or settings.inngest_signing_key
    ):
        problems.append(
            "INNGEST_BASE_URL is set but neither INNGEST_EVENT_KEY (to publish) nor "
            "INNGEST_SIGNING_KEY (to serve /api/inngest) is: set the server's keys, "
            "or INNGEST_DEV=1 for a dev server"
        )
    return problems
