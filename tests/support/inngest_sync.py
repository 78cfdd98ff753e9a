"""The functions the web server registers with Inngest, as Inngest receives them: a
signed sync (PUT /api/inngest), read back from the Inngest API double."""

from __future__ import annotations

from typing import Any

import httpx
from inngest._internal.net import sign_request

from tests.support import env


def synced_functions(web: str, inngest_api: Any) -> dict[str, dict[str, Any]]:
    """Function id -> its registered config, from one sync of the server at `web`."""
    before = len(inngest_api.registrations)
    signature = str(sign_request(b"", env.INNGEST_SIGNING_KEY))
    response = httpx.put(web + "/api/inngest", headers={"X-Inngest-Signature": signature})
    assert response.status_code == 200 and "error" not in response.json(), response.text
    (registration,) = inngest_api.registrations[before:]
    return {fn["id"]: fn for fn in registration["body"]["functions"]}
