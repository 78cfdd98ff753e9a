"""Calling the Gmail API: the service built once from the account's grant, and the one
place a request is executed, where Gmail's and Google's refusals become the port's
errors.

- HTTP 429, 403 with a rate-limit reason, and 5xx: RetryLater, after the server's
  Retry-After or a growing default. google-api-python-client retries nothing itself
  (num_retries=0), so the job's retry is the only one.
- invalid_grant from the token endpoint: the account must be connected again
  (`OAuthGrant.refused`), a permanent error, never a retry loop.
- 404 on a message or thread: MessageNotFound. Any other 4xx: PermanentError naming the
  operation and Gmail's message.

No error text carries a token or the client secret: only Gmail's and Google's messages.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httplib2  # type: ignore[import-untyped]
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings
from tasks.mail.port import MessageNotFound
from tasks.mail.token_cache import shared_holder
from tasks.retry_after import retry_after

# Read, label, archive and send; never delete for good. `accounts connect google` asks
# for exactly these.
SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)

RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)
# The wait when Gmail names none: doubled on each transient answer this provider gets in
# a row, up to the cap.
DEFAULT_WAIT_SECONDS = 10.0
MAX_DEFAULT_WAIT_SECONDS = 600.0


def build_service(grant: OAuthGrant, settings: OAuthSettings) -> Any:
    """The Gmail service from the discovery document google-api-python-client ships,
    addressed at GMAIL_API_URL; google-auth gets access tokens from the refresh token."""
    held = shared_holder(
        ("google", grant.email, grant.client_id, settings.google_token_url),
        grant.refresh_token,
        lambda: _HeldCredentials(grant, settings),
    )
    return build(
        "gmail",
        "v1",
        credentials=held.credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": settings.gmail_api_url},
    )


class _HeldCredentials:
    """google-auth's credentials for one account, kept across jobs (tasks.mail.token_cache):
    they refresh their access token themselves when it expires. Google does not rotate
    refresh tokens."""

    def __init__(self, grant: OAuthGrant, settings: OAuthSettings) -> None:
        self.refresh_token = grant.refresh_token
        self.credentials = Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=grant.refresh_token,
            client_id=grant.client_id,
            client_secret=grant.client_secret,
            token_uri=settings.google_token_url,
            scopes=list(SCOPES),
        )

    def knows(self, refresh_token: str) -> bool:
        return refresh_token == self.refresh_token


class LabelConflict(PermanentError):
    """Gmail has a label of that name already (HTTP 409 to labels.create)."""


class BadRequest(PermanentError):
    """Gmail refused the request's parameters (HTTP 400): an invalid page token, say."""


class GmailCalls:
    """Executes the service's requests one at a time (httplib2 connections are not
    thread-safe) and translates their failures."""

    def __init__(self, grant: OAuthGrant, settings: OAuthSettings) -> None:
        self.grant = grant
        self.service = build_service(grant, settings)
        self._lock = threading.Lock()
        self._transient_in_a_row = 0

    def run(self, operation: str, request: Any, *, missing: str | None = None) -> Any:
        """The request's answer. `missing` is the message or thread the request is about:
        Gmail not knowing it is MessageNotFound(missing)."""
        try:
            with self._lock:
                answer = request.execute(num_retries=0)
        except HttpError as error:
            raise self._refused(operation, error, missing) from None
        except RefreshError as error:
            raise self._token_refused(error) from None
        except (TransportError, httplib2.HttpLib2Error, OSError) as error:
            raise RetryLater(
                f"Gmail {operation} for {self.grant.email}: cannot reach Google "
                f"({type(error).__name__})",
                self._default_wait(),
            ) from None
        self._transient_in_a_row = 0
        return answer

    def close(self) -> None:
        self.service.close()

    def _refused(self, operation: str, error: HttpError, missing: str | None) -> Exception:
        status = int(error.status_code)
        said = f"Gmail {operation} for {self.grant.email}: HTTP {status} {error.reason}".rstrip()
        reasons = error_reasons(error.content)
        if status == 429 or status >= 500 or (status == 403 and reasons & RATE_LIMIT_REASONS):
            wait = retry_after({str(k).lower(): str(v) for k, v in error.resp.items()})
            return RetryLater(said, self._default_wait() if wait is None else wait)
        if status == 409:
            return LabelConflict(said)
        if missing is not None and (status == 404 or _invalid_id(status, str(error.reason))):
            return MessageNotFound(missing)
        return BadRequest(said) if status == 400 else PermanentError(said)

    def _token_refused(self, error: RefreshError) -> Exception:
        code, description = _token_error(error)
        if code == "invalid_grant":
            return self.grant.refused("google", description or code)
        said = f"Google refused to refresh the access token of {self.grant.email}"
        detail = f"{code}: {description}" if code and description else code or description
        if error.retryable:
            return RetryLater(f"{said} ({detail or 'no usable answer'})", self._default_wait())
        if code in ("invalid_client", "unauthorized_client"):
            return PermanentError(
                f"{said} ({detail}): check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET"
            )
        return PermanentError(f"{said} ({detail or 'no usable answer'})")

    def _default_wait(self) -> float:
        doubled = DEFAULT_WAIT_SECONDS * (1 << min(self._transient_in_a_row, 16))
        wait = min(doubled, MAX_DEFAULT_WAIT_SECONDS)
        self._transient_in_a_row += 1
        return wait


def error_reasons(content: bytes) -> frozenset[str]:
    """The reasons of a Google error body: `errors[].reason` (Gmail's v1 errors) and the
    `details[].reason` of an ErrorInfo."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return frozenset()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return frozenset()
    found: set[str] = set()
    for key in ("errors", "details"):
        items = error.get(key)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                found.add(item["reason"])
    return frozenset(found)


def _invalid_id(status: int, reason: str) -> bool:
    # Gmail answers 400 "Invalid id value" for an id it could never have issued: for this
    # mailbox that message does not exist.
    return status == 400 and "invalid id" in reason.lower()


def _token_error(error: RefreshError) -> tuple[str, str]:
    """The token endpoint's `error` and `error_description`, or google-auth's own words
    (cut short) when the endpoint gave no JSON error. Only these are read: nothing else
    of the exchange is repeated."""
    for arg in error.args:
        if isinstance(arg, dict):
            code, description = arg.get("error"), arg.get("error_description")
            return (
                code if isinstance(code, str) else "",
                description if isinstance(description, str) else "",
            )
    text = str(error.args[0]) if error.args else ""
    if text.startswith("invalid_grant"):
        return "invalid_grant", ""
    return "", " ".join(text.split())[:200]
