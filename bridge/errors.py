"""Errors of the enqueue API (each says what failed and what the caller can do), and how
any error is told in one line."""

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


def first_line(error: BaseException) -> str:
    """The error's first line of text (its type's name when it has none): what goes where
    one line is read, such as a provider's answer or an operator's terminal."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
