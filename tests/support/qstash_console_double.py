"""QStash's console API played by the test (via respx), as its REST API documents it and
the qstash SDK 3.4.0 reads it: the logs, the dead-letter queue and the schedules.

- GET /v2/logs (the SDK still calls it by its older name, /v2/events): newest first,
  `fromDate`/`toDate` in Unix milliseconds, `count` at most 1000, `cursor` for the next
  page; answers {"cursor"?, "events": [...]}, each with its body base64-encoded.
- GET /v2/dlq (`count` at most 100, `cursor`) -> {"cursor"?, "messages": [...]};
  GET /v2/dlq/{dlqId} -> the message; DELETE /v2/dlq/{dlqId}; DELETE /v2/dlq with
  {"dlqIds": [...]} -> {"deleted": n}. An unknown id is 404.
- GET /v2/schedules -> [schedule, ...].
Every request needs `Authorization: Bearer <QSTASH_TOKEN>` (401 otherwise); `down` makes
the host unreachable; `fail_deletes` answers each DELETE of one entry with a 500.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import respx

from tests.support import env

HOST = httpx.URL(env.QSTASH_API).host
LOG_PAGE_MAX = 1000
DLQ_PAGE_MAX = 100


def now_ms() -> int:
    return int(time.time() * 1000)


class QStashConsole:
    def __init__(self, router: respx.MockRouter, *, down: bool = False) -> None:
        self.logs: list[dict[str, Any]] = []
        self.dead: dict[str, dict[str, Any]] = {}  # by dlq id, oldest first
        self.schedules: list[dict[str, Any]] = []
        self.down = down
        self.fail_deletes = False
        self.log_queries: list[dict[str, str]] = []  # each GET's query parameters
        self.dlq_pages_served = 0
        self.deleted: list[str] = []
        for path in ("/v2/logs", "/v2/events"):
            router.get(host=HOST, path=path).mock(side_effect=self._guarded(self._logs))
        router.get(host=HOST, path="/v2/dlq").mock(side_effect=self._guarded(self._dlq))
        router.delete(host=HOST, path="/v2/dlq").mock(side_effect=self._guarded(self._bulk))
        one = r"^/v2/dlq/(?P<dlq_id>[^/]+)$"
        router.get(host=HOST, path__regex=one).mock(side_effect=self._guarded(self._dlq_get))
        router.delete(host=HOST, path__regex=one).mock(side_effect=self._guarded(self._dlq_del))
        router.get(host=HOST, path="/v2/schedules").mock(side_effect=self._guarded(self._plans))

    # What the test puts in QStash

    def log(self, message_id: str, state: str, url: str, *, at: int | None = None) -> None:
        """One log entry (kept newest first, as the API lists them)."""
        entry = {
            "time": at if at is not None else now_ms(),
            "messageId": message_id,
            "state": state,
            "url": url,
            "header": {"Content-Type": ["application/json"]},
            "body": base64.b64encode(b"{}").decode(),
        }
        self.logs.append(entry)
        self.logs.sort(key=lambda e: e["time"], reverse=True)

    def dead_letter(
        self,
        dlq_id: str,
        url: str,
        body: dict[str, Any] | str,
        *,
        message_id: str | None = None,
        headers: dict[str, list[str]] | None = None,
        status: int = 500,
    ) -> dict[str, Any]:
        created = now_ms()
        entry = {
            "dlqId": dlq_id,
            "messageId": message_id or f"msg_{dlq_id}",
            "url": url,
            "method": "POST",
            "header": headers or {"Content-Type": ["application/json"]},
            "body": body if isinstance(body, str) else json.dumps(body),
            "maxRetries": 3,
            "notBefore": created,
            "createdAt": created,
            "responseStatus": status,
            "responseBody": '{"error": "failed"}',
        }
        self.dead[dlq_id] = entry
        return entry

    def schedule(self, schedule_id: str, destination: str, cron: str, **more: Any) -> None:
        self.schedules.append(
            {
                "scheduleId": schedule_id,
                "destination": destination,
                "cron": cron,
                "createdAt": now_ms(),
                "method": "POST",
                "retries": 3,
                **more,
            }
        )

    # The API

    def _guarded(self, answer: Any) -> Any:
        def handle(request: httpx.Request, **match: Any) -> httpx.Response:
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            if request.headers.get("authorization") != f"Bearer {env.QSTASH_TOKEN}":
                return httpx.Response(401, json={"error": "Unauthorized"})
            response: httpx.Response = answer(request, **match)
            return response

        return handle

    def _logs(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.log_queries.append(params)
        entries = [
            e
            for e in self.logs
            if e["time"] >= int(params.get("fromDate", 0))
            and e["time"] <= int(params.get("toDate", 2**62))
        ]
        count = min(LOG_PAGE_MAX, int(params.get("count", LOG_PAGE_MAX)))
        start = int(params.get("cursor", "0"))
        body: dict[str, Any] = {"events": entries[start : start + count]}
        if start + count < len(entries):
            body["cursor"] = str(start + count)
        return httpx.Response(200, json=body)

    def _dlq(self, request: httpx.Request) -> httpx.Response:
        self.dlq_pages_served += 1
        count = min(DLQ_PAGE_MAX, int(request.url.params.get("count", DLQ_PAGE_MAX)))
        start = int(request.url.params.get("cursor", "0"))
        entries = list(self.dead.values())
        body: dict[str, Any] = {"messages": entries[start : start + count]}
        if start + count < len(entries):
            body["cursor"] = str(start + count)
        return httpx.Response(200, json=body)

    def _dlq_get(self, request: httpx.Request, dlq_id: str) -> httpx.Response:
        if dlq_id not in self.dead:
            return httpx.Response(404, json={"error": "message not found"})
        return httpx.Response(200, json=self.dead[dlq_id])

    def _dlq_del(self, request: httpx.Request, dlq_id: str) -> httpx.Response:
        if self.fail_deletes:
            return httpx.Response(500, json={"error": "internal error"})
        if self.dead.pop(dlq_id, None) is None:
            return httpx.Response(404, json={"error": "message not found"})
        self.deleted.append(dlq_id)
        return httpx.Response(200)

    def _bulk(self, request: httpx.Request) -> httpx.Response:
        gone = [i for i in json.loads(request.content)["dlqIds"] if self.dead.pop(i, None)]
        self.deleted.extend(gone)
        return httpx.Response(200, json={"deleted": len(gone)})

    def _plans(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.schedules)
