"""Sending through Resend's API with its official SDK (`resend`), when RESEND_API_KEY is set.

One `POST /emails` per email, with the email's idempotency key as the `Idempotency-Key`
header (the SDK's `idempotency_key` option): Resend answers a repeat of the key within
24 hours with the first email's id and sends nothing. The key is also the
`X-Entity-Ref-ID` header, which keeps Gmail from threading one digest under another.

Failures become the job vocabulary (bridge/outcome.py): a rate limit (429), a failing or
unreachable Resend (5xx) and a concurrent send of the same key are RetryLater, with
Resend's Retry-After when it gives one; a refused key or sender (401, 403) and any other
refusal (4xx) are PermanentError naming the variable to fix.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from email.utils import formataddr, getaddresses
from typing import Any

import httpx
import resend
from pydantic import SecretStr
from resend.exceptions import ResendError

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.port import OutgoingMail
from tasks.retry_after import retry_after

log = logging.getLogger("jobbridge.mail")

TIMEOUT_SECONDS = 30.0
# The wait when Resend is busy or down but says nothing about when to come back.
RETRY_SECONDS = 30.0
_KEY_REFUSED = frozenset({"missing_api_key", "invalid_api_key", "restricted_api_key"})
# The SDK reads its key and HTTP client from module globals: one send at a time in this
# process sets them and sends, so two keys (settings changed in .env) never mix.
_SDK_LOCK = threading.Lock()


class _HttpxClient(resend.HTTPClient):
    """The SDK's requests over httpx, the HTTP client this project uses everywhere else:
    one timeout of ours, and response header names lower-cased as retry_after reads them.
    The SDK turns any exception raised here into a ResendError of type HttpClientError."""

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
            response = client.request(
                method, url, headers=headers, json=json, files=files, data=data
            )
        lowered = {name.lower(): value for name, value in response.headers.items()}
        return response.content, response.status_code, lowered


class ResendRelay:
    transport = "resend"

    def __init__(self, api_key: SecretStr, from_address: str) -> None:
        self._api_key, self.from_address = api_key, from_address

    def sender_address(self, account_email: str) -> str:
        """The address the account's digests come from: RESEND_FROM, for every account."""
        return self.from_address

    def send(self, mail: OutgoingMail, account_email: str) -> str:
        """Send from RESEND_FROM and return Resend's id of the email."""
        sender = self.from_address
        params: resend.Emails.SendParams = {
            "from": formataddr((mail.from_name, sender)) if mail.from_name else sender,
            "to": _addresses(mail.to),
            "subject": mail.subject,
            "text": mail.body,
        }
        if mail.html:
            params["html"] = mail.html
        if mail.cc:
            params["cc"] = _addresses(mail.cc)
        if mail.bcc:
            params["bcc"] = _addresses(mail.bcc)
        headers: dict[str, str] = {}
        if mail.idempotency_key:
            headers["X-Entity-Ref-ID"] = mail.idempotency_key
        if mail.in_reply_to:
            headers["In-Reply-To"] = headers["References"] = mail.in_reply_to
        if headers:
            params["headers"] = headers
        options: resend.Emails.SendOptions = {}
        if mail.idempotency_key:
            options["idempotency_key"] = mail.idempotency_key
        with _SDK_LOCK:
            resend.api_key = self._api_key.get_secret_value()
            resend.default_http_client = _HttpxClient()
            try:
                return str(resend.Emails.send(params, options)["id"])
            except ResendError as error:
                if error.error_type == "invalid_idempotent_request" and mail.idempotency_key:
                    # The key went out before with another body (a summary re-rendered
                    # after a crash): the email was sent, which is all a repeat wants.
                    log.warning("Resend sent %s before", mail.idempotency_key)
                    return mail.idempotency_key
                raise self._refused(error) from None

    def _refused(self, error: ResendError) -> Exception:
        try:
            status = int(error.code)
        except (TypeError, ValueError):
            status = 500
        if error.error_type == "HttpClientError":  # the SDK's word for no answer at all
            return RetryLater(f"cannot reach Resend: {error.message}", RETRY_SECONDS)
        said = f"HTTP {status} {error.error_type}: {error.message}"
        if status == 429 or status >= 500 or error.error_type == "concurrent_idempotent_requests":
            wait = retry_after(error.headers)
            return RetryLater(
                f"Resend did not send the email now ({said})",
                RETRY_SECONDS if wait is None else wait,
            )
        if status == 401 or error.error_type in _KEY_REFUSED:
            return PermanentError(
                f"Resend refused RESEND_API_KEY ({said}): check the key, and that it may "
                "send emails"
            )
        if status == 403:  # a domain Resend has not verified, or a key of another team
            return PermanentError(
                f"Resend refused to send from RESEND_FROM {self.from_address} with "
                f"RESEND_API_KEY ({said}): verify the address's domain in Resend, for the "
                "team the key belongs to"
            )
        return PermanentError(
            f"Resend refused the email ({said}): check RESEND_FROM ({self.from_address}) "
            "and the account's address"
        )


def _addresses(field: str) -> list[str]:
    """Each address of a To, Cc or Bcc value, as Resend takes a list of them."""
    return [formataddr(pair) for pair in getaddresses([field]) if pair[1]]
