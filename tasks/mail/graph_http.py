"""Calls to Microsoft Graph for one account: one httpx client, the bearer token, the
`Prefer: IdType="ImmutableId"` header (message ids survive moves), JSON batching, and
Graph's answers translated into the port's and the shim's exceptions.

429, 503 and 504 are RetryLater with Graph's Retry-After (else RETRY_SECONDS); any
other 5xx and no answer at all are RetryLater too. 404 (ErrorItemNotFound) and a
malformed id are MessageNotFound. 401 renews the access token once and tries again; a
second 401 is a PermanentError. Any other 4xx is a PermanentError naming the operation
and Graph's error code and message. Tokens never appear in an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.graph_token import GraphTokens
from tasks.mail.port import MessageNotFound
from tasks.mail.tls import http_context
from tasks.retry_after import retry_after

IMMUTABLE_IDS = 'IdType="ImmutableId"'
BATCH_LIMIT = 20  # requests per JSON batch, Graph's maximum
RETRY_SECONDS = 30.0  # the wait when Graph asks for one without saying how long
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_NOT_FOUND_CODES = frozenset({"ErrorItemNotFound", "ErrorInvalidIdMalformed", "ResourceNotFound"})

Json = dict[str, Any]


@dataclass(frozen=True)
class SubRequest:
    """One request of a JSON batch: a path under the version root, like `me/messages`."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: Json | None = None


@dataclass(frozen=True)
class SubResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: Json

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class GraphApi:
    def __init__(self, tokens: GraphTokens, base_url: str, who: str) -> None:
        self.base = base_url.rstrip("/")
        self.who = who  # the account, for error messages
        self._tokens = tokens
        self._client = httpx.Client(
            base_url=self.base + "/",
            timeout=TIMEOUT,
            headers={"Prefer": IMMUTABLE_IDS, "Accept": "application/json"},
            follow_redirects=False,  # a redirect could lead the token to another host
            verify=http_context(),  # made once, not for each account's client
        )

    def close(self) -> None:
        self._client.close()

    # One request ----------------------------------------------------------------------
    def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
    ) -> Json:
        """The JSON answer of a request to `path` (under the version root), or of an
        @odata.nextLink Graph gave (checked to be under the same root)."""
        url = self.link(path) if path.startswith(("http://", "https://")) else path
        token = self._tokens.access_token()
        response = self._send(operation, method, url, params, body, token)
        if response.status_code == 401:
            token = self._tokens.renew(token)
            response = self._send(operation, method, url, params, body, token)
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        raise_for(operation, response.status_code, response.headers, answer, self.who)
        return answer

    def _send(
        self,
        operation: str,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: Json | None,
        token: str,
    ) -> httpx.Response:
        try:
            return self._client.request(
                method,
                url,
                params=dict(params) if params else None,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as error:
            raise RetryLater(
                f"{self.who}: {operation}: Microsoft Graph did not answer ({type(error).__name__})",
                RETRY_SECONDS,
            ) from None

    def link(self, url: str) -> str:
        """A link from Graph's answer, if it points under our own Graph root: a link to
        anywhere else would carry the account's token there."""
        ours, theirs = urlsplit(self.base + "/"), urlsplit(url)
        if (
            (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc)
            or not theirs.path.startswith(ours.path)
            or theirs.username is not None
        ):
            raise PermanentError(f"{self.who}: Microsoft Graph linked outside {self.base}")
        return url

    # JSON batching --------------------------------------------------------------------
    def batch(self, operation: str, requests: Sequence[SubRequest]) -> list[SubResponse]:
        """Every request's answer, in order, through POST /$batch, 20 at a time. The
        answers are not checked: each may be an error of its own (see `raise_for`)."""
        answers: list[SubResponse] = []
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[start : start + BATCH_LIMIT]
            payload = {"requests": [_sub_request(str(n), r) for n, r in enumerate(chunk)]}
            result = self.call(operation, "POST", "$batch", body=payload)
            by_id = {
                str(item.get("id")): item
                for item in result.get("responses", [])
                if isinstance(item, dict)
            }
            for number in range(len(chunk)):
                item = by_id.get(str(number))
                if item is None:
                    raise RetryLater(
                        f"{self.who}: {operation}: Microsoft Graph's batch answer left "
                        "out a request",
                        RETRY_SECONDS,
                    )
                answers.append(_sub_response(item))
        return answers


def path_of(*segments: str) -> str:
    """A path of quoted segments (ids may hold characters a path cannot). An empty id,
    `.` or `..` would collapse into another path (`me/messages/..` is `me`): no message
    has such an id."""
    for segment in segments:
        if segment in ("", ".", ".."):
            raise MessageNotFound(f"no message or folder has the id {segment!r}")
    return "/".join(quote(segment, safe="") for segment in segments)


def raise_for(
    operation: str, status: int, headers: Mapping[str, str], body: Json, who: str
) -> None:
    """Nothing for a success; else the exception the answer means (module docstring)."""
    if 200 <= status < 300:
        return
    code, message = _error_of(body)
    said = f"HTTP {status} {code}: {message}".rstrip(": ")
    where = f"{who}: {operation}"
    if status == 429 or status >= 500:  # 503 and 504 with Retry-After above all
        lowered = {name.lower(): value for name, value in headers.items()}
        wait = retry_after(lowered)
        raise RetryLater(
            f"{where}: Microsoft Graph asked to come back later ({said})",
            RETRY_SECONDS if wait is None else wait,
        )
    if status == 404 or code in _NOT_FOUND_CODES:
        raise MessageNotFound(f"{where}: {said}")
    if status == 401:
        raise PermanentError(
            f"{where}: Microsoft Graph refused a freshly refreshed access token ({said})"
        )
    raise PermanentError(f"{where}: Microsoft Graph refused it ({said})")


def _error_of(body: Json) -> tuple[str, str]:
    error = body.get("error")
    if not isinstance(error, dict):
        return "", ""
    message = " ".join(str(error.get("message") or "").split())
    return str(error.get("code") or ""), message[:300]


def _sub_request(request_id: str, request: SubRequest) -> Json:
    url = "/" + request.path
    if request.params:
        url += "?" + urlencode(dict(request.params), quote_via=quote)
    item: Json = {
        "id": request_id,
        "method": request.method,
        "url": url,
        "headers": {"Prefer": IMMUTABLE_IDS},
    }
    if request.body is not None:
        item["headers"]["Content-Type"] = "application/json"
        item["body"] = request.body
    return item


def _sub_response(item: Json) -> SubResponse:
    headers = item.get("headers")
    body = item.get("body")
    if isinstance(body, str):  # a body Graph could not give as JSON
        try:
            body = json.loads(body)
        except ValueError:
            body = {}
    status = item.get("status")
    return SubResponse(
        status=status if isinstance(status, int) else 500,
        headers={str(k).lower(): str(v) for k, v in headers.items()}
        if isinstance(headers, dict)
        else {},
        body=body if isinstance(body, dict) else {},
    )
