"""Access tokens for Microsoft Graph, from the account's refresh token (msal).

One msal application per provider: confidential with the client's secret, public without
one. Its first token request fetches `<authority>/v2.0/.well-known/openid-configuration`
(tenant discovery) for the token endpoint. msal insists on an https authority
(`msal.authority.canonicalize` refuses anything else, 127.0.0.1 included); it trusts the
certificates `requests` trusts, so REQUESTS_CA_BUNDLE names a private CA (the tests'
Graph double uses one). `instance_discovery=False`: the authority is our own setting
(MICROSOFT_LOGIN_URL + MICROSOFT_TENANT), not a user's input, and instance discovery (a
call to login.microsoftonline.com asking whether an unknown host is a Microsoft
authority) is skipped by msal for Microsoft's own hosts anyway; for any other host it
would reach out to the internet. Tenant discovery still checks the authority answers.

The access token is kept until shortly before it expires. A refresh may rotate the
refresh token (Azure AD sends a new one with every refresh); the new one is kept for this
provider's lifetime only: the stored one stays valid, as Azure AD does not revoke a
refresh token when it issues the next one.

Neither token appears in an error or a log: errors carry Azure AD's error code and the
first line of its description (an AADSTS code and sentence, never a token).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from msal.exceptions import MsalServiceError

from bridge.outcome import PermanentError, RetryLater
from tasks.mail.msal_client import GRAPH_SCOPES, msal_app
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings

PROVIDER = "microsoft"  # as `jobbridge accounts connect microsoft` names it
SCOPES = GRAPH_SCOPES  # what the consent asked for, and every refresh asks for
REFRESH_MARGIN = 300.0  # seconds before expiry a token is no longer used
RETRY_SECONDS = 60.0  # the wait when the token server is unreachable or failing
# Answers only the person can fix: the refresh token is revoked, expired, or needs a
# sign-in again (password changed, consent withdrawn, conditional access).
_REFUSED = frozenset({"invalid_grant", "interaction_required"})
_TRANSIENT = frozenset({"temporarily_unavailable", "server_error", "slow_down"})


class GraphTokens:
    def __init__(self, grant: OAuthGrant, settings: OAuthSettings) -> None:
        self._grant = grant
        self._settings = settings
        self._authority = settings.microsoft_authority
        self._refresh_token = grant.refresh_token
        self._seen = {grant.refresh_token}
        self._app: Any = None
        self._token: str | None = None
        self._usable_until = 0.0  # time.monotonic()
        self._lock = threading.Lock()

    def knows(self, refresh_token: str) -> bool:
        return refresh_token in self._seen

    def __repr__(self) -> str:  # never the tokens
        return f"GraphTokens({self._grant.email!r}, {self._authority!r})"

    def access_token(self) -> str:
        """A current access token: the kept one, or a new one from the refresh token."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._usable_until:
                self._token = self._refresh()
            return self._token

    def renew(self, rejected: str) -> str:
        """A new access token after Graph refused `rejected` (401): refreshed unless
        another thread has renewed it since."""
        with self._lock:
            if self._token is None or self._token == rejected:
                self._token = self._refresh()
            return self._token

    def _refresh(self) -> str:
        app = self._application()
        try:
            result: dict[str, Any] = app.acquire_token_by_refresh_token(
                self._refresh_token, scopes=list(SCOPES)
            )
        except (OSError, MsalServiceError, ValueError) as error:
            # OSError: requests' errors (no answer, TLS); MsalServiceError: a 5xx;
            # ValueError: an answer that is not JSON.
            raise RetryLater(
                f"{self._grant.email}: Microsoft's token endpoint failed "
                f"({type(error).__name__}); trying again later",
                RETRY_SECONDS,
            ) from None
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._failure(result)
        expires_in = _seconds(result.get("expires_in"), default=3600.0)
        self._usable_until = time.monotonic() + max(expires_in - REFRESH_MARGIN, expires_in / 2)
        rotated = result.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            # Each one lives 90 days from its issue: keep the newest, here and stored.
            self._refresh_token = rotated
            self._seen.add(rotated)
            self._grant.rotated(rotated)
        return token

    def _failure(self, result: dict[str, Any]) -> Exception:
        error = str(result.get("error") or "no access token")
        description = str(result.get("error_description") or "").strip().splitlines()
        detail = f"{error}: {description[0][:200]}" if description else error
        if error in _REFUSED:
            return self._grant.refused(PROVIDER, detail)
        if error in _TRANSIENT:
            return RetryLater(
                f"{self._grant.email}: Microsoft's token endpoint is busy ({detail})",
                RETRY_SECONDS,
            )
        return PermanentError(
            f"{self._grant.email}: Microsoft's token endpoint refused the refresh ({detail}); "
            "check MICROSOFT_CLIENT_ID, MICROSOFT_CLIENT_SECRET and MICROSOFT_TENANT"
        )

    def _application(self) -> Any:
        if self._app is not None:
            return self._app
        grant = self._grant
        try:
            self._app = msal_app(grant.client_id, grant.client_secret, self._settings)
        except ValueError as error:  # not https, or its openid-configuration is a 4xx
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise PermanentError(
                f"Microsoft authority {self._authority} is unusable: {first}"
            ) from None
        except (OSError, MsalServiceError) as error:
            raise RetryLater(
                f"Microsoft authority {self._authority} did not answer "
                f"({type(error).__name__}); trying again later",
                RETRY_SECONDS,
            ) from None
        return self._app


def _seconds(value: object, *, default: float) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
