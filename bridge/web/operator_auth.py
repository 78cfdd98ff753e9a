"""Who may read the operator pages (`/metrics`, `/status`, `/status.json`): holders of
METRICS_TOKEN, as a Bearer token (Prometheus, curl) or as the password of HTTP Basic
auth with any user name (a browser, which cannot send a Bearer header, prompts for it).

Without METRICS_TOKEN (or with one that is only whitespace) those routes do not exist
(404): never public by accident. The secret is compared as bytes, stripped of the
whitespace around it the same way whichever scheme carries it: the token's UTF-8
bytes against the bytes the client sent, so a token that is not ASCII works with both.
"""

from __future__ import annotations

import base64
import hmac

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from bridge.web.direct_routes import Endpoint
from config import Settings

REALM = "jobbridge"


def presented_secret(authorization: str) -> str:
    """The secret an Authorization header carries: a Bearer token, or the password of
    Basic credentials (base64 of `user:password`); "" for anything else. As text, for
    the API docs' key check (bridge.web.api_docs); the operator pages use
    `presented_bytes`."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credential.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 inside
            return ""
        return decoded.partition(":")[2]
    return ""


def presented_bytes(authorization: str) -> bytes:
    """The secret an Authorization header carries, as the bytes the client sent, without
    the whitespace around it: a Bearer token (Starlette decodes a header's bytes as
    latin-1, so encoding it back gives them), or the password of Basic credentials (the
    bytes base64 carries: UTF-8 from a browser, as the challenge's charset asks); b""
    for anything else."""
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        try:
            return credential.encode("latin-1").strip()
        except UnicodeEncodeError:  # not from a real request: its text came from bytes
            return b""
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True)
        except ValueError:  # not base64 (binascii.Error), or text that is not ASCII
            return b""
        return decoded.partition(b":")[2].strip()
    return b""


class OperatorAuth:
    """The METRICS_TOKEN check, in one place for every operator route."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode("utf-8").strip()

    def allows(self, request: Request) -> bool:
        given = presented_bytes(request.headers.get("authorization", ""))
        # compare_digest: the time taken says nothing about how much of the token matched.
        return bool(given) and hmac.compare_digest(given, self._expected)

    def refusal(self, what: str) -> Response:
        """401, offering both schemes: a browser prompts for the Basic one."""
        response = Response(
            f"{what} needs METRICS_TOKEN: Authorization: Bearer <METRICS_TOKEN>, or Basic "
            "auth with it as the password (any user name)\n",
            status_code=401,
            media_type="text/plain",
        )
        response.headers.append("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        response.headers.append("WWW-Authenticate", f'Bearer realm="{REALM}"')
        return response


def operator_auth(settings: Settings) -> OperatorAuth | None:
    """The check, or None when METRICS_TOKEN is unset or only whitespace (then the routes
    are not served: a blank token would let a blank password in)."""
    if settings.metrics_token is None:
        return None
    token = settings.metrics_token.get_secret_value()
    if not token.encode("utf-8").strip():
        return None
    return OperatorAuth(token)


def add_operator_route(
    web: FastAPI, path: str, auth: OperatorAuth, what: str, answer: Endpoint
) -> None:
    """GET and HEAD on `path` for holders of the token, 401 for anyone else before
    `answer` runs. `path/` too, behind the same check, answered with a redirect to
    `path`: left unrouted, it would be redirected before any check (the app's
    trailing-slash redirect, bridge.web.redirects)."""

    async def to_path(request: Request) -> Response:
        return RedirectResponse(path, status_code=307)

    methods = ["GET", "HEAD"]
    web.add_api_route(path, _guarded(auth, what, answer), methods=methods, include_in_schema=False)
    web.add_api_route(
        path + "/", _guarded(auth, what, to_path), methods=methods, include_in_schema=False
    )


def _guarded(auth: OperatorAuth, what: str, answer: Endpoint) -> Endpoint:
    """`answer` for holders of the token, 401 for anyone else before it runs."""

    async def guarded(request: Request) -> Response:
        if not auth.allows(request):
            return auth.refusal(what)
        return await answer(request)

    return guarded
