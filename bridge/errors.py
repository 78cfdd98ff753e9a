"""Errors of the enqueue API. Each says what failed and what the caller can do."""

from __future__ import annotations

from config import Provider


class InvalidPayload(ValueError):
    """The payload does not match the job's model; nothing was published."""


class PublishError(Exception):
    """A provider did not accept the job."""

    def __init__(self, provider: Provider, message: str, *, permanent: bool = False) -> None:
        super().__init__(f"{provider.value}: {message}")
        self.provider = provider
        self.permanent = permanent


class DelayUnsupported(PublishError):
    """The provider cannot hold the job until the requested time."""


class AllProvidersFailed(PublishError):
    def __init__(self, errors: list[PublishError]) -> None:
        self.errors = errors
        detail = "; ".join(str(error) for error in errors)
        Exception.__init__(self, f"every provider in the chain failed: {detail}")
        self.provider = errors[-1].provider
        self.permanent = all(error.permanent for error in errors)
