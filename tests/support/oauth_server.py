"""An OAuth 2.0 authorization server double for `jobbridge accounts connect`: the
authorization endpoint (which answers as a person who signs in, or refuses, would) and
the token endpoint's authorization_code grant with PKCE (RFC 6749 section 4.1, RFC 7636).

It plays Google's endpoints (GOOGLE_AUTH_URL, GOOGLE_TOKEN_URL, and Gmail's getProfile
under GMAIL_API_URL, which says who signed in) as the client libraries call them; every
request is checked and any mistake is kept in `violations`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

PROFILE_PATH = "/gmail/v1/users/me/profile"  # Gmail's users.getProfile under GMAIL_API_URL


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


@dataclass
class OAuthServer:
    client_id: str = "jobbridge-test-client.apps.example"
    client_secret: str = "client-secret-" + "7" * 20
    refuse: bool = False  # the person presses "Cancel"
    issued_refresh_tokens: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    signed_in_as: str = "ana@example.com"  # whom the sign-in page signs in
    _codes: dict[str, _Pending] = field(default_factory=dict)
    _access_tokens: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> OAuthServer:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path == PROFILE_PATH:
                    double._profile(self)
                else:
                    double._authorize(self)

            def do_POST(self) -> None:
                double._token(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _authorize(self, request: BaseHTTPRequestHandler) -> None:
        query = dict(parse_qsl(urlsplit(request.path).query))
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        host = urlsplit(redirect).hostname
        for name, expected in (("response_type", "code"), ("code_challenge_method", "S256")):
            if query.get(name) != expected:
                self.violations.append(f"authorize: {name}={query.get(name)!r}")
        if query.get("client_id") != self.client_id:
            self.violations.append("authorize: unknown client_id")
        if host not in ("127.0.0.1", "localhost") or not query.get("state"):
            self.violations.append(f"authorize: redirect {redirect!r} / state missing")
            return self._answer(request, 400, {"error": "invalid_request"})
        if self.refuse:
            answer = {"error": "access_denied", "state": query["state"]}
        else:
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Pending(
                self.client_id, redirect, query.get("code_challenge", ""), query.get("scope", "")
            )
            answer = {"code": code, "state": query["state"], "scope": query.get("scope", "")}
        request.send_response(302)
        request.send_header("Location", f"{redirect}?{urlencode(answer)}")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _profile(self, request: BaseHTTPRequestHandler) -> None:
        """Gmail's users.getProfile for the access tokens issued here: who signed in."""
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self._access_tokens:
            return self._answer(request, 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        self._answer(
            request,
            200,
            {"emailAddress": self.signed_in_as, "messagesTotal": 0, "threadsTotal": 0,
             "historyId": "1"},
        )  # fmt: skip

    def _token(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(request.rfile.read(length).decode()))
        pending = self._codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or pending is None:
            return self._answer(request, 400, {"error": "invalid_grant"})
        client = (form.get("client_id"), form.get("client_secret"))
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):  # RFC 6749 2.3.1: either form, Google takes both
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            client = (client_id, secret)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        checks = {
            "client": client == (self.client_id, self.client_secret),
            "redirect_uri": form.get("redirect_uri") == pending.redirect_uri,
            "pkce": challenge.decode().rstrip("=") == pending.challenge,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            self.violations.append(f"token: {', '.join(failed)} wrong")
            return self._answer(request, 400, {"error": "invalid_grant"})
        refresh = "1//refresh-" + secrets.token_urlsafe(24)
        access = "ya29.access-" + secrets.token_urlsafe(16)
        self.issued_refresh_tokens.append(refresh)
        self._access_tokens.add(access)
        self._answer(
            request,
            200,
            {
                "access_token": access,
                "expires_in": 3599,
                "refresh_token": refresh,
                "scope": pending.scope,
                "token_type": "Bearer",
            },
        )

    def _answer(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
