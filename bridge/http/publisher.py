"""Direct HTTP: POST the job to INTERNAL_API_URL + route and wait for the answer.

A call is retried on transport errors and 5xx, and raises when it finally fails: a
fire-and-forget POST would lose the job without a word.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from bridge.errors import DelayUnsupported, PublishError
from bridge.http.wire import (
    API_KEY_HEADER,
    ATTEMPT_HEADER,
    ATTEMPTS,
    DELIVERY_ID_HEADER,
    delivery_id_for,
)
from bridge.publisher import Message
from bridge.receipt import Receipt
from bridge.store.columns import utcnow
from config import Provider, Settings

BACKOFF_SECONDS = (0.2, 1.0)


class HttpPublisher:
    provider = Provider.HTTP

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        assert settings.internal_api_url is not None and settings.internal_api_key is not None
        self._base = settings.internal_api_url
        self._client = httpx.Client(
            timeout=httpx.Timeout(330.0, connect=5.0),
            headers={API_KEY_HEADER: settings.internal_api_key.get_secret_value()},
            transport=transport,
        )

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        return [self._post(message) for message in messages]

    def _post(self, message: Message) -> Receipt:
        if message.at is not None and message.at > utcnow():
            raise DelayUnsupported(self.provider, "direct HTTP runs jobs now; it cannot delay")
        url = self._base + message.spec.route
        delivery_id = delivery_id_for(message.dedup_id)
        failure = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
            try:
                response = self._client.post(
                    url,
                    json=message.data,
                    headers={DELIVERY_ID_HEADER: delivery_id, ATTEMPT_HEADER: str(attempt)},
                )
            except httpx.TransportError as error:
                failure = f"{url}: {type(error).__name__}: {error}"
                continue
            if response.status_code < 300:
                return Receipt(self.provider, delivery_id)
            failure = f"{url} answered {response.status_code}: {response.text[:300]}"
            if response.status_code < 500:
                raise PublishError(self.provider, failure, permanent=True)
        raise PublishError(self.provider, f"gave up after {ATTEMPTS} attempts: {failure}")

    def cancel(self, receipt: Receipt, message: Message) -> bool:
        return False
