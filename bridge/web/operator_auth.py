"""Who may read the operator pages (`/metrics`, `/status`, `/status.json`): holders of
METRICS_TOKEN, as a Bearer token (Prometheus, curl) or as the password of HTTP Basic
auth with any user name (a browser, which cannot send a Bearer header, prompts for it).

Without METRICS_TOKEN those routes do not exist (404): never public by accident.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request, Response

from config import Settings

REALM = "jobbridge"


def presented_secret(authorization: str) -> str:
    """The secret an Authorization header carries: a Bearer token, or the password of
    Basic credentials (base64 of `user:password`); "" for anything else."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credential.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""


class OperatorAuth:
    """The METRICS_TOKEN check, in one place for every operator route."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    def allows(self, request: Request) -> bool:
        given = presented_secret(request.headers.get("authorization", ""))
        # compare_digest: the time taken says nothing about how much of the token matched.
        return bool(given) and hmac.compare_digest(given.encode(), self._expected)

    def refusal(self, what: str) -> Response:
        """401, offering both schemes: a browser prompts for the Basic one."""
        response = Response(
            f"{what} need METRICS_TOKEN: Authorization: Bearer <METRICS_TOKEN>, or Basic "
            "auth with it as the password (any user name)\n",
            status_code=401,
            media_type="text/plain",
        )
        response.headers.append("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        response.headers.append("WWW-Authenticate", f'Bearer realm="{REALM}"')
        return response


def operator_auth(settings: Settings) -> OperatorAuth | None:
    """The check, or None when METRICS_TOKEN is unset (then the routes are not served)."""
    if settings.metrics_token is None:
        return None
    return OperatorAuth(settings.metrics_token.get_secret_value())
