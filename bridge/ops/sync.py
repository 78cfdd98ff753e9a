"""`jobbridge sync`: register the app with Inngest by a PUT signed as Inngest signs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from inngest._internal.net import sign_request

from bridge.ops.measure import describe
from bridge.registry import INNGEST_PATH
from config import Settings

DEFAULT_APP_URL = "http://127.0.0.1:8000"
SDK_HEADER = "x-inngest-sdk"  # on every answer of the Inngest SDK's endpoint


@dataclass(frozen=True)
class SyncResult:
    url: str
    status: int | None
    error: str | None
    function_count: int | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sync_url(settings: Settings, url: str | None) -> str:
    base = (url or settings.internal_api_url or DEFAULT_APP_URL).rstrip("/")
    return base if base.endswith(INNGEST_PATH) else base + INNGEST_PATH


def _registration_error(response: httpx.Response, body: Any) -> str | None:
    if response.status_code == 401:
        refusal = body.get("error") if isinstance(body, dict) else None
        return (
            f"the app refused the sync (401{': ' + str(refusal) if refusal else ''}): run this "
            "command with the app's INNGEST_SIGNING_KEY, which signs it as Inngest would"
        )
    if not isinstance(body, dict):
        return (
            f"HTTP {response.status_code}: the answer is not a JSON object: {response.text[:200]}"
        )
    # The SDK answers 200 with the Inngest server's own body, {"error": ...} included,
    # when registration failed: the body decides, not the status.
    if body.get("error"):
        return str(body["error"])
    if response.status_code >= 400:
        # The SDK's own errors are {"code", "message"}; 401 is {"message": "Unauthorized"}.
        detail = body.get("message") or body.get("code") or response.text[:200]
        code = f" ({body['code']})" if body.get("code") and body.get("message") else ""
        return f"HTTP {response.status_code}{code}: {detail}"
    return None


def _function_count(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    for name in ("function_count", "functionCount"):
        if isinstance(body.get(name), int):
            return int(body[name])
    if isinstance(body.get("functions"), list):
        return len(body["functions"])
    return None


def sync_app(url: str, signing_key: str | None = None, timeout: float = 60.0) -> SyncResult:
    """PUT the app's serve URL, which makes the SDK register its functions with Inngest.

    The PUT is signed with `signing_key` (the app's) as Inngest signs its own syncs: in
    cloud mode the app registers on nothing else. The timeout outlasts the SDK's own 30 s
    registration call, so its verdict arrives.
    """
    try:
        response = httpx.put(url, headers=_signed(signing_key), timeout=timeout)
    except httpx.HTTPError as unreachable:
        return SyncResult(url, None, f"could not reach {url}: {describe(unreachable)}")
    if response.status_code == 404:
        return SyncResult(
            url,
            404,
            f"{url} is not served (404): is the app running there, with "
            "INNGEST_SIGNING_KEY (or INNGEST_DEV) set?",
        )
    if response.status_code < 400 and SDK_HEADER not in response.headers:
        return SyncResult(
            url,
            response.status_code,
            f"{url} answered, but not as an Inngest SDK endpoint (no {SDK_HEADER} header): "
            "check --url or INTERNAL_API_URL",
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = _registration_error(response, body)
    if error is not None:
        return SyncResult(url, response.status_code, error, body=body)
    count = _function_count(body)
    if count is None:
        count = _inspected_function_count(url, signing_key, timeout=5.0)
    return SyncResult(url, response.status_code, None, function_count=count, body=body)


def _signed(signing_key: str | None) -> dict[str, str]:
    """Headers for a body-less request to /api/inngest, signed as the Inngest server signs
    its own (the SDK's signer): none without a key, for a dev server verifies nothing."""
    if not signing_key:
        return {}
    return {"X-Inngest-Signature": str(sign_request(b"", signing_key))}


def _inspected_function_count(url: str, signing_key: str | None, timeout: float) -> int | None:
    # Inngest's register answer does not count functions; the SDK's inspection (GET) does.
    # In cloud mode it answers 401 unless signed, hence the app's key. Best effort: a sync
    # that worked stays a success without the count.
    try:
        response = httpx.get(url, headers=_signed(signing_key), timeout=timeout)
        return _function_count(response.json()) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
