"""`jobbridge accounts connect google|microsoft EMAIL`: the OAuth installed-app flow.

The command listens on a loopback port for the provider's redirect (one receiver for
both providers, which ignores requests without the flow's state and logs nothing, since
the redirect carries the code), prints the address to open (and opens a browser unless
told not to), exchanges the code for tokens (google-auth-oauthlib's Flow, msal), and
stores the refresh token encrypted with TOKEN_ENCRYPTION_KEY. The access token is not
kept; the adapters refresh their own.
"""

from __future__ import annotations

import os
import time
import warnings
import webbrowser
import wsgiref.simple_server
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from msal.exceptions import MsalServiceError
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from bridge.outcome import PermanentError
from tasks.mail.gmail_calls import SCOPES as GMAIL_SCOPES
from tasks.mail.imap_session import is_loopback
from tasks.mail.msal_client import GRAPH_SCOPES, msal_app
from tasks.mail.oauth_accounts import client_of
from tasks.mail.oauth_settings import OAuthSettings
from tasks.models import MailProviderKind

DONE_PAGE = "jobbridge: the account is connected; you can close this tab."

Say = Callable[[str], None]


class ConnectFailed(PermanentError):
    """The person refused, the provider answered with an error, or nobody came back."""


class LoopbackPortUnavailable(Exception):
    """The loopback port asked for cannot be listened on (taken, or privileged)."""

    def __init__(self, port: int, error: OSError) -> None:
        super().__init__(f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}")


@dataclass(frozen=True)
class LoopbackOptions:
    port: int = 0  # 0: any free port (Google and Microsoft accept any loopback port)
    open_browser: bool = True
    timeout_seconds: float = 300


def obtain_refresh_token(
    kind: MailProviderKind, email: str, settings: OAuthSettings, options: LoopbackOptions, say: Say
) -> str:
    client_id, secret = client_of(kind, settings)
    if kind is MailProviderKind.GOOGLE:
        return _google(email, client_id, secret, settings, options, say)
    return _microsoft(email, client_id, secret, settings, options, say)


def _google(
    email: str,
    client_id: str,
    secret: str | None,
    settings: OAuthSettings,
    options: LoopbackOptions,
    say: Say,
) -> str:
    client = {
        "installed": {
            "client_id": client_id,
            "client_secret": secret,
            "auth_uri": settings.google_auth_url,
            "token_uri": settings.google_token_url,
            "redirect_uris": ["http://localhost"],
        }
    }
    if is_loopback(urlsplit(settings.google_token_url).hostname or ""):
        # oauthlib refuses plain http, rightly; a token server on this machine is a test's.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    flow = Flow.from_client_config(client, scopes=list(GMAIL_SCOPES))  # PKCE on
    with _Loopback(options.port, options.timeout_seconds) as loopback:
        flow.redirect_uri = loopback.redirect_uri
        address, state = flow.authorization_url(
            access_type="offline",  # a refresh token, not only an access token
            prompt="consent",  # a refresh token even when the person connected before
            login_hint=email,
        )
        say(_prompt(email) + address)
        if options.open_browser:
            webbrowser.open(address, new=1)
        answer = loopback.wait(state)
    if "code" not in answer:
        refusal = f"{answer.get('error', 'no code')}: {answer.get('error_description', '')}"
        raise ConnectFailed(f"Google refused: {refusal.strip()}")
    try:
        flow.fetch_token(code=answer["code"])
    except OAuth2Error as error:
        raise ConnectFailed(f"Google refused: {error.error}: {error.description or ''}") from None
    except Exception as error:  # the token exchange's transport and protocol errors
        raise ConnectFailed(f"connecting {email} failed: {_reason(error)}") from None
    credentials = flow.credentials
    token = getattr(credentials, "refresh_token", None)
    if not token:
        raise ConnectFailed("Google sent no refresh token; remove the app's access and retry")
    signed_in = _gmail_address(credentials, settings)
    if signed_in.casefold() != email.casefold():
        raise ConnectFailed(_someone_else(signed_in, email))
    return str(token)


def _gmail_address(credentials: Any, settings: OAuthSettings) -> str:
    """The address of the mailbox the new token opens (Gmail's users.getProfile)."""
    try:
        service = build(
            "gmail",
            "v1",
            credentials=credentials,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": settings.gmail_api_url},
        )
        profile = service.users().getProfile(userId="me").execute()
    except Exception as error:  # HttpError, transport errors: the connection is unproven
        raise ConnectFailed(
            f"reading the new account's Gmail profile failed: {_reason(error)}"
        ) from None
    return str(profile.get("emailAddress", ""))


def _microsoft(
    email: str,
    client_id: str,
    secret: str | None,
    settings: OAuthSettings,
    options: LoopbackOptions,
    say: Say,
) -> str:
    try:
        with warnings.catch_warnings():
            # msal suggests response_mode=form_post, which a loopback GET cannot receive.
            warnings.simplefilter("ignore", UserWarning)
            app = msal_app(client_id, secret, settings)
    except (ValueError, OSError, MsalServiceError) as error:
        raise ConnectFailed(f"Microsoft's sign-in service failed: {_reason(error)}") from None
    with _Loopback(options.port, options.timeout_seconds) as loopback:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # as above
            flow = app.initiate_auth_code_flow(
                list(GRAPH_SCOPES), redirect_uri=loopback.redirect_uri, login_hint=email
            )
        say(_prompt(email) + str(flow["auth_uri"]))
        if options.open_browser:
            webbrowser.open(flow["auth_uri"], new=1)
        answer = loopback.wait(flow["state"])
    try:
        result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, answer)
    except (ValueError, OSError, MsalServiceError) as error:
        raise ConnectFailed(
            f"exchanging the sign-in for a token failed: {_reason(error)}"
        ) from None
    if "error" in result:
        description = str(result.get("error_description", "")).splitlines()[:1]
        raise ConnectFailed(f"Microsoft refused: {result['error']}: {''.join(description)}")
    signed_in = str((result.get("id_token_claims") or {}).get("preferred_username") or "")
    if signed_in and signed_in.casefold() != email.casefold():
        raise ConnectFailed(_someone_else(signed_in, email))
    token = result.get("refresh_token")
    if not token:
        raise ConnectFailed("Microsoft sent no refresh token (offline_access not granted?)")
    return str(token)


def _someone_else(signed_in: str, email: str) -> str:
    return (
        f"the sign-in was as {signed_in}, not {email}: nothing is stored; run the command "
        f"again and sign in as {email} (sign out of {signed_in} in that browser first)"
    )


def _prompt(email: str) -> str:
    return f"To connect {email}, open this address in a browser and sign in as {email}:\n"


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


class _Loopback:
    """A one-request HTTP server on 127.0.0.1 that captures the redirect's parameters."""

    def __init__(self, port: int, timeout_seconds: float) -> None:
        self._answer: dict[str, str] | None = None
        try:
            self._server = wsgiref.simple_server.make_server(
                "127.0.0.1", port, self._app, handler_class=_QuietHandler
            )
        except OSError as error:
            raise LoopbackPortUnavailable(port, error) from None
        self._timeout = timeout_seconds
        self.redirect_uri = f"http://localhost:{self._server.server_port}/"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self._answer = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [DONE_PAGE.encode()]

    def wait(self, state: str) -> dict[str, str]:
        """The redirect's parameters; requests without this flow's `state` (a browser's
        favicon, a stray visitor) are answered and ignored while the time lasts."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            self._server.timeout = max(deadline - time.monotonic(), 0.01)
            self._answer = None
            self._server.handle_request()
            if self._answer is not None and self._answer.get("state") == state:
                return self._answer
        raise ConnectFailed("nobody came back from the sign-in page in time")

    def __enter__(self) -> _Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.server_close()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """The redirect carries the authorization code: never log its URL."""
