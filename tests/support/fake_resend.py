"""Resend's email API played by the test (respx): `POST https://api.resend.com/emails`
answered as Resend documents it. An email gets a new id; a repeated Idempotency-Key gets
the first email's id again and sends nothing, as Resend does for 24 hours. Errors come in
Resend's error shape ({"statusCode", "name", "message"}), queued with `fail_next`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import respx

EMAILS_URL = "https://api.resend.com/emails"


class FakeResend:
    def __init__(self, router: respx.MockRouter) -> None:
        self.requests: list[httpx.Request] = []  # every POST, repeats included
        self.sent: list[dict[str, Any]] = []  # the bodies of the emails it sent
        self._ids: dict[str, str] = {}  # idempotency key -> the id it answered
        self._failures: list[httpx.Response] = []
        self.route = router.post(EMAILS_URL).mock(side_effect=self._answer)

    def fail_next(
        self, status: int, name: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request with this error instead of sending."""
        body = {"statusCode": status, "name": name, "message": message}
        self._failures.append(httpx.Response(status, json=body, headers=headers))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._failures:
            return self._failures.pop(0)
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self._ids:
            return httpx.Response(200, json={"id": self._ids[key]})
        email_id = str(uuid.uuid4())
        if key is not None:
            self._ids[key] = email_id
        self.sent.append(json.loads(request.content))
        return httpx.Response(200, json={"id": email_id})
