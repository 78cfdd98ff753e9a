"""What an on/off variable may say, and INNGEST_DEV, which is a switch or a URL."""

from __future__ import annotations

from urllib.parse import urlsplit

FALSY = {"", "0", "false", "no", "off"}
TRUTHY = {"1", "true", "yes", "on"}


def checked_inngest_dev(value: str) -> str:
    """INNGEST_DEV as given; ValueError unless it is a switch or a dev server's URL.
    Dev mode verifies no signature: only a deliberate value may turn it on."""
    if value.strip().lower() in FALSY | TRUTHY:
        return value
    url = urlsplit(value.strip())
    if url.scheme.lower() in ("http", "https") and url.netloc:
        return url._replace(scheme=url.scheme.lower()).geturl()
    raise ValueError(
        "must be 1 or true (a dev server, which verifies nothing), the dev server's "
        "http:// URL, or 0, false or unset for cloud mode"
    )
