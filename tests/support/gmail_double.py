"""Gmail played by the tests: a real HTTP server on 127.0.0.1 (a free port, a background
thread; other processes reach it too) answering the Gmail REST API from an in-memory
mailbox (`gmail_store`), and Google's OAuth token endpoint.

Every API request is held to the discovery document google-api-python-client ships
(`gmail_discovery`): a request that document does not allow, or one the double does
not implement, answers 400 and is recorded in `violations`, which tests keep empty.
Requests need a Bearer access token the token endpoint issued and has not expired
(401 otherwise, as Gmail answers); the token endpoint checks the OAuth client and the
refresh token (a revoked one: 400 invalid_grant). `fail_next` makes the next calls of a
method fail (429 with Retry-After, 403 rateLimitExceeded, 500, 404...). Every request
is logged in `requests`.

    with GmailDouble("me@example.test") as gmail:
        key = gmail.deliver(message)                 # an EmailMessage or raw bytes
        provider = GmailProvider(gmail.grant(), gmail.settings())

A worker in another process reaches it with `gmail.env()` (GMAIL_API_URL,
GOOGLE_TOKEN_URL, GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET) and the refresh token
`gmail.refresh_token`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.gmail_discovery import Discovery, Method
from tests.support.gmail_handlers import HANDLERS, Answer, error_answer, http_handler
from tests.support.gmail_search import UnsupportedQuery
from tests.support.gmail_store import GmailRefusal, Store, Stored

GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
TOKEN_PATH = "/token"
_DEFAULT_REASONS = {403: "rateLimitExceeded", 404: "notFound", 429: "rateLimitExceeded"}
_DISCOVERY = Discovery()


@dataclass(frozen=True)
class LoggedRequest:
    verb: str
    path: str
    query: list[tuple[str, str]]
    method: str | None  # the discovery id (gmail.users.messages.get), "token", or None
    body: Any
    status: int

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)


@dataclass
class _Fault:
    status: int
    times: int
    reason: str
    message: str
    retry_after: str | None


class GmailDouble:
    def __init__(self, email: str = "me@example.test") -> None:
        self.email = email
        self.client_id = "double-client.apps.googleusercontent.com"
        self.client_secret = secrets.token_urlsafe(12)
        self.refresh_token = "1//double-" + secrets.token_urlsafe(16)
        self.expires_in = 3599
        self.store = Store(email)
        self.requests: list[LoggedRequest] = []
        self.violations: list[str] = []
        self.token_grants: list[str] = []  # the scope each issued access token asked for
        self._refresh_tokens: dict[str, bool] = {self.refresh_token: False}  # -> revoked
        self._access: dict[str, tuple[str, float]] = {}  # token -> (refresh token, deadline)
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Running ---------------------------------------------------------------------------
    def start(self) -> GmailDouble:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), http_handler(self.answer))
        self._server.daemon_threads = True
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05),
            name="gmail-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> GmailDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API root (GMAIL_API_URL), ending in '/' as the discovery rootUrl does."""
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def token_url(self) -> str:
        return self.url.rstrip("/") + TOKEN_PATH

    def env(self) -> dict[str, str]:
        """The variables a process needs to reach the double (OAuthSettings reads them)."""
        return {
            "GMAIL_API_URL": self.url,
            "GOOGLE_TOKEN_URL": self.token_url,
            "GOOGLE_CLIENT_ID": self.client_id,
            "GOOGLE_CLIENT_SECRET": self.client_secret,
        }

    def settings(self) -> Any:
        from tasks.mail.oauth_settings import OAuthSettings

        return OAuthSettings(
            google_client_id=self.client_id,
            google_client_secret=self.client_secret,
            google_token_url=self.token_url,
            gmail_api_url=self.url,
        )

    def grant(self, refresh_token: str | None = None, on_refused: Any = None) -> Any:
        from tasks.mail.oauth_grant import OAuthGrant

        return OAuthGrant(
            email=self.email,
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=refresh_token or self.refresh_token,
            on_refused=on_refused,
        )

    def reset(self) -> None:
        """An empty mailbox again (the contract tests share one double per session);
        the OAuth client and the refresh token stay, the violations too."""
        with self._lock:
            self.store = Store(self.email)
            self._faults.clear()

    # Seeding and inspecting ------------------------------------------------------------
    def deliver(
        self,
        message: EmailMessage | bytes,
        *,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        thread_id: str | None = None,
        received: datetime | None = None,
    ) -> str:
        """Put a message in the mailbox, its id. `labels` are label ids or user label
        names (created when missing); the thread is Gmail's (References and subject)
        unless given; internalDate is `received`, else the Date header, else now."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with self._lock:
            ids = [self._label_id(label) for label in labels]
            return self.store.add(raw, ids, thread_id=thread_id, internal_date=received).id

    def create_label(self, name: str) -> str:
        with self._lock:
            return str(self.store.create_label({"name": name})["id"])

    def _label_id(self, label: str) -> str:
        if label in self.store.labels:
            return label
        return self.store.label_id(label) or str(self.store.create_label({"name": label})["id"])

    def label_id(self, name: str) -> str | None:
        with self._lock:
            return self.store.label_id(name)

    def label_names(self) -> list[str]:
        """The names of the user's labels."""
        with self._lock:
            return sorted(
                str(label["name"])
                for label in self.store.labels.values()
                if label["type"] == "user"
            )

    def message(self, message_id: str) -> Stored:
        with self._lock:
            return self.store.messages[message_id]

    def labels_of(self, message_id: str) -> set[str]:
        """The message's labels: system ones by id, user ones by name."""
        with self._lock:
            return {
                str(self.store.labels[label]["name"])
                for label in self.store.messages[message_id].label_ids
            }

    def set_labels(
        self, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """Change a message's labels as the user would in Gmail (ids or user names)."""
        with self._lock:
            message = self.store.messages[message_id]
            self.store.modify(message, [self._label_id(label) for label in add], [*remove])

    @property
    def sent(self) -> list[Stored]:
        """What users.messages.send sent, in order."""
        with self._lock:
            return [m for m in self.store.messages.values() if "SENT" in m.label_ids]

    def calls(self, method: str) -> list[LoggedRequest]:
        """The logged requests to a method: `messages.get`, the full discovery id, or
        "token" for the token endpoint."""
        full = method if method == "token" else _DISCOVERY.method(method).id
        with self._lock:
            return [request for request in self.requests if request.method == full]

    # Auth and faults -------------------------------------------------------------------
    def revoke(self, refresh_token: str | None = None) -> None:
        """The user revoked the app: the refresh token and its access tokens stop working."""
        token = refresh_token or self.refresh_token
        with self._lock:
            self._refresh_tokens[token] = True
            self._access = {k: v for k, v in self._access.items() if v[0] != token}

    def issue_access_token(self) -> str:
        """An access token for the default refresh token, as the token endpoint issues
        it (for requests a test makes by hand)."""
        access = "ya29.double-" + secrets.token_urlsafe(24)
        with self._lock:
            self._access[access] = (self.refresh_token, time.monotonic() + self.expires_in)
        return access

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = {k: (v[0], 0.0) for k, v in self._access.items()}

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next `times` calls of `method` (`messages.get`, or "token") answer this
        error in Gmail's shape: 429 and 403 default to reason rateLimitExceeded."""
        full = method if method == "token" else _DISCOVERY.method(method).id
        fault = _Fault(
            status,
            times,
            reason or _DEFAULT_REASONS.get(status, "backendError"),
            message or f"the double's injected HTTP {status}",
            None if retry_after is None else str(retry_after),
        )
        with self._lock:
            self._faults.setdefault(full, []).append(fault)

    def _fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method) or []
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    # Answering -------------------------------------------------------------------------
    def answer(self, verb: str, target: str, headers: Any, body: bytes) -> Answer:
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        with self._lock:
            if parts.path == TOKEN_PATH and verb == "POST":
                answer = self._token(body)
                self._log(verb, parts.path, [], "token", None, answer.status)
                return answer
            routed = _DISCOVERY.route(verb, parts.path)
            if routed is None:
                answer = self._violation(f"{verb} {parts.path}: no method of the document")
                self._log(verb, parts.path, query, None, None, answer.status)
                return answer
            method, path_params = routed
            content_type = str(headers.get("Content-Type") or "")
            value, problems = _DISCOVERY.check_body(method, body, content_type)
            problems = _DISCOVERY.check_parameters(method, path_params, query) + problems
            answer = self._call(method, path_params, query, value, headers, problems)
            self._log(verb, parts.path, query, method.id, value, answer.status)
            return answer

    def _call(
        self,
        method: Method,
        path_params: dict[str, str],
        query: list[tuple[str, str]],
        body: Any,
        headers: Any,
        problems: list[str],
    ) -> Answer:
        if problems:
            return self._violation("; ".join(problems))
        if not self._authorized(str(headers.get("Authorization") or "")):
            return error_answer(401, "Request had invalid authentication credentials.", "authError")
        if path_params.get("userId") not in ("me", self.email):
            return error_answer(403, "Delegation denied for " + self.email, "forbidden")
        fault = self._fault(method.id)
        if fault is not None:
            extra = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            return error_answer(fault.status, fault.message, fault.reason, extra)
        handler = HANDLERS.get(method.id)
        if handler is None:
            return self._violation(f"{method.id}: not implemented by the Gmail double")
        params: dict[str, list[str]] = {}
        for name, value in query:
            params.setdefault(name, []).append(value)
        try:
            answer = handler(self.store, path_params, params, body)
        except UnsupportedQuery as error:
            return self._violation(str(error))
        except GmailRefusal as error:
            return error_answer(error.status, error.message, error.reason)
        except Exception as error:  # a bug of the double: loud, never a dropped connection
            self.violations.append(f"{method.id}: the double failed: {error!r}")
            return error_answer(500, "the Gmail double failed", "backendError")
        problems = _DISCOVERY.check_response(method, answer.body)
        if problems:
            self.violations.append("the double's own answer: " + "; ".join(problems))
        return answer

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        known = self._access.get(token.strip())
        return scheme.lower() == "bearer" and known is not None and known[1] > time.monotonic()

    def _token(self, body: bytes) -> Answer:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        fault = self._fault("token")
        if fault is not None:
            return Answer(fault.status, {"error": "server_error", "error_description": "later"})
        if form.get("grant_type") != "refresh_token":
            return Answer(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return Answer(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        refresh = form.get("refresh_token", "")
        if self._refresh_tokens.get(refresh, True):
            description = "Token has been expired or revoked."
            return Answer(400, {"error": "invalid_grant", "error_description": description})
        if not set(form.get("scope", GMAIL_SCOPE).split()) <= {GMAIL_SCOPE}:
            return Answer(400, {"error": "invalid_scope"})
        access = "ya29.double-" + secrets.token_urlsafe(24)
        self._access[access] = (refresh, time.monotonic() + self.expires_in)
        self.token_grants.append(form.get("scope", ""))
        return Answer(
            200,
            {
                "access_token": access,
                "expires_in": self.expires_in,
                "scope": GMAIL_SCOPE,
                "token_type": "Bearer",
            },
        )

    def _violation(self, problem: str) -> Answer:
        self.violations.append(problem)
        return error_answer(400, problem, "invalidArgument")

    def _log(
        self,
        verb: str,
        path: str,
        query: list[tuple[str, str]],
        method: str | None,
        body: Any,
        status: int,
    ) -> None:
        self.requests.append(LoggedRequest(verb, path, query, method, body, status))
