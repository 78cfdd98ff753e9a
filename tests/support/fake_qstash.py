"""QStash played by the test: its publish API (via respx) and its signed deliveries.

Faithful to docs/PROTOCOLS.md, "2. Upstash QStash": messages are POSTed to the
destination with an HS256 JWT in `Upstash-Signature` over sha256(raw body),
`Upstash-Message-Id`, `Upstash-Retried`; a 489 with `Upstash-NonRetryable-Error` stops
retries; another non-2xx is retried, after `Retry-After` seconds when given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import respx

from tests.support import env
from tests.support.wait import wait_until_time


def mint_signature(
    raw_body: bytes,
    url: str,
    *,
    key: str = env.QSTASH_CURRENT_KEY,
    now: int | None = None,
    lifetime: int = 300,
    claims: dict[str, Any] | None = None,
) -> str:
    now = int(time.time()) if now is None else now
    body_hash = base64.urlsafe_b64encode(hashlib.sha256(raw_body).digest()).decode().rstrip("=")
    payload = {
        "iss": "Upstash",
        "sub": url,
        "body": body_hash,
        "exp": now + lifetime,
        "nbf": now,
        "iat": now,
        "jti": f"jwt_{uuid.uuid4().hex}",
    }
    payload.update(claims or {})
    return jwt.encode(payload, key, algorithm="HS256")


def signed_headers(raw_body: bytes, route: str, message_id: str | None = None) -> dict[str, str]:
    """The headers of a QStash delivery of `raw_body` to `route`: JSON, a fresh signature
    over WEBHOOK_URL + route, and a message id (a new one unless given)."""
    return {
        "Content-Type": "application/json",
        "Upstash-Signature": mint_signature(raw_body, env.WEBHOOK_URL + route),
        "Upstash-Message-Id": message_id or f"msg_{uuid.uuid4().hex}",
        "Upstash-Retried": "0",
    }


@dataclass
class QueuedMessage:
    message_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    retried: int = 0
    responses: list[int] = field(default_factory=list)

    @property
    def not_before(self) -> int | None:
        value = self.headers.get("upstash-not-before")
        return int(value) if value else None

    @property
    def route(self) -> str:
        return self.url.removeprefix(env.WEBHOOK_URL)


def deliver(
    message: QueuedMessage,
    app_url: str,
    *,
    signature: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One delivery attempt, signed for the public URL, sent to the app's real address."""
    headers = {
        "Content-Type": message.headers.get("content-type", "application/json"),
        "Upstash-Message-Id": message.message_id,
        "Upstash-Retried": str(message.retried),
        "Upstash-Signature": signature or mint_signature(message.body, message.url),
        **(extra_headers or {}),
    }
    response = httpx.post(
        app_url + message.route, content=message.body, headers=headers, timeout=30
    )
    message.responses.append(response.status_code)
    return response


def deliver_until_final(
    message: QueuedMessage, app_url: str, max_attempts: int = 5
) -> httpx.Response:
    """Deliver as QStash does: wait for not_before, retry non-2xx (after Retry-After)."""
    if message.not_before:
        wait_until_time(message.not_before)
    for _ in range(max_attempts):
        response = deliver(message, app_url)
        if (
            response.status_code < 300
            or response.headers.get("upstash-nonretryable-error") == "true"
        ):
            return response
        wait_until_time(time.time() + float(response.headers.get("retry-after", "0.2")))
        message.retried += 1
    return response


class FakeQStash:
    """Records published messages; `deliver` sends one to the app as QStash would."""

    def __init__(self, router: respx.MockRouter, *, fail_publish: bool = False) -> None:
        self.messages: list[QueuedMessage] = []
        self.cancelled: list[str] = []
        self._dedup: dict[str, str] = {}
        self.fail_publish = fail_publish
        router.post(url__startswith=f"{env.QSTASH_API}/v2/publish/").mock(side_effect=self._publish)
        router.post(f"{env.QSTASH_API}/v2/batch").mock(side_effect=self._batch)
        router.delete(url__startswith=f"{env.QSTASH_API}/v2/messages/").mock(
            side_effect=self._cancel
        )

    def _accept(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        dedup = headers.get("upstash-deduplication-id")
        if dedup and dedup in self._dedup:
            return {"messageId": self._dedup[dedup], "deduplicated": True}
        message = QueuedMessage(f"msg_{uuid.uuid4().hex}", url, body, headers)
        self.messages.append(message)
        if dedup:
            self._dedup[dedup] = message.message_id
        return {"messageId": message.message_id}

    def _publish(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {env.QSTASH_TOKEN}":
            return httpx.Response(401, json={"error": "bad token"})
        if self.fail_publish:
            return httpx.Response(500, json={"error": "qstash is down"})
        url = str(request.url).split("/v2/publish/", 1)[1]
        headers = {k.lower(): v for k, v in request.headers.items()}
        return httpx.Response(201, json=self._accept(url, request.content, headers))

    def _batch(self, request: httpx.Request) -> httpx.Response:
        if self.fail_publish:
            return httpx.Response(500, json={"error": "qstash is down"})
        items = json.loads(request.content)
        answers = []
        for item in items:
            headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
            answers.append(self._accept(item["destination"], item["body"].encode(), headers))
        return httpx.Response(200, json=answers)

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        self.cancelled.append(str(request.url).rsplit("/", 1)[1])
        return httpx.Response(202)
