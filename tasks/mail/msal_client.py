"""The msal application for a Microsoft OAuth client: public (no secret, an app
registered for "mobile and desktop") or confidential (with MICROSOFT_CLIENT_SECRET).
One construction for the Graph adapter's token refresh and for `accounts connect`.

msal insists on an https authority, and trusts the certificates `requests` trusts
(REQUESTS_CA_BUNDLE names a private CA). `instance_discovery=False`: the authority is our
own setting, so msal need not ask login.microsoftonline.com whether it is a real one.
"""

from __future__ import annotations

from typing import Any

import msal

from tasks.mail.oauth_settings import OAuthSettings

# offline_access (which yields the refresh token), openid and profile are msal's reserved
# scopes: msal adds all three to every request itself and refuses them from a caller.
GRAPH_SCOPES = (
    "https://graph.microsoft.com/Mail.ReadWrite",
    "https://graph.microsoft.com/Mail.Send",
)
TOKEN_TIMEOUT = 30.0  # seconds, per request to the token server


def msal_app(client_id: str, client_secret: str | None, settings: OAuthSettings) -> Any:
    """Raises ValueError for an unusable authority (not https, or discovery refused) and
    OSError / MsalServiceError when it does not answer."""
    options: dict[str, Any] = {
        "authority": settings.microsoft_authority,
        "instance_discovery": False,
        "timeout": TOKEN_TIMEOUT,
    }
    if client_secret:
        return msal.ConfidentialClientApplication(
            client_id, client_credential=client_secret, **options
        )
    return msal.PublicClientApplication(client_id, **options)
