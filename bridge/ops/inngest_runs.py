"""Which of the app's Inngest events still have a run Inngest holds, by Inngest's REST
API (`GET /v1/events/{event id}/runs`, authorised as the SDK authorises its API calls:
`Bearer` + the hashed signing key). `jobbridge audit` asks it for the deliveries the app
no longer needs (an action cancelled or done before its time), whose runs would
otherwise sleep on until their time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from inngest._internal.transforms import hash_signing_key

from bridge.ops.measure import describe
from config import Settings

CLOUD_API = "https://api.inngest.com"
# Inngest's states of a run that has not ended; a sleeping run is Running.
NOT_ENDED = frozenset({"Running", "Queued", "Paused"})


@dataclass(frozen=True)
class HeldRuns:
    checked: int  # events asked about
    candidates: int  # events that could have a held run (checked is at most this)
    held: int  # runs not ended among the checked events' runs
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "candidates": self.candidates,
            "held": self.held,
            "error": self.error,
        }

    def line(self) -> str:
        if self.error is not None:
            return f"inngest: held runs unknown: {self.error}"
        scope = f"{self.checked} events" + (
            f" of {self.candidates} (the soonest)" if self.checked < self.candidates else ""
        )
        return f"inngest: {self.held} runs still held for actions no longer PENDING ({scope})"


def held_runs(
    settings: Settings, event_ids: Sequence[str], candidates: int, timeout: float = 5.0
) -> HeldRuns:
    """Runs not ended among those `event_ids` started. Needs INNGEST_SIGNING_KEY."""
    if settings.inngest_signing_key is None:
        return HeldRuns(0, candidates, 0, "no INNGEST_SIGNING_KEY to ask Inngest with")
    key = settings.inngest_signing_key.get_secret_value()
    headers = {"Authorization": f"Bearer {hash_signing_key(key)}"}
    base = (settings.inngest_base_url or CLOUD_API).rstrip("/")
    held = 0
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
            for event_id in event_ids:
                response = client.get(f"/v1/events/{event_id}/runs")
                response.raise_for_status()
                runs = response.json().get("data") or []
                held += sum(1 for run in runs if run.get("status") in NOT_ENDED)
    except (httpx.HTTPError, ValueError) as error:
        return HeldRuns(0, candidates, 0, describe(error))
    return HeldRuns(len(event_ids), candidates, held)
