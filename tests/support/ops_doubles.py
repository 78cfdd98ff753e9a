"""Test doubles for the operator commands: QStash's queue and DLQ API (via respx), and an
Inngest API whose registration fails (a real server, for a real web process to call)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import respx

from tests.support import env
from tests.support.inngest_api import InngestApi


def dlq_message(number: int) -> dict[str, Any]:
    """A DLQ entry as QStash lists it (the fields the SDK's parser requires, and a few)."""
    now = int(time.time() * 1000)
    return {
        "messageId": f"msg_dead_{number}",
        "dlqId": f"dlq_{number}",
        "url": f"{env.WEBHOOK_URL}/api/scheduled-actions/execute",
        "method": "POST",
        "body": json.dumps({"scheduledActionId": f"a{number}"}),
        "maxRetries": 3,
        "notBefore": now,
        "createdAt": now,
        "responseStatus": 489,
    }


class QStashAdmin:
    """GET /v2/queues and GET /v2/dlq (cursor-paged, `count` per page at most 100)."""

    def __init__(
        self,
        router: respx.MockRouter,
        *,
        queues: list[dict[str, Any]] | None = None,
        dead_letters: int = 0,
        failing: bool = False,
    ) -> None:
        self.queues = queues or []
        self.dead = [dlq_message(n) for n in range(dead_letters)]
        self.failing = failing
        self.dlq_pages_served = 0
        router.get(f"{env.QSTASH_API}/v2/queues").mock(side_effect=self._queues)
        router.get(f"{env.QSTASH_API}/v2/dlq").mock(side_effect=self._dlq)

    def _refused(self, request: httpx.Request) -> httpx.Response | None:
        if request.headers.get("authorization") != f"Bearer {env.QSTASH_TOKEN}":
            return httpx.Response(401, json={"error": "bad token"})
        if self.failing:
            return httpx.Response(500, json={"error": "qstash is down"})
        return None

    def _queues(self, request: httpx.Request) -> httpx.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        now = int(time.time() * 1000)
        return httpx.Response(
            200,
            json=[
                {"createdAt": now, "updatedAt": now, "parallelism": 1, "paused": False, **queue}
                for queue in self.queues
            ],
        )

    def _dlq(self, request: httpx.Request) -> httpx.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        count = min(100, int(request.url.params.get("count", "100")))
        start = int(request.url.params.get("cursor", "0"))
        page = self.dead[start : start + count]
        self.dlq_pages_served += 1
        body: dict[str, Any] = {"messages": page}
        if start + count < len(self.dead):
            body["cursor"] = str(start + count)
        return httpx.Response(200, json=body)


class FailingInngestApi(InngestApi):
    """An Inngest API that refuses every registration: the PUT still answers 200."""

    ERROR = "registration refused by the test's Inngest API"

    def __init__(self) -> None:
        super().__init__(error=self.ERROR)

    @property
    def calls(self) -> int:
        return len(self.registrations)


class InngestRuns:
    """Inngest's REST API for the runs of an event (`GET /v1/events/{id}/runs`), via
    respx: `{"data": [{"run_id", "status", ...}]}`, authorised as Inngest authorises
    the SDK's API calls (`Bearer` + the hashed signing key), 401 otherwise."""

    def __init__(self, router: respx.MockRouter, runs: dict[str, list[str]]) -> None:
        """`runs`: event id -> the statuses of the runs it started."""
        self.runs = runs
        self.asked: list[str] = []
        key = env.INNGEST_SIGNING_KEY.removeprefix("signkey-test-")
        self.authorization = "Bearer " + hashlib.sha256(bytes.fromhex(key)).hexdigest()
        router.get(url__regex=rf"^{env.INNGEST_API}/v1/events/[^/]+/runs$").mock(
            side_effect=self._runs
        )

    def _runs(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != self.authorization:
            return httpx.Response(401, json={"error": "unauthorized"})
        event_id = request.url.path.split("/")[3]
        self.asked.append(event_id)
        data = [
            {"run_id": f"run-{event_id}-{n}", "event_id": event_id, "status": status}
            for n, status in enumerate(self.runs.get(event_id, []))
        ]
        return httpx.Response(200, json={"data": data, "metadata": {}})
