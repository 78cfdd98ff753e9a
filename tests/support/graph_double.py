"""A local Microsoft Graph and Azure AD sign-in endpoint for the Graph adapter, built from
their documented request and response shapes: real HTTP servers on 127.0.0.1 in
background threads, reachable from other processes (a Celery worker) as well.

- Sign-in (https, `login_url`): `/{tenant}/v2.0/.well-known/openid-configuration`, which
  msal reads first, and the token endpoint's refresh_token grant. It checks the client
  (id, and secret unless it is a public client), the scopes and the refresh token; a
  refresh issues a new access token and a new refresh token (the old one stays valid, as
  with Azure AD); after `revoke()` the answer is 400 invalid_grant. msal accepts only an
  https authority, so this server speaks TLS with a certificate of its own CA:
  REQUESTS_CA_BUNDLE=`ca_bundle` makes msal (requests) trust it.
- Graph (http, `graph_url`, `/v1.0`): the mail calls the adapter makes
  (`graph_double_api`), with Bearer tokens checked, `Prefer: IdType="ImmutableId"`
  honoured (otherwise ids change on every move, as Exchange's REST ids do), JSON
  batching (`/$batch`, at most 20 requests), and faults injected with `fail()`.

Every Graph request is logged (`log`, `requests()`; batched ones too). A request outside
the documented calls the double knows (an unknown path, query option, $filter clause,
body property, or Graph's own rules such as $orderby's) is a 400 recorded in
`violations`, which tests expect to stay empty; so is a double's own crash.

    with GraphDouble() as graph:  # settings(), grant(): the adapter's arguments
        key = graph.deliver("Hello")
        env = graph.env()  # MICROSOFT_* and REQUESTS_CA_BUNDLE for a worker process
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.support.graph_double_api import GraphEndpoints, run_batch
from tests.support.graph_double_checks import Answer, Call, Refused, error
from tests.support.graph_double_http import (
    Fault,
    Logged,
    openid_configuration,
    serve,
    token_answer,
)
from tests.support.graph_double_odata import ODataError
from tests.support.graph_double_store import Store
from tests.support.graph_double_store import received as received_message
from tests.support.graph_double_tls import make_tls

IMMUTABLE = 'IdType="ImmutableId"'
GRAPH_SCOPES = (
    "https://graph.microsoft.com/Mail.ReadWrite",
    "https://graph.microsoft.com/Mail.Send",
)


class GraphDouble:
    def __init__(
        self,
        *,
        email: str = "me@example.test",
        client_id: str = "00000000-jobbridge-graph-test",
        client_secret: str | None = "graph-client-secret-" + "9" * 16,
        tenant: str = "common",
    ) -> None:
        self.email, self.client_id, self.client_secret = email, client_id, client_secret
        self.tenant = tenant
        self.refresh_token = "rt-" + secrets.token_urlsafe(24)  # the one the account stores
        self.store = Store(owner=email)
        self.lock = threading.RLock()
        self.violations: list[str] = []
        self.log: list[Logged] = []  # every Graph request, batched ones too
        self.token_requests: list[dict[str, str]] = []  # every token request's form
        self.issued_refresh_tokens: list[str] = []
        self._refresh_tokens = {self.refresh_token}
        self._access_tokens: set[str] = set()
        self._faults: list[Fault] = []
        # `accounts connect microsoft`: the sign-in page's requests, and what it answers.
        self.authorize_requests: list[dict[str, str]] = []
        self.refuse_sign_in = False
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, challenge)
        self._nonces: dict[str, str] = {}  # code -> the OpenID nonce its request carried
        self.signed_in_as = email  # whom the sign-in page signs in (the id_token says)
        self._dir = Path(tempfile.mkdtemp(prefix="graph-double-"))
        self._servers: list[ThreadingHTTPServer] = []
        self.api: GraphEndpoints | None = None

    # Starting and stopping ------------------------------------------------------------
    def start(self) -> GraphDouble:
        tls = make_tls(self._dir)
        self.ca_bundle = tls.ca_bundle
        login = serve(self._login, tls.context, self.violations)
        graph = serve(self._graph, None, self.violations)
        self._servers = [login, graph]
        self.login_url = f"https://127.0.0.1:{login.server_port}"
        self.graph_url = f"http://127.0.0.1:{graph.server_port}/v1.0"
        self.api = GraphEndpoints(self.store, self.graph_url)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> GraphDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        return f"{self.login_url}/{self.tenant}"

    def settings(self) -> Any:
        """OAuthSettings pointing at this double (msal also needs REQUESTS_CA_BUNDLE)."""
        from tasks.mail.oauth_settings import OAuthSettings

        return OAuthSettings(
            microsoft_client_id=self.client_id,
            microsoft_client_secret=self.client_secret,
            microsoft_tenant=self.tenant,
            microsoft_login_url=self.login_url,
            microsoft_graph_url=self.graph_url,
        )

    def grant(self, refresh_token: str | None = None, on_refused: Any = None) -> Any:
        """The account's OAuthGrant: this client and the refresh token it stores."""
        from tasks.mail.oauth_grant import OAuthGrant

        return OAuthGrant(
            email=self.email,
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=refresh_token or self.refresh_token,
            on_refused=on_refused,
        )

    def env(self) -> dict[str, str]:
        """The settings a process needs to use this double (and trust its TLS)."""
        return {
            "MICROSOFT_LOGIN_URL": self.login_url,
            "MICROSOFT_TENANT": self.tenant,
            "MICROSOFT_GRAPH_URL": self.graph_url,
            "MICROSOFT_CLIENT_ID": self.client_id,
            "MICROSOFT_CLIENT_SECRET": self.client_secret or "",
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def reset(self) -> None:
        """An empty mailbox again (the contract tests share one double per session);
        the OAuth client and the refresh token stay, the violations too."""
        with self.lock:
            self.store = Store(owner=self.email)
            self.api = GraphEndpoints(self.store, self.graph_url)
            self._faults.clear()

    # Seeding ------------------------------------------------------------------------------
    def deliver(
        self,
        subject: str = "Hello",
        *,
        sender: str = "Ann <ann@example.test>",
        to: str | None = None,
        body: str | None = None,
        html: bool = False,
        received: datetime | None = None,
        minutes_ago: float = 1,
        folder: str = "inbox",
        reply_to: str | None = None,
        read: bool = False,
        categories: tuple[str, ...] = (),
        flagged: bool = False,
        headers: dict[str, str] | None = None,
        attachments: bool = False,
        message_id: str | None = None,
    ) -> str:
        """A received message in `folder` (well-known name or display name); its immutable
        id. `reply_to` (an id here) puts it in that message's conversation."""
        with self.lock:
            when = received or datetime.now(UTC) - timedelta(minutes=minutes_ago)
            header = message_id or f"<{uuid.uuid4().hex}@mail.example.test>"
            conversation = "AAQk" + uuid.uuid4().hex
            raw = {
                "Message-ID": header,
                "From": sender,
                "To": to or self.email,
                "Subject": subject,
                "Date": when.strftime("%a, %d %b %Y %H:%M:%S +0000"),
            }
            if reply_to is not None:
                parent = self.store.find(reply_to)
                assert parent is not None, f"no message {reply_to}"
                conversation = parent.data["conversationId"]
                raw["In-Reply-To"] = raw["References"] = parent.data["internetMessageId"]
            raw.update(headers or {})
            data = received_message(
                subject,
                sender,
                to or self.email,
                body if body is not None else f"Body of {subject}.",
                html=html,
                when=when,
                conversation=conversation,
                headers=raw,
            )
            data.update(isRead=read, categories=list(categories), hasAttachments=attachments)
            data["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}
            return self.store.add(self._folder(folder), data).immutable_id

    def _folder(self, name: str) -> Any:
        found = self.store.folder(name) or next(
            (f for f in self.store.folders.values() if f.display_name == name), None
        )
        assert found is not None, f"no folder {name!r}"
        return found

    def add_folder(self, display_name: str) -> str:
        with self.lock:
            return self.store.add_folder(display_name).id

    def add_category(self, name: str, color: str = "preset0") -> None:
        with self.lock:
            self.store.categories.append(
                {"id": str(uuid.uuid4()), "displayName": name, "color": color}
            )

    def set_flag(self, message_id: str, flagged: bool = True) -> None:
        with self.lock:
            stored = self.store.find(message_id)
            assert stored is not None
            stored.data["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}

    # Reading the state -------------------------------------------------------------------
    def message(self, message_id: str) -> dict[str, Any] | None:
        """The message's properties and its `folder` (well-known or display name)."""
        with self.lock:
            stored = self.store.find(message_id)
            return None if stored is None else self.store.snapshot(stored)

    def conversation(self, message_id: str) -> str:
        found = self.message(message_id)
        assert found is not None, f"no message {message_id}"
        return str(found["conversationId"])

    def folder_of(self, message_id: str) -> str | None:
        found = self.message(message_id)
        return None if found is None else str(found["folder"])

    def ids_in(self, folder: str) -> list[str]:
        with self.lock:
            target = self._folder(folder)
            return [
                m.immutable_id for m in self.store.messages.values() if m.folder_id == target.id
            ]

    def folder_names(self) -> list[str]:
        with self.lock:
            return [f.display_name for f in self.store.folders.values()]

    @property
    def outbox(self) -> list[dict[str, Any]]:
        """Every message sent (by sendMail or a draft's send), as stored in Sent Items."""
        assert self.api is not None
        with self.lock:
            return list(self.api.outbox)

    def requests(self, route: str = "") -> list[Logged]:
        """The logged Graph requests whose `METHOD /path` starts with `route` (`*` matches
        anything, as in `fail`)."""
        with self.lock:
            return [entry for entry in self.log if fnmatchcase(entry.route, route + "*")]

    # Faults ----------------------------------------------------------------------------
    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        match: str = "",
        code: str | None = None,
    ) -> None:
        """Answer the next `times` Graph calls whose `METHOD /path` starts with `match`
        (`*` matches anything: "POST /me/messages/*/send") with `status`. A batch's
        requests count one by one; `POST /$batch` is the batch itself."""
        with self.lock:
            self._faults.append(Fault(status, times, retry_after, match, code))

    def revoke(self) -> None:
        """The person revoked the app's access: every refresh token is refused from now."""
        with self.lock:
            self._refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self._access_tokens.clear()

    # The sign-in server ----------------------------------------------------------------
    def _login(self, request: BaseHTTPRequestHandler, method: str, body: bytes) -> Answer:
        path = urlsplit(request.path).path
        base = f"{self.login_url}/{self.tenant}"
        with self.lock:
            if method == "GET" and path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
                return Answer(200, openid_configuration(base))
            if method == "GET" and path == f"/{self.tenant}/oauth2/v2.0/authorize":
                return self._authorize(dict(parse_qsl(urlsplit(request.path).query)))
            if method == "POST" and path == f"/{self.tenant}/oauth2/v2.0/token":
                form = dict(parse_qsl(body.decode()))
                if form.get("grant_type") == "authorization_code":
                    return self._code_exchange(form, request.headers.get("Authorization"))
                return self._token(request, body)
            self.violations.append(f"sign-in: no such endpoint {method} {path}")
            return Answer(404, {"error": "not_found"})

    def _authorize(self, query: dict[str, str]) -> Answer:
        """The sign-in page, as a person who signs in (or, with `refuse_sign_in`, who
        cancels) leaves it: a redirect to the app's loopback address with a code."""
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        wrong = [
            name
            for name, ok in (
                ("client_id", query.get("client_id") == self.client_id),
                ("response_type", query.get("response_type") == "code"),
                ("redirect_uri", urlsplit(redirect).hostname in ("localhost", "127.0.0.1")),
                ("state", bool(query.get("state"))),
                ("code_challenge_method", query.get("code_challenge_method") == "S256"),
            )
            if not ok
        ]
        if wrong:
            self.violations.append(f"authorize: {', '.join(wrong)} wrong")
            return Answer(400, {"error": "invalid_request"})
        answer = {"state": query["state"]}
        if self.refuse_sign_in:
            answer |= {"error": "access_denied", "error_description": "AADSTS65004: declined"}
        else:
            code = "code-" + secrets.token_urlsafe(16)
            self._codes[code] = (redirect, query.get("code_challenge", ""))
            self._nonces[code] = query.get("nonce", "")
            answer["code"] = code
        return Answer(302, None, {"Location": f"{redirect}?{urlencode(answer)}"})

    def _code_exchange(self, form: dict[str, str], authorization: str | None) -> Answer:
        """The token endpoint's authorization_code grant (RFC 6749 4.1.3, RFC 7636)."""
        nonce = self._nonces.pop(form.get("code", ""), "")
        redirect, challenge = self._codes.pop(form.get("code", ""), ("", ""))
        secret = form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            secret = base64.b64decode(authorization[6:]).decode().partition(":")[2]
        verifier = form.get("code_verifier", "").encode()
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        checks = {
            "code": bool(redirect),
            "client": form.get("client_id") == self.client_id and secret == self.client_secret,
            "redirect_uri": form.get("redirect_uri") == redirect,
            "pkce": computed.decode() == challenge,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            self.violations.append(f"code exchange: {', '.join(failed)} wrong")
            return Answer(400, {"error": "invalid_grant", "error_description": "AADSTS70008"})
        access, refresh = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        self._access_tokens.add(access)
        self._refresh_tokens.add(refresh)
        self.issued_refresh_tokens.append(refresh)
        return Answer(
            200,
            {
                "token_type": "Bearer",
                "scope": " ".join(
                    sorted(set(form.get("scope", "").split()) - {"openid", "profile"})
                ),
                "expires_in": 3599,
                "access_token": access,
                "refresh_token": refresh,
                "id_token": self._id_token(nonce),
            },
        )

    def _id_token(self, nonce: str) -> str:
        """An OpenID Connect id_token as Azure AD's v2.0 endpoint shapes it (unsigned
        here: msal reads its claims, the TLS connection vouches for the issuer)."""
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "aud": self.client_id,
            "iss": f"{self.login_url}/{self.tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "nonce": nonce,
            "preferred_username": self.signed_in_as,
            "sub": "double-" + self.signed_in_as,
            "tid": self.tenant,
            "ver": "2.0",
        }
        parts = [{"alg": "none", "typ": "JWT"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts]
        return b".".join([*encoded, b""]).decode()

    def _token(self, request: BaseHTTPRequestHandler, body: bytes) -> Answer:
        form = dict(parse_qsl(body.decode()))
        self.token_requests.append({k: v for k, v in form.items() if "secret" not in k})
        answer, problem = token_answer(
            form,
            request.headers.get("Authorization"),
            client_id=self.client_id,
            client_secret=self.client_secret,
            valid=self._refresh_tokens,
            scopes=GRAPH_SCOPES,
        )
        if problem:
            self.violations.append(f"token: {problem}")
        if answer.status == 200 and answer.body is not None:
            self._access_tokens.add(answer.body["access_token"])
            self._refresh_tokens.add(answer.body["refresh_token"])
            self.issued_refresh_tokens.append(answer.body["refresh_token"])
        return answer

    # The Graph server ------------------------------------------------------------------
    def _graph(self, request: BaseHTTPRequestHandler, method: str, body: bytes) -> Answer:
        url = urlsplit(request.path)
        if not url.path.startswith("/v1.0/"):
            with self.lock:
                self.violations.append(f"graph: not under /v1.0: {method} {url.path}")
            return error(404, "UnknownRequest", "Not a Graph v1.0 path")
        segments = [unquote(part) for part in url.path[len("/v1.0/") :].split("/")]
        pairs = parse_qsl(url.query, keep_blank_values=True)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = Ellipsis
        call = Call(
            method,
            segments,
            dict(pairs),
            parsed,
            IMMUTABLE in (request.headers.get("Prefer") or ""),
        )
        with self.lock:
            token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return self._refuse(
                    call, error(401, "InvalidAuthenticationToken", "Access token is empty.")
                )
            if token not in self._access_tokens:
                answer = error(401, "InvalidAuthenticationToken", "Access token has expired.")
                self.log.append(Logged.of(call, answer.status))
                return answer
            if (
                len(pairs) != len(call.query)
                or parsed is Ellipsis
                or (body and "application/json" not in (request.headers.get("Content-Type") or ""))
            ):
                return self._refuse(call, error(400, "BadRequest", "Malformed request"))
            return self._dispatch(call)

    def _refuse(self, call: Call, answer: Answer) -> Answer:
        self.violations.append(f"{call.route}: {answer.body}")
        self.log.append(Logged.of(call, answer.status))
        return answer

    def _dispatch(self, call: Call) -> Answer:
        """One call's answer (a fault if one is due), logged; a batch's calls each too."""
        assert self.api is not None
        if call.problem is not None:
            return self._refuse(call, error(400, "BadRequest", call.problem))
        due = (f for f in self._faults if f.remaining and fnmatchcase(call.route, f.match + "*"))
        fault = next(due, None)
        try:
            if fault is not None:
                answer = fault.answer()
            elif call.route == "POST /$batch" and not call.batched:
                answer = run_batch(call, self._dispatch)
            else:
                answer = self.api.handle(call)
        except Refused as refused:
            answer = refused.answer
            if refused.violation:
                self.violations.append(f"{call.route}: {answer.body}")
        except ODataError as problem:
            answer = error(400, problem.code, str(problem))
            self.violations.append(f"{call.route}: {problem.code}: {problem}")
        self.log.append(Logged.of(call, answer.status))
        return answer
