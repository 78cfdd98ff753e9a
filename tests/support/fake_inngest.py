"""Inngest played by the test: its event API (via respx) and its executor loop.

Faithful to docs/PROTOCOLS.md, "1. Inngest": requests to
`/api/inngest?fnId=<app>-<fn>&stepId=step` carry `X-Inngest-Signature: t=<unix>&s=<hmac>`
(signed with the SDK's own helper, as the server does); a 206 lists step ops, each
StepRun memoised as {"data": ...}, each Sleep as null once its wake time has come;
StepPlanned is re-posted with its step id; 500 is retried unless
`x-inngest-no-retry: true`; 200 ends the run.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import respx
from inngest._internal.net import sign_request

from tests.support import env
from tests.support.wait import wait_until_time

APP_ID = "inbox-zero"
_CANCEL_IF = re.compile(r"event\.data\.(?P<event_field>\w+) == async\.data\.(?P<async_field>\w+)")


@dataclass
class RunResult:
    status: int
    output: Any
    attempts: int
    sleeps: list[datetime] = field(default_factory=list)
    responses: list[int] = field(default_factory=list)
    no_retry: bool = False


class FakeInngest:
    """Records events sent to the event API; `run` executes one like the server would."""

    def __init__(self, router: respx.MockRouter, *, down: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.down = down
        # Its root answers like any Inngest server's does (the migration's reachability check).
        router.get(url__startswith=env.INNGEST_API).respond(200, text="Inngest")
        router.post(f"{env.INNGEST_API}/e/{env.INNGEST_EVENT_KEY}").mock(side_effect=self._receive)

    def _receive(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        batch = json.loads(request.content)
        ids = []
        for event in batch:
            self.events.append(event)
            ids.append(event.get("id") or f"01{uuid.uuid4().hex[:24].upper()}")
        return httpx.Response(200, json={"ids": ids, "status": 200})

    def cancels(self, cancel_on: list[dict[str, Any]], trigger: dict[str, Any]) -> bool:
        """Whether an event received so far cancels the run `trigger` started, by the
        function's `cancel` config as registered ([{"event", "if"}]): an event of that
        name for which the expression holds, `event` being the trigger and `async` the
        cancelling event. Only the comparisons Inngest documents for this use
        (`event.data.X == async.data.Y`) are understood; anything else fails the test."""
        for rule in cancel_on:
            match = _CANCEL_IF.fullmatch(rule.get("if") or "")
            if match is None:
                raise AssertionError(f"the double does not evaluate cancel if {rule!r}")
            ours, theirs = match.group("event_field"), match.group("async_field")
            value = trigger.get("data", {}).get(ours)
            cancelling = [e for e in self.events if e["name"] == rule["event"]]
            if value is not None and any(
                e.get("data", {}).get(theirs) == value for e in cancelling
            ):
                return True
        return False

    @staticmethod
    def post(
        app_url: str,
        fn_id: str,
        body: dict[str, Any],
        *,
        step_id: str = "step",
        signature: str | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["X-Inngest-Signature"] = signature or str(
                sign_request(raw, env.INNGEST_SIGNING_KEY)
            )
        return httpx.post(
            f"{app_url}/api/inngest",
            params={"fnId": f"{APP_ID}-{fn_id}", "stepId": step_id},
            content=raw,
            headers=headers,
            timeout=30,
        )

    @staticmethod
    def request_body(
        event: dict[str, Any], run_id: str, attempt: int, steps: dict[str, Any], stack: list[str]
    ) -> dict[str, Any]:
        full_event = {"ts": int(time.time() * 1000), "id": event.get("id", ""), **event}
        return {
            "event": full_event,
            "events": [full_event],
            "steps": steps,
            "ctx": {
                "run_id": run_id,
                "attempt": attempt,
                "max_attempts": 4,
                "disable_immediate_execution": False,
                "stack": {"stack": stack},
            },
            "use_api": False,
        }

    def run(self, app_url: str, fn_id: str, event: dict[str, Any], **options: Any) -> RunResult:
        return run_function(app_url, fn_id, event, **options)


def run_function(
    app_url: str,
    fn_id: str,
    event: dict[str, Any],
    *,
    max_attempts: int = 4,
    max_requests: int = 20,
) -> RunResult:
    run_id = f"01RUN{uuid.uuid4().hex[:20].upper()}"
    steps: dict[str, Any] = {}
    stack: list[str] = []
    attempt = 0
    result = RunResult(status=0, output=None, attempts=1)
    step_id = "step"
    for _ in range(max_requests):
        response = FakeInngest.post(
            app_url,
            fn_id,
            FakeInngest.request_body(event, run_id, attempt, steps, stack),
            step_id=step_id,
        )
        result.responses.append(response.status_code)
        step_id = "step"
        if response.status_code == 200:
            result.status, result.output = 200, response.json()
            return result
        if response.status_code == 206:
            for op in response.json():
                if op["op"] == "Sleep":
                    wake = datetime.fromisoformat(op["name"].replace("Z", "+00:00"))
                    result.sleeps.append(wake)
                    wait_until_time(wake.timestamp())
                    steps[op["id"]] = None
                elif op["op"] == "StepRun":
                    steps[op["id"]] = {"data": op.get("data")}
                elif op["op"] == "StepPlanned":
                    step_id = op["id"]
                    continue
                else:
                    raise AssertionError(f"unexpected op {op}")
                stack.append(op["id"])
            continue
        if response.status_code == 500:
            result.status, result.output = 500, response.json()
            if response.headers.get("x-inngest-no-retry") == "true" or attempt + 1 >= max_attempts:
                result.no_retry = response.headers.get("x-inngest-no-retry") == "true"
                return result
            retry_after = response.headers.get("retry-after")
            if retry_after:
                wake = datetime.fromisoformat(retry_after.replace("Z", "+00:00"))
                wait_until_time(wake.timestamp())
            attempt += 1
            result.attempts += 1
            continue
        result.status, result.output = response.status_code, response.text
        return result
    raise AssertionError(f"run did not finish in {max_requests} requests: {result}")
