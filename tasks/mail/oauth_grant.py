"""What a Gmail or Microsoft Graph adapter needs to get access tokens: the OAuth client
and the account's refresh token. The adapter never reads the environment or the
database itself; `tasks.mail.accounts` builds the grant and hands it over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.mail.port import AccountDisconnected


@dataclass(frozen=True)
class OAuthGrant:
    email: str
    client_id: str
    # Secrets stay out of repr(), so out of logs and tracebacks.
    client_secret: str | None = field(repr=False)
    refresh_token: str = field(repr=False)
    # Records on the account that it must be connected again (set by tasks.mail.accounts).
    on_refused: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    # Stores a refresh token the token server rotated to (Microsoft issues a new one,
    # valid 90 days, with each refresh); None where the token is not ours to store.
    on_rotated: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def rotated(self, refresh_token: str) -> None:
        if self.on_rotated is not None:
            self.on_rotated(refresh_token)

    def refused(self, provider: str, detail: str) -> AccountDisconnected:
        """The error to raise when the token server refuses the refresh token
        (invalid_grant): recorded on the account, so no job retries it."""
        error = AccountDisconnected(self.email, provider, detail)
        if self.on_refused is not None:
            self.on_refused(str(error))
        return error
