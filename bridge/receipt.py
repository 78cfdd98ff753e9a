"""What an enqueue returns: which provider took the job, and its id there."""

from __future__ import annotations

from dataclasses import dataclass

from config import Provider


@dataclass(frozen=True)
class Receipt:
    provider: Provider
    id: str
    deduplicated: bool = False

    @classmethod
    def of(cls, provider: str, id: str) -> Receipt:
        return cls(Provider(provider), id)
