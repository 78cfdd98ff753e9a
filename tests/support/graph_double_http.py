"""The Graph double's plumbing: HTTP servers in background threads, the request log, the
faults it injects, and the token endpoint's refresh_token grant as Azure AD answers it
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow, "Refresh
the access token").
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_plus

from tests.support.graph_double_checks import Answer, Call, error

Handle = Callable[[BaseHTTPRequestHandler, str, bytes], Answer]
_RESERVED = ("offline_access",)  # msal adds openid, profile and offline_access itself
_TOKEN_FORM = frozenset(
    {"client_id", "client_secret", "grant_type", "refresh_token", "scope", "client_info", "claims"}
)


@dataclass(frozen=True)
class Logged:
    method: str
    path: str  # under /v1.0, decoded: "/me/messages/AAkA..."
    query: dict[str, str]
    body: Any
    status: int
    batched: bool
    immutable: bool  # the request asked for immutable ids

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    @classmethod
    def of(cls, call: Call, status: int) -> Logged:
        return cls(
            call.method,
            "/" + "/".join(call.segments),
            dict(call.query),
            call.body,
            status,
            call.batched,
            call.immutable,
        )


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: float | None
    match: str
    code: str | None

    def answer(self) -> Answer:
        self.remaining -= 1
        default = {
            429: "TooManyRequests",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
            404: "ErrorItemNotFound",
        }
        answer = error(
            self.status, self.code or default.get(self.status, "BadRequest"), "Injected by the test"
        )
        if self.retry_after is not None:
            answer.headers["Retry-After"] = f"{self.retry_after:g}"
        return answer


def serve(
    handle: Handle, context: ssl.SSLContext | None, crashes: list[str]
) -> ThreadingHTTPServer:
    """A server on a free port of 127.0.0.1 answering every request with `handle`; the
    double's own failures answer 500 and are kept in `crashes`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx and requests use it
        disable_nagle_algorithm = True  # headers and body go out at once

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                answer = handle(self, method, body)
            except Exception:
                crashes.append(traceback.format_exc())
                answer = error(500, "DoubleCrashed", "The Graph double failed")
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_PATCH(self) -> None:
            self._answer("PATCH")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def openid_configuration(base: str) -> dict[str, Any]:
    """Azure AD's OpenID Provider Metadata for a tenant's v2.0 endpoints (the fields msal
    reads: authorization_endpoint, token_endpoint; and a few it does not)."""
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }


def _oauth_error(status: int, code: str, description: str) -> Answer:
    return Answer(
        status,
        {
            "error": code,
            "error_description": f"{description}\r\nTrace ID: {secrets.token_hex(8)}",
            "error_codes": [int(code) for code in re.findall(r"^AADSTS(\d+)", description)],
            "timestamp": "2026-01-01 00:00:00Z",
        },
    )


def token_answer(
    form: dict[str, str],
    authorization: str | None,
    *,
    client_id: str,
    client_secret: str | None,
    valid: Collection[str],
    scopes: Collection[str],
) -> tuple[Answer, str | None]:
    """The token endpoint's answer to a refresh, and what in the request was wrong
    (None when nothing was: an unknown or revoked refresh token is not the client's
    mistake, only Azure AD's answer)."""
    unknown = set(form) - _TOKEN_FORM
    if unknown:
        return _oauth_error(400, "invalid_request", "AADSTS900144: unexpected"), f"{unknown}"
    if form.get("grant_type") != "refresh_token":
        problem = f"grant_type {form.get('grant_type')!r}"
        return _oauth_error(400, "unsupported_grant_type", "AADSTS70003: grant"), problem
    secret = form.get("client_secret")
    if authorization and authorization.startswith("Basic "):
        basic_id, _, basic_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if unquote_plus(basic_id) != client_id:
            return _oauth_error(401, "invalid_client", "AADSTS700016: client"), "basic id"
        secret = unquote_plus(basic_secret)
    if form.get("client_id") != client_id:
        return _oauth_error(400, "unauthorized_client", "AADSTS700016: no such app"), "client_id"
    if client_secret is None and secret is not None:
        description = (
            "AADSTS700025: Client is public so neither 'client_assertion' nor "
            "'client_secret' should be presented."
        )
        return _oauth_error(401, "invalid_client", description), "a secret from a public client"
    if client_secret is not None and secret != client_secret:
        return _oauth_error(
            401, "invalid_client", "AADSTS7000215: Invalid client secret."
        ), "secret"
    asked = set(form.get("scope", "").split())
    if not asked >= {*scopes, *_RESERVED}:
        return _oauth_error(400, "invalid_scope", "AADSTS70011: scope"), f"scope {sorted(asked)}"
    if form.get("refresh_token") not in valid:
        return _oauth_error(
            400,
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked, a fresh "
            "auth token is needed. The user might have changed or reset their password.",
        ), None
    return Answer(
        200,
        {
            "token_type": "Bearer",
            "scope": " ".join(sorted(asked - {"openid", "profile"})),
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": "at-" + secrets.token_urlsafe(24),
            "refresh_token": "rt-" + secrets.token_urlsafe(24),
        },
    ), None
