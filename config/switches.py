"""What an on/off variable may say, and INNGEST_DEV, which is a switch or a URL."""

from __future__ import annotations

FALSY = {"", "0", "false", "no", "off"}
TRUTHY = {"1", "true", "yes", "on"}


def checked_inngest_dev(value: str) -> str:
    """INNGEST_DEV as given; ValueError unless it is a switch or a dev server's URL.
    Dev mode verifies no signature: only a deliberate value may turn it on."""
    if value.strip().lower() in FALSY | TRUTHY:
        return value
    if value.strip().startswith(("http://", "https://")):
        return value.strip()
    raise ValueError(
        "must be 1 or true (a dev server, which verifies nothing), the dev server's "
        "http:// URL, or 0, false or unset for cloud mode"
    )
